"""The Assistant page with streamlit's AppTest against the real API of the session stack, whose assistant asks the
loopback stand-in LLM (`fake_llm`): the key typed in the sidebar reaches the LLM, the answer streams into a chat
message with its tool steps and usage, past conversations are listed and opened, and a question without a key shows
the API's refusal."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from backend.schemas.eclo import CLASSIC_EXAMPLE
from frontend.views.assistant import chart_of, step_label, usage_caption
from tests.fixtures.dashboard import APP
from tests.fixtures.fake_llm import FakeLLM, tool_call, turn

pytestmark = pytest.mark.stack

PAGE = "views/assistant.py"
KEY_LABEL = "Anthropic API key"


def _open() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _ask(app: AppTest, question: str) -> AppTest:
    app.chat_input[0].set_value(question).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _with_key(app: AppTest, key: str) -> AppTest:
    (field,) = [t for t in app.sidebar.text_input if t.label == KEY_LABEL]
    field.input(key).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _said(app: AppTest, role: str) -> list[str]:
    """Each chat message's text of `role` (its first markdown: the steps' come after it)."""
    return [c.markdown[0].value for c in app.chat_message if c.name == role]


def _charts(app: AppTest) -> list[dict[str, Any]]:
    return [json.loads(e.proto.spec) for e in app.get("plotly_chart")]


def _question() -> str:
    """A question of its own: the API caches the answer to a first question it has seen."""
    return f"How is traffic? ({uuid.uuid4().hex[:8]})"


def test_the_page_renders_and_asks_for_a_key(live_api: str) -> None:
    app = _open()
    assert app.title[0].value == "Assistant"
    (field,) = [t for t in app.sidebar.text_input if t.label == KEY_LABEL]
    assert field.value == "" and field.proto.type == field.proto.PASSWORD
    assert any("Enter your Anthropic API key" in i.value for i in app.info)
    assert [s.label for s in app.sidebar.selectbox] == ["Model", "Dataset to talk about"]
    assert app.sidebar.selectbox[0].value == "claude-sonnet-4-5"
    assert len(app.chat_input) == 1


def test_a_question_streams_its_answer_with_the_tool_steps(live_api: str, fake_llm: FakeLLM) -> None:
    key = f"sk-ant-test-{uuid.uuid4().hex}"
    conditions = {k: v for k, v in CLASSIC_EXAMPLE.items() if k != "district"}
    fake_llm.script(
        turn("", tool_call("network_status", {"slowest": 3}), tool_call("risk_ranking", {"conditions": conditions})),
        turn("Traffic is light.", usage=(40, 9)),
    )
    question = _question()
    app = _ask(_with_key(_open(), key), question)

    assert fake_llm.requests and all(r.api_key == key for r in fake_llm.requests)
    assert fake_llm.requests[0].body["model"] == "claude-sonnet-4-5"
    assert fake_llm.requests[0].messages[0]["content"] == question
    assert _said(app, "user") == [question]
    assert _said(app, "assistant") == ["Traffic is light."]
    labels = [e.label for e in app.expander]
    assert len(labels) == 2, labels
    assert labels[0].startswith("#1 network_status · ") and labels[0].endswith(" ms")
    assert labels[1].startswith("#2 risk_ranking · ")
    (caption,) = [c.value for c in app.chat_message[-1].caption]
    assert caption == "52 tokens in · 16 out · claude-sonnet-4-5"  # both turns' usage, summed
    ranking = next(c for c in _charts(app) if "ranking" in c["layout"]["title"]["text"])
    assert ranking["data"][0]["type"] == "bar" and len(ranking["data"][0]["x"]) == 8
    # the conversation is open (the page ran again after the answer was saved) and listed in the sidebar
    (listed,) = [b for b in app.sidebar.button if b.label == question]
    assert listed.proto.type == "primary"
    assert not app.error
    assert key not in json.dumps(dict(app.query_params))


def test_a_past_conversation_is_listed_opened_and_deleted(live_api: str, api: httpx.Client, fake_llm: FakeLLM) -> None:
    fake_llm.script(turn("Eight districts, Jung-gu first."))
    question = f"Which district is riskiest? ({uuid.uuid4().hex[:8]})"
    conversation = api.post("/api/assistant/conversations", json={}).json()
    answered = api.post(
        f"/api/assistant/conversations/{conversation['id']}/messages",
        json={"content": question, "model": "claude-haiku-4-5"},
        headers={"X-Anthropic-API-Key": "sk-ant-past"},
    )
    assert answered.status_code == 200, answered.text

    app = _open()
    (listed,) = [b for b in app.sidebar.button if b.label == question]
    assert listed.proto.type == "tertiary"
    listed.click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert _said(app, "assistant") == ["Eight districts, Jung-gu first."]
    assert [c.value for c in app.chat_message[-1].caption] == ["12 tokens in · 7 out · claude-haiku-4-5"]
    assert app.query_params["conversation"] == conversation["id"]

    next(b for b in app.sidebar.button if b.label == "Delete this conversation").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert api.get(f"/api/assistant/conversations/{conversation['id']}").status_code == 404
    assert not [b for b in app.sidebar.button if b.label == question] and not app.chat_message


def test_a_question_without_a_key_shows_the_apis_refusal(live_api: str, api: httpx.Client, fake_llm: FakeLLM) -> None:
    before = api.get("/api/assistant/conversations", params={"size": 1}).json()["total"]
    app = _ask(_open(), _question())
    (error,) = [e.value for e in app.error]
    assert "X-Anthropic-API-Key" in error and "ANTHROPIC_API_KEY" in error
    assert not fake_llm.requests
    assert app.status[0].label == "The question was not answered"
    # the conversation made for the question is not kept empty
    assert api.get("/api/assistant/conversations", params={"size": 1}).json()["total"] == before


def test_the_chart_of_a_tool_output() -> None:
    ranking = {"ranking": [{"district": "중구", "english": "Jung-gu", "p_severe": 0.2, "eclo": 5.1, "risk_level": "x"}]}
    frame, label, value, key = chart_of(ranking)
    assert (label, value, key) == ("district", "p_severe", "ranking") and len(frame) == 1
    bins = {"column": "speed", "bins": [{"start": 0, "end": 10, "count": 4}, {"start": 10, "end": 20, "count": 2}]}
    frame, label, value, key = chart_of(bins)
    assert (label, value, key) == ("start", "count", "bins") and list(frame["start"]) == ["0", "10"]
    only = chart_of({"items": [{"value": 3}, {"value": 5}]})
    assert only is not None and only[1:3] == ("#", "value")
    assert chart_of({"rows": [{"name": "a", "flag": True}]}) is None
    assert chart_of("a text output") is None and chart_of({"rows": []}) is None


def test_step_and_usage_labels() -> None:
    step = {"order": 2, "name": "group_aggregate", "elapsed_ms": 1234.4, "is_error": True}
    assert step_label(step) == "#2 group_aggregate · 1,234 ms · error"
    message = {"usage": {"input_tokens": 1200, "output_tokens": 30}, "model": "m", "cached": True}
    assert usage_caption(message).startswith("1,200 tokens in · 30 out · m · cached answer")
