"""The assistant end to end in-process (AUTH_ENABLED=false) against the loopback stand-in of the LLM providers'
wire formats (tests/fixtures/fake_llm.py): the tool loop, the history, the stream, the cache and the failures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from backend.core.config import Settings
from backend.main import create_app
from backend.schemas.eclo import CLASSIC_EXAMPLE
from tests.fixtures.fake_llm import FakeLLM, failure, stall, tool_call, turn

USER_KEY = "sk-ant-test-" + "k3y" * 10
HEADERS = {"X-Anthropic-API-Key": USER_KEY}
LOCAL_KEY = "local-model-server-key"


@pytest.fixture
def app_settings(app_settings: Settings, fake_llm: FakeLLM) -> Settings:
    return app_settings.model_copy(
        update={"llm_base_url": fake_llm.base_url("anthropic"), "llm_max_retries": 1, "llm_timeout_seconds": 2.0}
    )


def _conversation(client: TestClient, **body: Any) -> str:
    made = client.post("/api/assistant/conversations", json=body)
    assert made.status_code == 201, made.text
    return made.json()["id"]


def _ask(client: TestClient, conversation: str, content: str, **params: Any) -> Any:
    return client.post(f"/api/assistant/conversations/{conversation}/messages", json={"content": content},
                       headers=HEADERS, params=params)  # fmt: skip


def _events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], orjson.loads(lines["data"])))
    return events


def _metric(client: TestClient, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_question_runs_the_tools_the_model_asks_for_and_is_kept(app_client: TestClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(
        turn("Let me check.", tool_call("predict_eclo", {"accident": CLASSIC_EXAMPLE}, id="toolu_1"), usage=(100, 20)),
        turn("The ECLO is about 4.1.", usage=(150, 30)),
    )
    conversation = _conversation(app_client)
    answered = _ask(app_client, conversation, "How severe is a car crash in 중구 on a Monday afternoon?")
    assert answered.status_code == 200, answered.text
    message = answered.json()["message"]
    assert message["content"] == "Let me check.\n\nThe ECLO is about 4.1." and message["usage"] == {
        "input_tokens": 250, "output_tokens": 50}  # fmt: skip
    (step,) = message["steps"]
    rest = app_client.post("/api/predict/eclo", json=CLASSIC_EXAMPLE).json()
    assert step["name"] == "predict_eclo" and not step["is_error"] and step["output"]["eclo"] == rest["eclo"]

    first, second = fake_llm.requests
    assert {t["name"] for t in first.tools} >= {"predict_eclo", "group_aggregate", "risk_ranking"}
    assert first.api_key == USER_KEY
    result = second.messages[-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_1"
    assert orjson.loads(result["content"])["eclo"] == rest["eclo"]

    kept = app_client.get(f"/api/assistant/conversations/{conversation}").json()
    assert [m["role"] for m in kept["messages"]] == ["user", "assistant"]
    assert kept["title"].startswith("How severe is a car crash") and kept["messages"][1]["steps"][0]["name"] == (
        "predict_eclo")  # fmt: skip
    listed = app_client.get("/api/assistant/conversations").json()["items"]
    assert {"id": conversation, "messages": 2} == {k: v for k, v in listed[0].items() if k in ("id", "messages")}

    fake_llm.script(turn("Still about 4.1."))
    assert _ask(app_client, conversation, "And again?").status_code == 200
    replayed = fake_llm.requests[-1].messages
    assert [m["role"] for m in replayed] == ["user", "assistant", "user", "assistant", "user"]  # the whole history
    assert app_client.delete(f"/api/assistant/conversations/{conversation}").status_code == 204
    assert app_client.get(f"/api/assistant/conversations/{conversation}").status_code == 404


def test_the_stream_sends_tool_calls_results_text_and_done_in_order(app_client: TestClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(turn("", tool_call("network_status", {"slowest": 3})), turn("Traffic is light right now."))
    conversation = _conversation(app_client)
    answered = _ask(app_client, conversation, "How is traffic?", stream="true")
    assert answered.status_code == 200 and answered.headers["content-type"].startswith("text/event-stream")
    events = _events(answered.text)
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["tool_call", "tool_result"] and kinds[-1] == "done"
    assert set(kinds[2:-1]) == {"text"} and len(kinds[2:-1]) > 1  # deltas, as the provider streamed them
    assert events[0][1] == {"order": 1, "name": "network_status", "input": {"slowest": 3}}
    assert events[1][1]["elapsed_ms"] >= 0 and "levels" in events[1][1]["output"]
    assert "".join(data["delta"] for kind, data in events if kind == "text") == "Traffic is light right now."
    assert events[-1][1]["message"]["content"] == "Traffic is light right now."


def test_a_repeated_first_question_is_answered_from_the_cache(app_client: TestClient, fake_llm: FakeLLM) -> None:
    question = f"Which district is riskiest in the rain? {id(fake_llm)}"
    fake_llm.script(turn("", tool_call("model_info", {"name": "eclo"})), turn("달성군."))
    hits = _metric(app_client, "assistant_cache_total", result="hit")
    first = _ask(app_client, _conversation(app_client), question).json()["message"]
    assert len(fake_llm.requests) == 2 and not first["cached"]
    again = _ask(app_client, _conversation(app_client), f"  {question} ").json()["message"]
    assert len(fake_llm.requests) == 2  # the LLM was not asked again
    assert again["cached"] and again["content"] == first["content"] and again["steps"] == first["steps"]
    assert _metric(app_client, "assistant_cache_total", result="hit") == hits + 1


def test_without_an_llm_key_the_answer_names_the_header_and_the_setting(app_client: TestClient) -> None:
    conversation = _conversation(app_client)
    refused = app_client.post(f"/api/assistant/conversations/{conversation}/messages", json={"content": "hi"})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "X-Anthropic-API-Key" in error["message"] and "ANTHROPIC_API_KEY" in error["message"]


@pytest.mark.parametrize(
    ("reply", "status", "named"),
    [
        (failure(401, error_type="authentication_error"), 400, "X-Anthropic-API-Key"),
        (failure(429, headers={"retry-after": "7"}), 429, "rate"),
        (failure(529), 502, ""),
        (stall(5.0), 504, ""),
    ],
    ids=["refused-key", "rate-limited", "overloaded", "timeout"],
)
def test_each_llm_failure_is_a_clear_answer(
    app_client: TestClient, fake_llm: FakeLLM, reply: Any, status: int, named: str
) -> None:
    fake_llm.script(reply, reply)  # the retry fails the same way
    answered = _ask(app_client, _conversation(app_client), "hello")
    assert answered.status_code == status, answered.text
    assert named.lower() in answered.json()["error"]["message"].lower()
    if status == 429:
        assert answered.headers["retry-after"] == "7"


def test_a_failure_mid_stream_is_an_error_event(app_client: TestClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(failure(401), failure(401))
    events = _events(_ask(app_client, _conversation(app_client), "hello", stream="true").text)
    assert events[-1][0] == "error" and events[-1][1]["status"] == 400


def test_the_users_key_is_in_no_log_and_no_record(
    app_client: TestClient, app_settings: Settings, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_llm.script(turn("", tool_call("predict_eclo", {"accident": CLASSIC_EXAMPLE})), turn("done"), failure(401))
    conversation = _conversation(app_client)
    assert _ask(app_client, conversation, "risk?").status_code == 200
    assert _ask(app_client, conversation, "again?").status_code == 400
    assert USER_KEY not in caplog.text
    engine = create_engine(app_settings.database_url)
    with engine.connect() as connection:
        for table in ("conversations", "conversation_messages", "predictions"):
            rows = connection.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608 (fixed names)
            assert rows and USER_KEY not in repr(rows), table
    engine.dispose()


@pytest.fixture
def openai_client(app_settings: Settings, fake_llm: FakeLLM) -> Iterator[TestClient]:
    settings = app_settings.model_copy(
        update={
            "llm_provider": "openai",
            "llm_base_url": fake_llm.base_url("openai"),
            "llm_model": "local-model",
            "key_prefix": app_settings.key_prefix + "openai:",
        }  # fmt: skip
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_an_openai_compatible_server_runs_the_same_loop(openai_client: TestClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(turn("", tool_call("model_info", {"name": "eclo"}, id="call_1")), turn("It is version 1."))
    conversation = _conversation(openai_client)
    refused = _ask(openai_client, conversation, "v?")  # the user's Anthropic key is never sent to another server
    assert refused.status_code == 400 and "LLM_API_KEY" in refused.json()["error"]["message"]
    assert fake_llm.requests == []
    openai_client.app.state.assistant.settings = openai_client.app.state.assistant.settings.model_copy(  # type: ignore[attr-defined]
        update={"llm_api_key": SecretStr(LOCAL_KEY)}
    )
    answered = _ask(openai_client, conversation, "Which version is the ECLO model?")
    assert answered.status_code == 200, answered.text
    message = answered.json()["message"]
    assert message["content"] == "It is version 1." and message["steps"][0]["name"] == "model_info"
    first, second = fake_llm.requests
    assert first.path.endswith("/chat/completions") and first.body["model"] == "local-model"
    assert first.headers["authorization"] == f"Bearer {LOCAL_KEY}"
    tool_message = second.body["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_1"


def test_an_answer_stops_after_the_configured_steps_and_tool_outputs_are_cut(
    app_settings: Settings, fake_llm: FakeLLM
) -> None:
    settings = app_settings.model_copy(update={"assistant_max_steps": 2, "assistant_tool_output_chars": 500})
    fake_llm.script(*[turn("", tool_call("model_info", {})) for _ in range(3)])
    with TestClient(create_app(settings)) as client:
        answered = _ask(client, _conversation(client), "Tell me everything about the models, step by step.")
    assert answered.status_code == 200, answered.text
    message = answered.json()["message"]
    assert len(fake_llm.requests) == 2 and fake_llm.pending == 1  # two turns, then no third
    assert "stopped after 2 steps" in message["content"] and len(message["steps"]) == 2
    shown = fake_llm.requests[1].messages[-1]["content"][0]["content"]
    assert len(shown) < 600 and "(cut: " in shown
    assert len(orjson.dumps(message["steps"][0]["output"])) > 500  # kept whole in the conversation
