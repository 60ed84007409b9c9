"""Service errors shared by the API and the task layer; the API's one handler turns them into envelopes."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, details: list[Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}


class Unauthorized(ServiceError):
    """No API key, or one the service does not know (or has revoked)."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    """A known key without the scope the route needs."""

    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Gone(ServiceError):
    status_code = 410
    code = "gone"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class TooLarge(ServiceError):
    """Every 413 of the API carries this code."""

    status_code = 413
    code = "too_large"


class InvalidRequest(ServiceError):
    status_code = 422
    code = "validation_error"


class QueueFull(ServiceError):
    status_code = 429
    code = "queue_full"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


class DependencyUnavailable(ServiceError):
    status_code = 503
    code = "dependency_unavailable"

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency} is unavailable: {reason}", details=[{"dependency": dependency}])
        self.dependency = dependency


class BadRequest(ServiceError):
    """A request this service cannot act on as sent (a missing credential of a third party, for one)."""

    status_code = 400
    code = "bad_request"
