"""Who may call a route: `Authorization: Bearer <API key>` with the scope the route names (see
backend.services.keys), within the key's request rate limit (backend.services.rate_limit). With AUTH_ENABLED=false
every request is `ANYONE`, holding every scope, and no rate limit applies (there is no key to count against)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from backend.core.errors import Unauthorized
from backend.schemas.errors import ErrorResponse
from backend.services.keys import ANYONE, KeyDirectory, Principal

bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `python -m backend.cli.keys create <name> --scopes ...` or `POST /api/keys`",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "no API key, or an unknown or revoked one"},
    403: {"model": ErrorResponse, "description": "the key lacks the scope this route needs"},
    429: {"model": ErrorResponse, "description": "the key is over its request rate limit (Retry-After)"},
}


async def check_key(keys: KeyDirectory | None, key: str | None, scope: str | None) -> Principal:
    if keys is None:
        return ANYONE
    if not key:
        raise Unauthorized("this route needs an API key, sent as `Authorization: Bearer <key>`")
    found = await keys.authenticate(key)
    if keys.limiter is not None and found.key_id is not None:
        await keys.limiter.take(found.key_id)  # every request of the key counts, refused ones for scope too
    if scope is not None:
        found.demand(scope, f"API key {found.key_id} ({found.name}) lacks the {scope!r} scope this route needs")
    return found


def require(scope: str | None) -> Callable[..., Awaitable[Principal]]:
    """A dependency answering the request's principal: any valid key when `scope` is None."""

    async def principal(request: Request, credentials: Credentials) -> Principal:
        return await check_key(request.app.state.services.api_keys, credentials and credentials.credentials, scope)

    return principal


async def authorize(keys: KeyDirectory | None, authorization: str | None, scope: str) -> Principal:
    """The same check from the `Authorization` header's value, for the single-prediction answers, which run
    without FastAPI's dependencies (backend.api.routes.predict). Such a route states `openapi_extra=BEARER_DOC`.
    The header is read by the parser `HTTPBearer` uses."""
    kind, key = get_authorization_scheme_param(authorization)
    return await check_key(keys, key if kind.lower() == "bearer" else None, scope)


BEARER_DOC: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


AnyKey = Annotated[Principal, Depends(require(None))]
PredictKey = Annotated[Principal, Depends(require("predict"))]
AdminKey = Annotated[Principal, Depends(require("admin"))]
# For routes that need the check but not the principal: `dependencies=[READ]`.
ANY_KEY = Depends(require(None))
READ = Depends(require("read"))
ADMIN = Depends(require("admin"))
