"""The MCP server as clients reach it: streamable HTTP at /mcp on a real uvicorn with AUTH_ENABLED=true (the
service's API keys as bearer tokens) and stdio (`python -m backend.mcp` as a subprocess), each listing the tools
and answering predict_eclo / predict_congestion as the REST routes do."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from backend.dev.processes import PROJECT_ROOT
from backend.schemas.eclo import CLASSIC_EXAMPLE
from tests.fixtures.auth import Secured
from tests.fixtures.traffic import LA, hour_of_readings

pytestmark = pytest.mark.stack

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "1"}}}  # fmt: skip
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _over_http(secured: Secured, key: str, work: Callable[[Client], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            async with Client(streamable_http_client(f"{secured.url}/mcp", http_client=http)) as client:
                return await work(client)

    return asyncio.run(run())


def _over_stdio(secured: Secured, key: str, work: Callable[[Client], Awaitable[Any]]) -> Any:
    env = {**secured.env, "TRAFFIC_API_KEY": key}
    server = StdioServerParameters(command=sys.executable, args=["-m", "backend.mcp"], env=env, cwd=PROJECT_ROOT)

    async def run() -> Any:
        async with Client(server) as client:
            return await work(client)

    return asyncio.run(run())


def _without_cached(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "cached"}


def _congestion_body(sensor: str) -> dict[str, Any]:
    return {"sensor_id": sensor, "recent": hour_of_readings([sensor], datetime(2024, 6, 3, 8, 0, tzinfo=LA), 44.0)}


@pytest.mark.parametrize("transport", [_over_http, _over_stdio], ids=["streamable-http", "stdio"])
def test_the_tools_answer_what_the_rest_routes_answer(
    secured: Secured, transport: Callable[..., Any], network_sensors: list[dict[str, Any]]
) -> None:
    key = secured.keys["all"]
    congestion = _congestion_body(network_sensors[3]["sensor_id"])

    async def work(client: Client) -> tuple[list[str], Any, Any]:
        names = [t.name for t in (await client.list_tools()).tools]
        eclo = await client.call_tool("predict_eclo", {"accident": CLASSIC_EXAMPLE})
        return names, eclo, await client.call_tool("predict_congestion", congestion)

    names, eclo, forecast = transport(secured, key, work)
    assert {"predict_eclo", "predict_congestion", "group_aggregate", "near", "risk_ranking"} <= set(names)
    assert not eclo.is_error and not forecast.is_error, (eclo.content, forecast.content)
    with secured.client(key) as rest:
        assert _without_cached(eclo.structured_content) == _without_cached(
            rest.post("/api/predict/eclo", json=CLASSIC_EXAMPLE).json())  # fmt: skip
        assert _without_cached(forecast.structured_content) == _without_cached(
            rest.post("/api/predict/congestion", json=congestion).json())  # fmt: skip


def test_without_a_key_the_endpoint_answers_401_with_www_authenticate(secured: Secured) -> None:
    for key in (None, "tpk_0123456789ab_" + "x" * 43):
        headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {key}"} if key else {})}
        answered = httpx.post(f"{secured.url}/mcp", json=INITIALIZE, headers=headers, timeout=30)
        assert answered.status_code == 401
        assert answered.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("transport", [_over_http, _over_stdio], ids=["streamable-http", "stdio"])
def test_a_key_lacking_the_scope_gets_a_tool_error_naming_it(secured: Secured, transport: Callable[..., Any]) -> None:
    async def work(client: Client) -> tuple[Any, Any]:
        return (await client.call_tool("predict_eclo", {"accident": CLASSIC_EXAMPLE}),
                await client.call_tool("network_status", {}))  # fmt: skip

    refused, allowed = transport(secured, secured.keys["reader"], work)
    assert refused.is_error and "lacks the 'predict' scope" in refused.content[0].text
    assert not allowed.is_error


def test_stdio_refuses_to_start_without_a_valid_key(secured: Secured) -> None:
    import subprocess

    env = {**secured.env, "TRAFFIC_API_KEY": "tpk_0123456789ab_" + "x" * 43}
    ran = subprocess.run([sys.executable, "-m", "backend.mcp"], env=env, cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert ran.returncode == 2 and "TRAFFIC_API_KEY" in ran.stderr and ran.stdout == ""


def test_a_key_revoked_while_the_stdio_server_runs_is_refused_at_the_next_call(secured: Secured) -> None:
    with secured.client(secured.keys["all"]) as admin:
        made = admin.post("/api/keys", json={"name": "desktop", "scopes": ["predict", "read"]}).json()

    async def work(client: Client) -> tuple[Any, Any, str | None]:
        before = await client.call_tool("predict_eclo", {"accident": CLASSIC_EXAMPLE})
        assert (await client.read_resource("traffic://sensors")).contents  # readable while the key is valid
        with secured.client(secured.keys["all"]) as admin:
            assert admin.delete(f"/api/keys/{made['key_id']}").status_code == 204
        await asyncio.sleep(1.5)  # the stdio server's own copy of the keys is AUTH_CACHE_SECONDS (1 s) old at most
        after = await client.call_tool("predict_eclo", {"accident": CLASSIC_EXAMPLE})
        try:
            await client.read_resource("traffic://sensors")
        except Exception as exc:  # the SDK raises the server's error
            return before, after, str(exc)
        return before, after, None

    before, after, resource_error = _over_stdio(secured, made["key"], work)
    assert not before.is_error, before.content
    assert after.is_error and "401" in after.content[0].text and "revoked" in after.content[0].text, after.content
    assert resource_error == "Error reading resource traffic://sensors"  # the SDK words it; the server logs why
