"""The names the dashboard answers to, against DNS rebinding: a page of another site whose name is pointed at this
machine's address would otherwise drive the dashboard from a browser here. Its requests name that site in their
`Host` header, so a request whose Host is not in DASHBOARD_ALLOWED_HOSTS (nor the address Streamlit listens on,
unless that is every interface) is refused: by `HostAllowList`, the ASGI middleware frontend/dashboard.py puts in
front of Streamlit, on HTTP (403) and on the WebSocket `/_stcore/stream` (refused before the upgrade: 403)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any
from urllib.parse import urlsplit

from frontend.settings import get_settings

EVERY_INTERFACE = {"", "0.0.0.0", "::"}
REFUSED = b"This dashboard does not answer to that host name (DASHBOARD_ALLOWED_HOSTS lists the ones it does)."


def hostname(host: str | None) -> str | None:
    """The name of a Host header: 'Example.COM.:8501' -> 'example.com', '[::1]:8501' -> '::1'; None for none or a
    malformed one (a user, a path, a port that is no port)."""
    if not host:
        return None
    try:
        parts = urlsplit(f"//{host}")
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return None
    if not parts.hostname or "@" in parts.netloc or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.rstrip(".")


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a Host header names one of `allowed`: names or addresses (any port), `*.example.com` for its
    subdomains, `*` for any."""
    name = hostname(host)
    if name is None:
        return False
    for entry in allowed:
        pattern = entry.strip().strip("[]").lower().rstrip(".")
        if pattern == "*" or name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def allowed_hosts() -> list[str]:
    """DASHBOARD_ALLOWED_HOSTS, and the address Streamlit listens on (`--server.address`) unless every interface."""
    from streamlit import config

    hosts = list(get_settings().allowed_hosts)
    address = str(config.get_option("server.address") or "")
    if address not in EVERY_INTERFACE:
        hosts.append(address)
    return hosts


class HostAllowList:
    """ASGI middleware: HTTP requests and WebSocket handshakes whose Host is not `hosts()` get a 403."""

    def __init__(self, app: Any, hosts: Callable[[], Collection[str]] = allowed_hosts) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        hosts = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"host"]
        if len(hosts) == 1 and host_allowed(hosts[0], self.hosts()):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # closed before it is accepted: the server answers the handshake 403
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(REFUSED)).encode())]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": REFUSED})


def refuse_foreign_host() -> None:
    """The same check in the page script, for a dashboard started without the middleware (`streamlit run
    frontend/app.py`): a session opened under another Host shows nothing and calls nothing."""
    import streamlit as st

    host = st.context.headers.get("Host")
    if host is not None and not host_allowed(host, allowed_hosts()):
        st.error("This dashboard does not answer to that host name (DASHBOARD_ALLOWED_HOSTS lists the ones it does).")
        st.stop()
