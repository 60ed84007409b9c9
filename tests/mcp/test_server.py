"""The MCP server in-process (the SDK's in-memory client): its tools, resources and prompts, the same answers as
the REST routes, and the scopes each tool needs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client

from backend.core.config import Settings
from backend.main import create_app
from backend.mcp.access import acting_as
from backend.schemas.eclo import CLASSIC_EXAMPLE
from backend.services.keys import Principal
from tests.fixtures.traffic import LA, hour_of_readings

SERVICE_TOOLS = {"predict_eclo", "predict_congestion", "submit_batch", "batch_status", "risk_ranking",
                 "network_status", "forecast_network", "sensor_history", "model_info", "recent_predictions",
                 "dataset_status"}  # fmt: skip


def _in_app_loop(app_client: TestClient, work: Callable[[Client], Awaitable[Any]], as_: Principal | None = None) -> Any:
    """`work` with an in-memory client, on the app's event loop (its async Redis clients belong to that loop)."""

    async def run() -> Any:
        async with Client(app_client.app.state.mcp) as client:  # type: ignore[attr-defined]
            return await work(client)

    async def run_as() -> Any:
        if as_ is None:
            return await run()
        with acting_as(as_):
            return await run()

    return app_client.portal.call(run_as)  # type: ignore[attr-defined]


def _call(app_client: TestClient, name: str, arguments: dict[str, Any], principal: Principal | None = None) -> Any:
    return _in_app_loop(app_client, lambda client: client.call_tool(name, arguments), principal)


def _without_cached(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "cached"}


def test_the_tools_are_listed_with_descriptions_naming_the_allowed_values(app_client: TestClient) -> None:
    async def listed(client: Client) -> Any:
        return (await client.list_tools()).tools

    tools = {t.name: t for t in _in_app_loop(app_client, listed)}
    assert SERVICE_TOOLS <= set(tools)
    eclo = tools["predict_eclo"].description or ""
    assert "비 (rain)" in eclo and "수성구 (Suseong-gu)" in eclo and "Needs the `predict` scope" in eclo
    assert "Needs the `read` scope" in (tools["network_status"].description or "")


def test_predict_eclo_answers_what_the_rest_route_answers(app_client: TestClient) -> None:
    result = _call(app_client, "predict_eclo", {"accident": CLASSIC_EXAMPLE})
    assert not result.is_error
    rest = app_client.post("/api/predict/eclo", json=CLASSIC_EXAMPLE)
    assert rest.status_code == 200
    assert _without_cached(result.structured_content) == _without_cached(rest.json())


def test_predict_congestion_answers_what_the_rest_route_answers(app_client: TestClient) -> None:
    sensor = app_client.app.state.resources.registry.get("congestion").sensor_ids[0]  # type: ignore[attr-defined]
    recent = hour_of_readings([sensor], datetime(2024, 6, 3, 9, 0, tzinfo=LA), base=41.0)
    result = _call(app_client, "predict_congestion", {"sensor_id": sensor, "recent": recent})
    assert not result.is_error, result.content
    rest = app_client.post("/api/predict/congestion", json={"sensor_id": sensor, "recent": recent})
    assert rest.status_code == 200
    assert _without_cached(result.structured_content) == _without_cached(rest.json())
    assert [f["horizon_minutes"] for f in result.structured_content["forecasts"]] == [15, 30, 60]


def test_a_bad_value_is_a_tool_error_naming_the_field_and_the_allowed_values(app_client: TestClient) -> None:
    result = _call(app_client, "predict_eclo", {"accident": {**CLASSIC_EXAMPLE, "weather": "sunny"}})
    assert result.is_error
    text = result.content[0].text
    assert "422" in text and "weather" in text and "맑음" in text


def test_risk_ranking_ranks_the_districts_by_the_chance_of_a_severe_outcome(app_client: TestClient) -> None:
    conditions = {k: v for k, v in CLASSIC_EXAMPLE.items() if k != "district"}
    ranking = _call(app_client, "risk_ranking", {"conditions": conditions}).structured_content["ranking"]
    assert len(ranking) == 8 and {r["district"] for r in ranking} >= {"중구", "수성구", "달성군"}
    chances = [r["p_severe"] for r in ranking]
    assert chances == sorted(chances, reverse=True)
    first = app_client.post("/api/predict/eclo", json={**conditions, "district": ranking[0]["district"]}).json()
    assert first["p_severe"] == ranking[0]["p_severe"]


