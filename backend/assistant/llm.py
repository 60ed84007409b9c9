"""The LLM behind the assistant, one interface over two wire formats.

The conversation is kept in Anthropic's Messages shape (the neutral format): user messages with text or
`tool_result` blocks, assistant messages with `text` and `tool_use` blocks, tools as `{name, description,
input_schema}`. `AnthropicProvider` sends it as it is; `OpenAICompatibleProvider` converts it to chat completions
and the answer back. Both use the official SDKs, whose own retry loop retries 408/409/429/5xx, timeouts and
connection failures (honouring `retry-after-ms`/`retry-after`); what fails after that becomes an `LLMError` whose
text is ours, so that no key the SDK or the provider echoes reaches a log line or a response.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anthropic
import openai

log = logging.getLogger(__name__)

KEY_HEADER = "X-Anthropic-API-Key"
PROVIDER_MESSAGE_CHARS = 300

TextSink = Callable[[str], Awaitable[None]]


@dataclass
class Turn:
    """One answer of the model: its text and tool_use blocks (Anthropic shape, in order) and why it stopped."""

    blocks: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    model: str = ""

    @property
    def text(self) -> str:
        return "".join(block["text"] for block in self.blocks if block["type"] == "text")

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [block for block in self.blocks if block["type"] == "tool_use"]


class LLMError(Exception):
    """The provider failed: `status` is what our API answers (400 key refused, 429 rate limited upstream,
    502 provider error or unreachable, 504 timeout)."""

    def __init__(
        self, status: int, message: str, *, retry_after: float | None = None, provider_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.provider_status = provider_status

    def __repr__(self) -> str:
        return f"LLMError(status={self.status}, message={self.message!r}, provider_status={self.provider_status})"


class LLMProvider(Protocol):
    name: str

    async def turn(
        self,
        *,
        model: str,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
        on_text: TextSink | None = None,
    ) -> Turn: ...

    async def aclose(self) -> None: ...


class AnthropicProvider:
    """The Anthropic Messages API through the `anthropic` SDK."""

    name = "anthropic"
    key_setting = "ANTHROPIC_API_KEY"

    def __init__(
        self, *, api_key: str, base_url: str | None = None, timeout_seconds: float = 60.0, max_retries: int = 2
    ) -> None:
        _require_key(api_key, self.key_setting)
        self._api_key = api_key
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=max_retries
        )

    async def turn(
        self,
        *,
        model: str,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
        on_text: TextSink | None = None,
    ) -> Turn:
        request: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
        if system:
            request["system"] = system
        if tools:
            request["tools"] = tools
        try:
            if on_text is None:
                message = await self._client.messages.create(**request)
            else:
                async with self._client.messages.stream(**request) as stream:
                    async for event in stream:
                        if event.type == "text":
                            await on_text(event.text)
                    message = await stream.get_final_message()
        except anthropic.APIError as exc:
            raise _failure(self, exc, anthropic) from None
        except Exception as exc:  # a stream cut short surfaces as the HTTP client's own error, not the SDK's
            raise _broken(self, exc) from None
        return Turn(
            blocks=[block for block in map(_anthropic_block, message.content) if block is not None],
            stop_reason=message.stop_reason or "end_turn",
            usage=_anthropic_usage(message.usage),
            model=message.model,
        )

    async def aclose(self) -> None:
        await self._client.close()


class OpenAICompatibleProvider:
    """Chat completions through the `openai` SDK: OpenAI itself, or an OpenAI-compatible server at `base_url`."""

    name = "openai"
    key_setting = "LLM_API_KEY"

    def __init__(
        self, *, api_key: str, base_url: str | None = None, timeout_seconds: float = 60.0, max_retries: int = 2
    ) -> None:
        _require_key(api_key, self.key_setting)
        self._api_key = api_key
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=max_retries
        )
        # OpenAI's reasoning models refuse the deprecated `max_tokens`; compatible servers often know only that one.
        self._max_tokens_param = "max_tokens" if base_url else "max_completion_tokens"

    async def turn(
        self,
        *,
        model: str,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
        on_text: TextSink | None = None,
    ) -> Turn:
        request: dict[str, Any] = {
            "model": model,
            "messages": chat_messages(system, messages),
            self._max_tokens_param: max_tokens,
        }
        if tools:
            request["tools"] = chat_tools(tools)
        try:
            if on_text is None:
                return _turn_from_completion(await self._client.chat.completions.create(**request), model)
            return await self._streamed_turn(request, model, on_text)
        except openai.APIError as exc:
            raise _failure(self, exc, openai) from None
        except Exception as exc:  # as above
            raise _broken(self, exc) from None

    async def _streamed_turn(self, request: dict[str, Any], model: str, on_text: TextSink) -> Turn:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish_reason: str | None = None
        usage: Any = None
        answered_by = model
        stream = await self._client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            async for chunk in stream:
                answered_by = chunk.model or answered_by
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta.content:
                        text.append(choice.delta.content)
                        await on_text(choice.delta.content)
                    for call in choice.delta.tool_calls or []:
                        slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = call.id or slot["id"]
                        if call.function is not None:
                            slot["name"] = call.function.name or slot["name"]
                            slot["arguments"] += call.function.arguments or ""
        return _neutral_turn("".join(text), [calls[i] for i in sorted(calls)], finish_reason, usage, answered_by)

    async def aclose(self) -> None:
        await self._client.close()


def make_provider(
    kind: str, *, api_key: str, base_url: str | None, timeout_seconds: float, max_retries: int
) -> LLMProvider:
    providers: dict[str, type[AnthropicProvider] | type[OpenAICompatibleProvider]] = {
        "anthropic": AnthropicProvider,
        "openai": OpenAICompatibleProvider,
    }
    if kind not in providers:
        raise ValueError(f"unknown LLM provider {kind!r} (expected one of {', '.join(providers)})")
    return providers[kind](api_key=api_key, base_url=base_url, timeout_seconds=timeout_seconds, max_retries=max_retries)


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral tools as chat-completions function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool.get("description") or "",
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
            },
        }
        for tool in tools
    ]


def chat_messages(system: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral messages as chat-completions messages: tool_use blocks become the assistant's `tool_calls`, each
    tool_result a `tool` message (before any text of the same user turn, as the calls must be answered first)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "assistant":
            text = "".join(block["text"] for block in content if block.get("type") == "text")
            calls = [
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": json.dumps(block.get("input") or {})},
                }
                for block in content
                if block.get("type") == "tool_use"
            ]
            converted: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
            if calls:
                converted["tool_calls"] = calls
            out.append(converted)
        else:
            texts = []
            for block in content:
                if block.get("type") == "tool_result":
                    out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": _result_text(block)})
                elif block.get("type") == "text":
                    texts.append(block["text"])
            if texts:
                out.append({"role": "user", "content": "\n\n".join(texts)})
    return out


def _result_text(block: Mapping[str, Any]) -> str:
    """A tool result's text; chat completions have no error flag, so a failed call says so in its text."""
    content = block.get("content", "")
    if not isinstance(content, str):
        content = "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return f"Error: {content}" if block.get("is_error") else content


