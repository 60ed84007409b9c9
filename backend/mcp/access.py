"""Who calls a tool, and what it may do: the service's API keys as bearer tokens, each tool needing the scope its
REST route needs.

Over streamable HTTP the SDK's bearer middleware asks `KeyVerifier` and keeps the token in its context; the
assistant's loop and the stdio server set `CALLER` instead. With AUTH_ENABLED=false every caller holds every scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver.exceptions import ToolError

from backend.core.errors import ServiceError
from backend.services.keys import ANYONE, KeyDirectory, Principal

CALLER: ContextVar[Principal | None] = ContextVar("mcp_caller", default=None)
# The stdio server's key, checked again at each tool call: a key revoked while the server runs stops working.
CALLER_KEY: ContextVar[str | None] = ContextVar("mcp_caller_key", default=None)


class KeyVerifier:
    """The SDK's token verifier over the service's key directory: an unknown or revoked key is no token."""

    def __init__(self, keys: KeyDirectory) -> None:
        self.keys = keys

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            principal = await self.keys.authenticate(token)
        except ServiceError:
            return None
        return AccessToken(token=token, client_id=principal.key_id or "", scopes=sorted(principal.scopes),
                           claims={"name": principal.name})  # fmt: skip


@contextmanager
def acting_as(principal: Principal, key: str | None = None) -> Iterator[None]:
    """Tools called inside run with `principal`'s scopes (the assistant's loop, the stdio server); with `key`, each
    call checks it again (Toolkit.count)."""
    token, key_token = CALLER.set(principal), CALLER_KEY.set(key)
    try:
        yield
    finally:
        CALLER_KEY.reset(key_token)
        CALLER.reset(token)


def caller(auth_enabled: bool) -> Principal:
    """The principal of the tool call under way."""
    if (principal := CALLER.get()) is not None:
        return principal
    if (token := get_access_token()) is not None:
        name = str((token.claims or {}).get("name", token.client_id))
        return Principal(key_id=token.client_id or None, name=name, scopes=frozenset(token.scopes))
    if not auth_enabled:
        return ANYONE
    raise ToolError("this tool needs an API key, sent as `Authorization: Bearer <key>`")


def demand(auth_enabled: bool, scope: str | None) -> Principal:
    """The caller, if it holds `scope` (None: any key); else a tool error naming the scope."""
    principal = caller(auth_enabled)
    if scope is not None and not principal.allows(scope):
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise ToolError(f"API key {principal.key_id} ({principal.name}) lacks the {scope!r} scope this tool needs "
                        f"(it holds: {held})")  # fmt: skip
    return principal