def test_a_key_without_the_scope_gets_a_tool_error_naming_it(app_client: TestClient) -> None:
    reader = Principal(key_id="aaaaaaaaaaaa", name="reader", scopes=frozenset({"read"}))
    refused = _call(app_client, "predict_eclo", {"accident": CLASSIC_EXAMPLE}, reader)
    assert refused.is_error and "'predict' scope" in refused.content[0].text
    assert not _call(app_client, "network_status", {}, reader).is_error
    predictor = Principal(key_id="bbbbbbbbbbbb", name="predictor", scopes=frozenset({"predict"}))
    assert "'read' scope" in _call(app_client, "recent_predictions", {}, predictor).content[0].text


def test_model_cards_vocabulary_and_prompts_are_served(app_client: TestClient) -> None:
    async def read(client: Client) -> tuple[Any, Any, Any]:
        cards = await client.read_resource("models://cards")
        vocabulary = await client.read_resource("eclo://vocabulary")
        return cards, vocabulary, await client.list_prompts()

    cards, vocabulary, prompts = _in_app_loop(app_client, read)
    names = {m["name"] for m in json.loads(cards.contents[0].text)["models"]}
    assert {"eclo", "congestion"} <= names
    weather = json.loads(vocabulary.contents[0].text)["weather"]
    assert {"value": "비", "english": "rain"} in weather
    assert {"assess_trip_risk", "summarise_congestion"} <= {p.name for p in prompts.prompts}


@pytest.fixture
def limited_client(app_settings: Settings) -> Iterator[TestClient]:
    settings = app_settings.model_copy(update={"auth_enabled": True, "rate_limit_per_second": 0.1,
                                               "rate_limit_burst": 2})  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client


def test_tool_calls_take_the_keys_rate_limit(limited_client: TestClient) -> None:
    key = Principal(key_id=uuid.uuid4().hex[:12], name="limited", scopes=frozenset({"read", "predict"}))
    other = Principal(key_id=uuid.uuid4().hex[:12], name="other", scopes=frozenset({"read"}))
    answers = [_call(limited_client, tool, {}, key) for tool in ("model_info", "network_status", "model_info")]
    assert [a.is_error for a in answers] == [False, False, True]
    assert "429" in answers[2].content[0].text and "rate limit" in answers[2].content[0].text
    assert not _call(limited_client, "model_info", {}, other).is_error  # another key's bucket


def test_network_status_and_the_sensors_resource_say_what_the_rest_routes_list(app_client: TestClient) -> None:
    sensors = app_client.app.state.resources.registry.get("congestion").sensor_ids[:3]  # type: ignore[attr-defined]
    table = [{"sensor_id": s, "latitude": 34.1, "longitude": -118.3, "free_flow_mph": 65.0} for s in sensors]
    assert app_client.put("/api/traffic/sensors", json={"sensors": table}).status_code == 200
    stored = app_client.post("/api/traffic/readings", json={"readings": hour_of_readings(sensors, datetime.now(LA))})
    assert stored.status_code == 200 and stored.json()["accepted"] == 36, stored.text
    current = app_client.get("/api/traffic/current").json()
    status = _call(app_client, "network_status", {"slowest": 2})
    assert not status.is_error, status.content
    assert status.structured_content["sensors_reporting"] == len(current) >= 3
    assert sum(status.structured_content["levels"].values()) == len(current)
    assert len(status.structured_content["slowest"]) == 2

    async def read(client: Client) -> Any:
        return await client.read_resource("traffic://sensors")

    def without_age(sensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**s, "latest": s["latest"] and {k: v for k, v in s["latest"].items() if k != "age_seconds"}}
                for s in sensors]  # fmt: skip

    listed = json.loads(_in_app_loop(app_client, read).contents[0].text)
    assert without_age(listed) == without_age(app_client.get("/api/traffic/sensors").json())