def _anthropic_block(block: Any) -> dict[str, Any] | None:
    if block.type == "text":
        return {"type": "text", "text": block.text} if block.text else None
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input or {})}
    return None


def _anthropic_usage(usage: Any) -> dict[str, int]:
    """Input tokens include the cached ones, which Anthropic counts apart."""
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return {"input_tokens": usage.input_tokens + cached, "output_tokens": usage.output_tokens}


_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def _turn_from_completion(completion: Any, model: str) -> Turn:
    if not completion.choices:
        raise LLMError(502, "The LLM provider answered without a choice.")
    choice = completion.choices[0]
    calls = [
        {"id": call.id, "name": call.function.name, "arguments": call.function.arguments}
        for call in choice.message.tool_calls or []
        if call.type == "function"
    ]
    return _neutral_turn(
        choice.message.content or "", calls, choice.finish_reason, completion.usage, completion.model or model
    )


def _neutral_turn(text: str, calls: list[dict[str, str]], finish_reason: str | None, usage: Any, model: str) -> Turn:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for call in calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"] or f"call_{uuid.uuid4().hex[:24]}",
                "name": call["name"],
                "input": _tool_input(call["name"], call["arguments"]),
            }
        )
    stop_reason = _STOP_REASONS.get(finish_reason or "stop", finish_reason or "end_turn")
    if calls and stop_reason == "end_turn":
        stop_reason = "tool_use"  # some compatible servers answer tool calls with finish_reason "stop"
    return Turn(
        blocks=blocks,
        stop_reason=stop_reason,
        usage={
            "input_tokens": getattr(usage, "prompt_tokens", 0) or 0,
            "output_tokens": getattr(usage, "completion_tokens", 0) or 0,
        },
        model=model,
    )


