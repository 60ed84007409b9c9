from fastapi import APIRouter

from backend.api.auth import AUTH_ERRORS, AnyKey
from backend.schemas.keys import KeyIdentity
from backend.services.keys import SCOPES

router = APIRouter(prefix="/api/keys", tags=["keys"], responses=AUTH_ERRORS)


@router.get("/me")
async def who_am_i(principal: AnyKey) -> KeyIdentity:
    """The key this request was sent with: its id, name and scopes (a sign-in check for clients such as the
    dashboard). Any valid key may ask; with AUTH_ENABLED=false, anyone, holding every scope."""
    return KeyIdentity(key_id=principal.key_id, name=principal.name, scopes=[s for s in SCOPES if principal.allows(s)])
