"""Logs as one JSON object per line, each carrying the request id of the request (or batch) it belongs to."""

from __future__ import annotations

import contextvars
import logging
import logging.config
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def logging_config(level: str = "INFO", stream: str = "ext://sys.stdout") -> dict[str, Any]:
    """A dictConfig for the API, the workers and uvicorn's own loggers (`uvicorn --log-config` takes it too)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.orjson.OrjsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["request_id"],
                "stream": stream,
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stdout"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stdout"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "celery": {"handlers": ["stdout"], "level": level, "propagate": False},
        },
    }


def configure_logging(level: str = "INFO", stream: str = "ext://sys.stdout") -> None:
    logging.config.dictConfig(logging_config(level, stream))
