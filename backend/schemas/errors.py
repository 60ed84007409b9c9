"""The error envelope of every non-2xx answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthErrorResponse(ErrorResponse):
    """A 503 health answer: the envelope, and the report naming what is down."""

    status: str
    components: dict[str, Any]
