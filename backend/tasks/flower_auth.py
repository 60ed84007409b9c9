"""Flower's whole surface behind its password: Flower 2.2 leaves `/metrics` and `/healthcheck` open even with
`--basic_auth`. When the `celery flower` command loads this app, those two handlers are made to ask for the same
credentials as every other page (tornado's `authenticated`, which Flower's own pages use)."""

from __future__ import annotations

import sys


def guard_flower() -> None:
    if "flower" not in sys.argv[1:]:  # `celery -A backend.tasks flower ...` only: not a worker or beat
        return
    import tornado.web
    from flower.views import monitor

    for handler in (monitor.Metrics, monitor.Healthcheck):
        if not getattr(handler.get, "__wrapped__", None):
            handler.get = tornado.web.authenticated(handler.get)  # type: ignore[method-assign]
