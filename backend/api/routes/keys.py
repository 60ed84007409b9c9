from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from backend.api.auth import ADMIN, AUTH_ERRORS, AnyKey
from backend.api.deps import SessionDep
from backend.core.errors import Forbidden, NotFound
from backend.schemas.errors import ErrorResponse
from backend.schemas.keys import KeyCreate, KeyIdentity, KeyInfo, NewKey
from backend.services import keys
from backend.services.keys import KEY_ID, SCOPES, KeyDirectory

router = APIRouter(prefix="/api/keys", tags=["keys"], responses=AUTH_ERRORS)


def managed_keys(request: Request) -> KeyDirectory:
    """The API's keys, when it asks for them: with AUTH_ENABLED=false nobody may make one over HTTP, or anyone
    reaching the port could mint a key that would hold once keys are on."""
    directory: KeyDirectory | None = request.app.state.services.api_keys
    if directory is None:
        raise Forbidden("keys are managed over HTTP only while AUTH_ENABLED=true; use `python -m backend.cli.keys`")
    return directory


ManagedKeys = Annotated[KeyDirectory, Depends(managed_keys)]
KeyIdPath = Annotated[str, Path(pattern=f"^{KEY_ID}$", description="the key's id (12 hex digits)")]


@router.get("/me")
async def who_am_i(principal: AnyKey) -> KeyIdentity:
    """The key this request was sent with: its id, name and scopes (a sign-in check for clients such as the
    dashboard). Any valid key may ask; with AUTH_ENABLED=false, anyone, holding every scope."""
    return KeyIdentity(key_id=principal.key_id, name=principal.name, scopes=[s for s in SCOPES if principal.allows(s)])


@router.post("", status_code=201, dependencies=[ADMIN], responses={422: {"model": ErrorResponse}})
def create_key(body: KeyCreate, session: SessionDep, directory: ManagedKeys) -> NewKey:
    """Make a key (`admin` scope). The answer holds the key itself, this once: only its SHA-256 is kept."""
    row, key = keys.create_key(session, body.name, list(body.scopes))
    directory.remember(row)
    return NewKey(**KeyInfo.of(row).model_dump(), key=key)


@router.get("", dependencies=[ADMIN])
def list_keys(session: SessionDep, _: ManagedKeys) -> list[KeyInfo]:
    """Every key, active or revoked, oldest first (`admin` scope); never a key itself."""
    return [KeyInfo.of(row) for row in keys.list_keys(session)]


@router.delete("/{key_id}", status_code=204, dependencies=[ADMIN], responses={404: {"model": ErrorResponse}})
def revoke_key(key_id: KeyIdPath, session: SessionDep, directory: ManagedKeys) -> Response:
    """Revoke a key (`admin` scope): this API process refuses it at once, any other within AUTH_CACHE_SECONDS."""
    if not keys.revoke_key(session, key_id):
        raise NotFound(f"no active API key {key_id!r} (GET /api/keys lists them)")
    directory.forget(key_id)
    return Response(status_code=204)
