"""How a tool is declared: its scope, its errors and its bounded output, the same for every tool module."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.from_thread
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import ValidationError

from backend.core.config import Settings
from backend.core.errors import ServiceError
from backend.services.bundle import Services
from backend.services.keys import Principal

from .access import CALLER_KEY, demand

F = TypeVar("F", bound=Callable[..., Any])


def tool_error(exc: ServiceError) -> ToolError:
    """A service's refusal as the tool's error: the REST status, the message and the fields it names."""
    fields = [d.get("field") or d.get("loc") for d in exc.details or [] if isinstance(d, dict)]
    named = [str(f) for f in fields if f]
    suffix = f" (fields: {', '.join(named)})" if named else ""
    return ToolError(f"{exc.status_code}: {exc.message}{suffix}")


@dataclass
class Toolkit:
    """The tools' shared context: the services they call, the settings, and the server they are registered on."""

    server: MCPServer
    services: Services
    settings: Settings

    @property
    def max_rows(self) -> int:
        return self.settings.mcp_max_rows

    def caller(self, scope: str | None) -> Principal:
        return demand(self.settings.auth_enabled, scope)

    def admit(self, scope: str | None) -> Principal:
        """A resource read (run in anyio's worker thread) checked as a tool call is: the caller's scope, the stdio
        server's key again, a token of the key's rate limit."""
        principal = self.caller(scope)
        try:
            anyio.from_thread.run(self.count, principal, CALLER_KEY.get())
        except ServiceError as exc:
            raise tool_error(exc) from exc
        return principal

    async def count(self, principal: Principal, key: str | None = None) -> None:
        """A tool call takes a token of its key's rate limit, as a REST request does (RateLimited: 429); the stdio
        server's key (`key`) is checked again first (revoked since the server started: 401)."""
        keys = self.services.api_keys
        if keys is not None and key is not None:
            await keys.authenticate(key)
        if keys is not None and keys.limiter is not None and principal.key_id is not None:
            await keys.limiter.take(principal.key_id)

    def tool(self, scope: str | None, *, read_only: bool = True, live: bool = False) -> Callable[[F], F]:
        """Register `fn` as a tool needing `scope` (None: any valid key); its docstring is the description the
        model reads. A ServiceError becomes the tool's error, naming the REST status and fields. `live`: it reads
        what changes by the minute (readings, records, jobs); with a write, it makes an answer uncacheable."""

        def register(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    principal = self.caller(scope)
                    try:
                        await self.count(principal, CALLER_KEY.get())
                        return await fn(*args, **kwargs)
                    except ServiceError as exc:
                        raise tool_error(exc) from exc
                    except ValidationError as exc:
                        raise ToolError(f"422: {exc}") from exc

                wrapped: Callable[..., Any] = run_async
            else:

                @functools.wraps(fn)
                def run(*args: Any, **kwargs: Any) -> Any:
                    principal = self.caller(scope)
                    try:
                        # sync tools run in anyio's worker threads: the key is read here, where the context is
                        anyio.from_thread.run(self.count, principal, CALLER_KEY.get())
                        return fn(*args, **kwargs)
                    except ServiceError as exc:
                        raise tool_error(exc) from exc
                    except ValidationError as exc:
                        raise ToolError(f"422: {exc}") from exc

                wrapped = run
            needs = f"Needs the `{scope}` scope." if scope else "Needs any valid API key."
            description = f"{inspect.getdoc(fn) or ''}\n\n{needs}"
            hints = ToolAnnotations(read_only_hint=read_only, open_world_hint=False)
            self.server.add_tool(wrapped, name=fn.__name__, description=description, annotations=hints,
                                 meta={"scope": scope, "cacheable": read_only and not live})  # fmt: skip
            return fn

        return register


def bounded(rows: Sequence[Any], limit: int, key: str = "rows") -> dict[str, Any]:
    """At most `limit` rows, and how many were left out."""
    return {key: list(rows[:limit]), "left_out": max(0, len(rows) - limit)}
