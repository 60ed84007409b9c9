"""The assistant's LLM layer against the loopback stand-in of both providers: answers streamed or not, tool calls
and their results in each wire format, and every failure as the status our API answers, the key never shown."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from backend.assistant.llm import KEY_HEADER, LLMError, LLMProvider, Turn, make_provider
from backend.dev.processes import free_port
from tests.fixtures.fake_llm import FakeLLM, failure, stall, tool_call, turn

pytestmark = pytest.mark.unit

KINDS = ["anthropic", "openai"]
KEY = "sk-fake-0123456789-do-not-show-me-abcdef"
MODEL = "fake-model-1"
SYSTEM = "You answer questions about road traffic."
TOOLS = [
    {
        "name": "predict_traffic",
        "description": "Predict the traffic at a sensor.",
        "input_schema": {
            "type": "object",
            "properties": {"sensor_id": {"type": "string"}, "horizon_minutes": {"type": "integer"}},
            "required": ["sensor_id"],
        },
    }
]
QUESTION = [{"role": "user", "content": "How busy will sensor S1 be in an hour?"}]


def provider(fake: FakeLLM, kind: str, *, timeout: float = 5.0, max_retries: int = 2, base_url: str = "") -> Any:
    return make_provider(
        kind,
        api_key=KEY,
        base_url=base_url or fake.base_url(kind),
        timeout_seconds=timeout,
        max_retries=max_retries,
    )


async def ask(llm: LLMProvider, messages: list[dict[str, Any]] = QUESTION, deltas: list[str] | None = None) -> Turn:
    async def on_text(text: str) -> None:
        assert deltas is not None
        deltas.append(text)

    return await llm.turn(
        model=MODEL,
        system=SYSTEM,
        messages=messages,
        tools=TOOLS,
        max_tokens=256,
        on_text=None if deltas is None else on_text,
    )


def answer(llm: Any, messages: list[dict[str, Any]] = QUESTION, deltas: list[str] | None = None) -> Turn:
    async def main() -> Turn:
        try:
            return await ask(llm, messages, deltas)
        finally:
            await llm.aclose()

    return asyncio.run(main())


def failing(llm: Any, *, streamed: bool = False) -> LLMError:
    with pytest.raises(LLMError) as caught:
        answer(llm, deltas=[] if streamed else None)
    return caught.value


@pytest.mark.parametrize("kind", KINDS)
def test_a_text_answer(fake_llm: FakeLLM, kind: str) -> None:
    fake_llm.script(turn("Sensor S1 will be busy.", usage=(21, 8)))
    result = answer(provider(fake_llm, kind))

    assert result.blocks == [{"type": "text", "text": "Sensor S1 will be busy."}]
    assert (result.stop_reason, result.usage, result.model) == (
        "end_turn",
        {"input_tokens": 21, "output_tokens": 8},
        MODEL,
    )
    [request] = fake_llm.requests
    assert request.api_key == KEY
    assert not request.body.get("stream")
    if kind == "anthropic":
        assert request.path == "/v1/messages"
        assert "anthropic-version" in request.headers
        assert request.body["system"] == SYSTEM
        assert request.body["messages"] == QUESTION
        assert request.body["max_tokens"] == 256
    else:
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.body["messages"] == [{"role": "system", "content": SYSTEM}, *QUESTION]
        assert request.body["max_tokens"] == 256  # a compatible server (a base_url) is sent the classic parameter


@pytest.mark.parametrize("kind", KINDS)
def test_a_streamed_answer_delivers_its_deltas_in_order(fake_llm: FakeLLM, kind: str) -> None:
    text = "Sensor S1 will be busy from 17:00, with about 1200 vehicles an hour."
    fake_llm.script(turn(text, usage=(30, 17)))
    deltas: list[str] = []
    result = answer(provider(fake_llm, kind), deltas=deltas)

    assert len(deltas) > 5
    assert "".join(deltas) == result.text == text
    assert result.blocks == [{"type": "text", "text": text}]
    assert (result.stop_reason, result.usage) == ("end_turn", {"input_tokens": 30, "output_tokens": 17})
    [request] = fake_llm.requests
    assert request.body["stream"] is True
    if kind == "openai":
        assert request.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_tool_use_turn(fake_llm: FakeLLM, kind: str, streamed: bool) -> None:
    call = tool_call("predict_traffic", {"sensor_id": "S1", "horizon_minutes": 60}, id="call_1")
    fake_llm.script(turn("Let me look.", call, usage=(40, 12)))
    deltas: list[str] = []
    result = answer(provider(fake_llm, kind), deltas=deltas if streamed else None)

    assert result.blocks == [
        {"type": "text", "text": "Let me look."},
        {
            "type": "tool_use",
            "id": "call_1",
            "name": "predict_traffic",
            "input": {"sensor_id": "S1", "horizon_minutes": 60},
        },
    ]
    assert result.stop_reason == "tool_use"
    assert result.usage == {"input_tokens": 40, "output_tokens": 12}
    assert "".join(deltas) == ("Let me look." if streamed else "")
    [request] = fake_llm.requests
    if kind == "anthropic":
        assert request.body["tools"] == TOOLS
    else:
        [tool] = TOOLS
        function = {"name": tool["name"], "description": tool["description"], "parameters": tool["input_schema"]}
        assert request.body["tools"] == [{"type": "function", "function": function}]


@pytest.mark.parametrize("kind", KINDS)
def test_several_tool_calls_in_one_streamed_turn(fake_llm: FakeLLM, kind: str) -> None:
    calls = [tool_call("predict_traffic", {"sensor_id": s}) for s in ("S1", "S2")]
    fake_llm.script(turn("", *calls))
    result = answer(provider(fake_llm, kind), deltas=[])

    assert [block["input"] for block in result.tool_uses] == [{"sensor_id": "S1"}, {"sensor_id": "S2"}]
    assert len({block["id"] for block in result.tool_uses}) == 2
    assert result.text == ""
    assert result.stop_reason == "tool_use"


@pytest.mark.parametrize("kind", KINDS)
def test_a_tool_result_goes_back_in_the_providers_format(fake_llm: FakeLLM, kind: str) -> None:
    fake_llm.script(
        turn("", tool_call("predict_traffic", {"sensor_id": "S1"}, id="call_7")),
        turn("About 1200 vehicles an hour.", usage=(80, 9)),
    )
    result_json = json.dumps({"sensor_id": "S1", "vehicles_per_hour": 1200})
    llm = provider(fake_llm, kind)

    async def conversation() -> tuple[Turn, Turn]:
        try:
            first = await ask(llm)
            messages = [
                *QUESTION,
                {"role": "assistant", "content": first.blocks},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_7", "content": result_json, "is_error": False}
                    ],
                },
            ]
            return first, await ask(llm, messages)
        finally:
            await llm.aclose()

    first, second = asyncio.run(conversation())

    assert first.stop_reason == "tool_use"
    assert (second.text, second.stop_reason, second.usage["input_tokens"]) == (
        "About 1200 vehicles an hour.",
        "end_turn",
        80,
    )
    sent = fake_llm.requests[1].messages
    if kind == "anthropic":
        assert sent[1] == {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "call_7", "name": "predict_traffic", "input": {"sensor_id": "S1"}}],
        }
        assert sent[2]["content"] == [
            {"type": "tool_result", "tool_use_id": "call_7", "content": result_json, "is_error": False}
        ]
    else:
        assistant, tool = sent[2], sent[3]
        assert assistant["role"] == "assistant" and assistant.get("content") is None
        assert assistant["tool_calls"] == [
            {
                "id": "call_7",
                "type": "function",
                "function": {"name": "predict_traffic", "arguments": '{"sensor_id": "S1"}'},
            }
        ]
        assert tool == {"role": "tool", "tool_call_id": "call_7", "content": result_json}
        assert len(sent) == 4


def test_a_failed_tool_says_so_to_an_openai_model(fake_llm: FakeLLM) -> None:
    fake_llm.script(turn("The sensor is unknown."))
    messages = [
        *QUESTION,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "predict_traffic", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": '{"error": "404"}', "is_error": True},
                {"type": "text", "text": "And S2?"},
            ],
        },
    ]
    answer(provider(fake_llm, "openai"), messages)

    sent = fake_llm.requests[0].messages
    assert sent[-2] == {"role": "tool", "tool_call_id": "c1", "content": 'Error: {"error": "404"}'}
    assert sent[-1] == {"role": "user", "content": "And S2?"}


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_key_is_a_400_naming_the_key_header(
    fake_llm: FakeLLM, kind: str, status: int, streamed: bool
) -> None:
    fake_llm.script(failure(status, f"invalid x-api-key {KEY}"))
    error = failing(provider(fake_llm, kind), streamed=streamed)

    assert (error.status, error.provider_status, error.retry_after) == (400, status, None)
    assert KEY_HEADER in error.message
    assert KEY not in str(error) and KEY not in repr(error)
    assert len(fake_llm.requests) == 1  # not retried


@pytest.mark.parametrize("kind", KINDS)
def test_rate_limited_upstream_is_a_429_with_its_retry_after(fake_llm: FakeLLM, kind: str) -> None:
    fake_llm.script(failure(429, "rate limited", headers={"retry-after": "7"}))
    error = failing(provider(fake_llm, kind, max_retries=0))

    assert (error.status, error.retry_after, error.provider_status) == (429, 7.0, 429)
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_server_error_is_retried_by_the_sdk(fake_llm: FakeLLM, kind: str, streamed: bool) -> None:
    fake_llm.script(failure(500), turn("Fine now."))
    started = time.monotonic()
    result = answer(provider(fake_llm, kind, max_retries=2), deltas=[] if streamed else None)

    assert result.text == "Fine now."
    assert len(fake_llm.requests) == 2
    assert time.monotonic() - started < 2  # the fake's retry-after-ms: 10 keeps the backoff short


@pytest.mark.parametrize("status", [500, 503, 529])
@pytest.mark.parametrize("kind", KINDS)
def test_server_errors_past_the_retries_are_a_502(fake_llm: FakeLLM, kind: str, status: int) -> None:
    fake_llm.script(failure(status), failure(status))
    error = failing(provider(fake_llm, kind, max_retries=1))

    assert (error.status, error.provider_status) == (502, status)
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_rejected_request_is_a_502_with_the_providers_message_trimmed(fake_llm: FakeLLM, kind: str) -> None:
    fake_llm.script(failure(400, f"messages.1: tool_use ids must be unique {'x' * 500} {KEY}"))
    error = failing(provider(fake_llm, kind))

    assert (error.status, error.provider_status) == (502, 400)
    assert "messages.1: tool_use ids must be unique" in error.message
    assert len(error.message) < 420
    assert KEY not in error.message


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_no_answer_within_the_timeout_is_a_504(fake_llm: FakeLLM, kind: str, streamed: bool) -> None:
    fake_llm.script(stall(3.0))
    started = time.monotonic()
    error = failing(provider(fake_llm, kind, timeout=0.5, max_retries=0), streamed=streamed)

    assert error.status == 504
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("kind", KINDS)
def test_a_timed_out_attempt_is_retried(fake_llm: FakeLLM, kind: str) -> None:
    fake_llm.script(stall(3.0), turn("Here."))
    assert answer(provider(fake_llm, kind, timeout=0.5, max_retries=1)).text == "Here."


@pytest.mark.parametrize("kind", KINDS)
def test_an_unreachable_provider_is_a_502(kind: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    llm = make_provider(
        kind,
        api_key=KEY,
        base_url=closed + ("/v1" if kind == "openai" else ""),
        timeout_seconds=2,
        max_retries=0,
    )
    error = failing(llm)

    assert (error.status, error.provider_status) == (502, None)
    assert KEY not in error.message


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_key_is_refused_before_calling(kind: str) -> None:
    with pytest.raises(LLMError) as caught:
        make_provider(kind, api_key="", base_url=None, timeout_seconds=1, max_retries=0)
    assert caught.value.status == 400 and KEY_HEADER in caught.value.message


def test_an_unknown_provider_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown LLM provider"):
        make_provider("mistral", api_key=KEY, base_url=None, timeout_seconds=1, max_retries=0)


@pytest.mark.parametrize("kind", KINDS)
def test_the_key_never_reaches_a_log_line(fake_llm: FakeLLM, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("", "anthropic", "openai", "httpx", "httpx2", "httpcore", "backend.assistant.llm"):
        caplog.set_level(logging.DEBUG, logger=name)
    fake_llm.script(
        turn("Hello."),
        turn("Hello again."),
        failure(500),
        turn("", tool_call("predict_traffic", {"sensor_id": "S1"})),
        failure(401, f"invalid key {KEY}"),
        failure(429, "slow down", headers={"retry-after": "1"}),
        failure(400, f"bad request with {KEY}"),
        stall(2.0),
    )
    errors: list[LLMError] = []

    async def session() -> None:
        llm = provider(fake_llm, kind, timeout=0.5, max_retries=0)
        retrying = provider(fake_llm, kind, timeout=5.0, max_retries=1)
        try:
            await ask(llm)
            await ask(llm, deltas=[])
            await ask(retrying)
            for _ in range(4):
                try:
                    await ask(llm, deltas=[])
                except LLMError as exc:
                    errors.append(exc)
        finally:
            await llm.aclose()
            await retrying.aclose()

    asyncio.run(session())

    assert [error.status for error in errors] == [400, 429, 502, 504]
    assert all(request.api_key == KEY for request in fake_llm.requests)
    sdk_records = [r for r in caplog.records if r.name.startswith((kind, "httpx2", "httpcore"))]
    assert any(r.levelno == logging.DEBUG for r in sdk_records), "the SDK's debug logging was not captured"
    for record in caplog.records:
        assert KEY not in record.getMessage(), record.name
        assert KEY not in (caplog.handler.format(record) or "")
    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error)
        assert error.__cause__ is None and error.__suppress_context__