def _tool_input(name: str, arguments: str) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise LLMError(502, f"The LLM provider called the tool {name!r} with arguments that are not a JSON object.")
    return parsed


def _require_key(api_key: str, key_setting: str) -> None:
    if not api_key:
        raise LLMError(400, f"No LLM API key: send one in the {KEY_HEADER} header or set {key_setting}.")


def _failure(provider: AnthropicProvider | OpenAICompatibleProvider, exc: Exception, sdk: Any) -> LLMError:
    """The SDK's exception (after its retries) as our own error; nothing of the SDK's text is kept but the
    provider's own message on a refused request, trimmed and with the key masked."""
    error = _classify(provider, exc, sdk)
    log.warning(
        "LLM %s call failed: %s, provider status %s, answering %d",
        provider.name,
        type(exc).__name__,
        error.provider_status,
        error.status,
    )
    return error


def _broken(provider: AnthropicProvider | OpenAICompatibleProvider, exc: Exception) -> LLMError:
    log.warning("LLM provider %s: the answer broke off (%s)", provider.name, type(exc).__name__)
    return LLMError(502, f"The LLM provider ({provider.name}) broke off while answering.")


def _classify(provider: AnthropicProvider | OpenAICompatibleProvider, exc: Exception, sdk: Any) -> LLMError:
    if isinstance(exc, sdk.APITimeoutError):
        return LLMError(504, f"The LLM provider ({provider.name}) did not answer in time.")
    if isinstance(exc, sdk.APIConnectionError):
        return LLMError(502, f"The LLM provider ({provider.name}) could not be reached.")
    if not isinstance(exc, sdk.APIStatusError):
        return LLMError(502, f"The LLM provider ({provider.name}) failed while answering.")
    status: int = exc.status_code
    error_type = _error_type(exc.body)
    if status in (401, 403):
        return LLMError(
            400,
            f"The LLM provider ({provider.name}) refused the API key (HTTP {status}): check the key sent in the "
            f"{KEY_HEADER} header or the {provider.key_setting} setting.",
            provider_status=status,
        )
    if status == 429 or error_type == "rate_limit_error":
        return LLMError(
            429,
            f"The LLM provider ({provider.name}) is rate limiting this key; try again later.",
            retry_after=_retry_after(exc.response.headers) if status == 429 else None,
            provider_status=status,
        )
    if status >= 500 or status < 400:  # below 400: an error event in a stream that had started well
        detail = f"HTTP {status}" if status >= 400 else error_type or "error event"
        return LLMError(502, f"The LLM provider ({provider.name}) failed ({detail}).", provider_status=status)
    said = _provider_message(exc.body, provider._api_key)
    return LLMError(
        502,
        f"The LLM provider ({provider.name}) rejected the request (HTTP {status})" + (f": {said}" if said else "."),
        provider_status=status,
    )


def _error_type(body: object) -> str | None:
    error = body.get("error", body) if isinstance(body, Mapping) else None
    kind = error.get("type") if isinstance(error, Mapping) else None
    return kind if isinstance(kind, str) else None


def _provider_message(body: object, api_key: str) -> str:
    """The provider's `error.message` (Anthropic's body, or OpenAI's error object), at most 300 characters."""
    error = body.get("error", body) if isinstance(body, Mapping) else body
    message = error.get("message") if isinstance(error, Mapping) else error
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())
    if api_key:
        message = message.replace(api_key, "[key]")
    return message if len(message) <= PROVIDER_MESSAGE_CHARS else message[: PROVIDER_MESSAGE_CHARS - 1] + "…"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    parsed = email.utils.parsedate_tz(value) if value else None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time()) if parsed else None
