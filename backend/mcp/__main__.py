"""The MCP server over stdio, for desktop clients: `python -m backend.mcp`.

It opens the service's models, database and Redis as the API does (the same settings, from the environment or
.env) and acts as the API key in TRAFFIC_API_KEY, with that key's scopes, checked again at each tool call (a key
revoked meanwhile is refused); with AUTH_ENABLED=false, as anyone.
Logs go to stderr: stdout carries the protocol."""

from __future__ import annotations

import asyncio
import os
import sys

from backend.core.config import get_settings
from backend.core.errors import ServiceError
from backend.core.logging import configure_logging
from backend.mcp.access import acting_as
from backend.mcp.server import build_server
from backend.services.bundle import open_services
from backend.services.keys import ANYONE, Principal
from backend.wiring import open_resources

KEY_VARIABLE = "TRAFFIC_API_KEY"


async def serve() -> int:
    settings = get_settings()
    configure_logging(settings.log_level, stream="ext://sys.stderr")
    resources = open_resources(settings)
    resources.start_models()
    services = open_services(resources)
    try:
        principal: Principal = ANYONE
        key = None
        if services.api_keys is not None:
            key = os.environ.get(KEY_VARIABLE)
            if not key:
                print(f"set {KEY_VARIABLE} to an API key of this service (or AUTH_ENABLED=false)", file=sys.stderr)
                return 2
            try:
                principal = await services.api_keys.authenticate(key)
            except ServiceError as exc:
                print(f"{KEY_VARIABLE}: {exc.message}", file=sys.stderr)
                return 2
        with acting_as(principal, key):
            await build_server(services, settings).run_stdio_async()
    finally:
        await services.aclose()
        resources.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(serve()))
