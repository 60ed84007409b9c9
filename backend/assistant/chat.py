"""The assistant: conversations kept per API key, each answer a loop of LLM turns calling the MCP server's tools
in-process with the caller's scopes, every step kept.

The LLM key is the caller's (`X-Anthropic-API-Key`, used for this request only) or the settings'; it is never
stored, logged or put in a record.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from sqlalchemy.orm import Session

from backend.core.config import Settings
from backend.core.errors import BadRequest, NotFound, ServiceError
from backend.core.metrics import ASSISTANT_CACHE, ASSISTANT_STEPS
from backend.db import conversations as stored
from backend.db.models import Conversation, ConversationMessage
from backend.db.session import guarded_session
from backend.mcp.access import acting_as
from backend.schemas.assistant import (
    AnswerOut,
    ConversationCreate,
    ConversationOut,
    ConversationSummary,
    MessageOut,
)
from backend.schemas.pages import Page
from backend.services.bundle import Services
from backend.services.keys import Principal

from .llm import KEY_HEADER, LLMError, LLMProvider, make_provider

log = logging.getLogger(__name__)

SYSTEM = """You are the analyst's assistant of a traffic prediction service: ECLO accident severity in Daegu (South
Korea) and congestion forecasts for road sensors, and uploaded datasets to explore. Answer with the tools' numbers,
never invented ones; say which tool gave them. ECLO inputs take Korean values: each tool lists them with their
English meaning. Be brief; answer in the user's language."""
PROFILE_CHARS = 6000

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


async def _silent(event: str, data: dict[str, Any]) -> None:
    return None


@dataclass
class _Answer:
    blocks: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    text: list[str] = field(default_factory=list)


def _described(conversation: Conversation) -> dict[str, Any]:
    """What a listing and a whole conversation both say of a conversation, besides its messages."""
    return {name: getattr(conversation, name) for name in ("id", "title", "dataset_id", "model", "created_at",
                                                            "updated_at")}  # fmt: skip


def _message_out(message: ConversationMessage) -> MessageOut:
    return MessageOut.model_validate(
        {
            "position": message.position,
            "role": message.role,
            "content": message.content,
            "steps": message.steps or [],
            "usage": message.usage,
            "model": message.model,
            "cached": message.cached,
            "created_at": message.created_at,
        }
    )


class Assistant:
    def __init__(self, services: Services, server: MCPServer, settings: Settings) -> None:
        self.services = services
        self.server = server
        self.settings = settings
        self.sessions = services.resources.sessions
        self.redis = services.resources.redis
        # Answers are cached only when every tool they called reads what does not change by the minute (a batch
        # submitted, the network now or the newest records are not answered again from a cache).
        self._tool_names = {t.name for t in server._tool_manager.list_tools()}
        self._cacheable = {t.name for t in server._tool_manager.list_tools() if (t.meta or {}).get("cacheable")}

    # -- conversations -------------------------------------------------------------------------------------------

    def _owned(self, session: Session, conversation_id: str, principal: Principal) -> Conversation:
        """The conversation, if `principal` made it (another key's is as absent as a missing one)."""
        found = stored.get_conversation(session, conversation_id) if len(conversation_id) == 32 else None
        if found is None or (principal.key_id is not None and found.key_id != principal.key_id):
            raise NotFound(f"no conversation {conversation_id[:40]!r}")
        return found

    def _out(self, session: Session, conversation: Conversation) -> ConversationOut:
        messages = [_message_out(m) for m in stored.messages_of(session, conversation.id)]
        return ConversationOut(**_described(conversation), messages=messages)

    def create(self, principal: Principal, body: ConversationCreate) -> ConversationOut:
        if body.dataset_id is not None:
            _demand_read(principal)  # its profile is given to the model: what GET .../profile needs
            self.services.explore.profile(body.dataset_id)  # 404 / 409 now, not at the first question
        with self._database() as session:
            conversation = stored.create_conversation(
                session,
                conversation_id=uuid.uuid4().hex,
                key_id=principal.key_id,
                title=body.title,
                dataset_id=body.dataset_id,
                model=None,
            )
            session.commit()
            return self._out(session, conversation)

    def list(self, principal: Principal, page: int, size: int) -> Page[ConversationSummary]:
        with self._database() as session:
            found, total = stored.list_conversations(
                session, key_id=principal.key_id, all_keys=principal.key_id is None, page=page, size=size
            )
            items = [ConversationSummary(**_described(c), messages=n) for c, n in found]
        return Page[ConversationSummary].build(items=items, total=total, page=page, size=size)

    def get(self, principal: Principal, conversation_id: str) -> ConversationOut:
        with self._database() as session:
            return self._out(session, self._owned(session, conversation_id, principal))

    def delete(self, principal: Principal, conversation_id: str) -> None:
        with self._database() as session:
            self._owned(session, conversation_id, principal)
            stored.delete_conversation(session, conversation_id)
            session.commit()

    def _database(self) -> Any:
        return guarded_session(self.sessions, "read or write the conversations")

    # -- answers -------------------------------------------------------------------------------------------------

    def llm_key(self, user_key: str | None) -> str:
        """The caller's Anthropic key (for the anthropic provider only), else the settings' key; 400 naming both
        without one."""
        settings = self.settings
        if settings.llm_provider != "anthropic":  # an Anthropic key is never sent to another server
            user_key = None
        configured = settings.anthropic_api_key if settings.llm_provider == "anthropic" else settings.llm_api_key
        key = user_key or (configured.get_secret_value() if configured else None)
        if not key:
            setting = "ANTHROPIC_API_KEY" if settings.llm_provider == "anthropic" else "LLM_API_KEY"
            raise BadRequest(
                f"the assistant needs an LLM key: send yours in the {KEY_HEADER} header, or set {setting} on the "
                "server",
                details=[{"field": KEY_HEADER}, {"setting": setting}],
            )
        return key

    def _provider(self, key: str) -> LLMProvider:
        settings = self.settings
        return make_provider(
            settings.llm_provider,
            api_key=key,
            base_url=settings.llm_base_url,
            timeout_seconds=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )

    async def answer(
        self,
        principal: Principal,
        conversation_id: str,
        content: str,
        *,
        model: str | None,
        user_key: str | None,
        emit: Emit = _silent,
    ) -> AnswerOut:
        key = self.llm_key(user_key)
        model = model or self.settings.llm_model
        conversation, history = await asyncio.to_thread(self._history, principal, conversation_id)
        cache_key = self._cache_key(model, conversation, content, principal) if not history else None
        cached = await self._cached(cache_key)
        if cached is not None:
            answer = _Answer(
                blocks=cached["blocks"], steps=cached["steps"], usage=cached["usage"], text=[cached["content"]]
            )
            for step in answer.steps:
                await emit("tool_call", {k: step[k] for k in ("order", "name", "input")})
                await emit("tool_result", step)
            await emit("text", {"delta": cached["content"]})
        else:
            provider = self._provider(key)
            try:
                answer = await self._run(provider, model, conversation, history, content, principal, emit)
            finally:
                await provider.aclose()
        text = "".join(answer.text).strip()
        if cached is None and cache_key is not None and all(s["name"] in self._cacheable for s in answer.steps):
            await self._remember(
                cache_key, {"content": text, "blocks": answer.blocks, "steps": answer.steps, "usage": answer.usage}
            )
        messages = [
            {"role": "user", "content": content, "blocks": [{"role": "user", "content": content}]},
            {
                "role": "assistant",
                "content": text,
                "blocks": answer.blocks,
                "steps": answer.steps,
                "usage": answer.usage,
                "model": model,
                "cached": cached is not None,
            },
        ]
        saved = await asyncio.to_thread(self._append, conversation_id, messages)
        out = AnswerOut(conversation_id=conversation_id, message=saved)
        await emit("done", out.model_dump(mode="json"))
        return out

    def _history(self, principal: Principal, conversation_id: str) -> tuple[Conversation, list[dict[str, Any]]]:
        with self._database() as session:
            conversation = self._owned(session, conversation_id, principal)
            blocks = [b for m in stored.messages_of(session, conversation_id) for b in m.blocks]
            session.expunge(conversation)
        return conversation, blocks

    def _append(self, conversation_id: str, messages: list[dict[str, Any]]) -> MessageOut:
        try:
            with self._database() as session:
                saved = stored.append_messages(session, conversation_id, messages)
                session.commit()
                return _message_out(saved[-1])
        except LookupError as exc:  # deleted while it was being answered
            raise NotFound(f"conversation {conversation_id} was deleted while it was being answered") from exc

    def _system(self, conversation: Conversation, principal: Principal) -> str:
        if conversation.dataset_id is None:
            return SYSTEM
        _demand_read(principal)
        profile = self.services.explore.profile(conversation.dataset_id).model_dump(mode="json")
        text = orjson.dumps(profile).decode()[:PROFILE_CHARS]
        return (
            f"{SYSTEM}\n\nThis conversation is about dataset {conversation.dataset_id}; call the data tools with "
            f"that id. Its profile (possibly cut short):\n{text}"
        )

    async def _run(
        self,
        provider: LLMProvider,
        model: str,
        conversation: Conversation,
        history: list[dict[str, Any]],
        content: str,
        principal: Principal,
        emit: Emit,
    ) -> _Answer:
        system = await asyncio.to_thread(self._system, conversation, principal)
        tools = [
            {"name": t.name, "description": t.description or "", "input_schema": t.input_schema}
            for t in await self.server.list_tools()
        ]
        answer = _Answer()
        new: list[dict[str, Any]] = [{"role": "user", "content": content}]

        async def on_text(delta: str) -> None:
            await emit("text", {"delta": delta})

        for _ in range(self.settings.assistant_max_steps):
            try:
                turn = await provider.turn(
                    model=model,
                    system=system,
                    messages=history + new,
                    tools=tools,
                    max_tokens=self.settings.llm_max_tokens,
                    on_text=on_text,
                )
            except LLMError as exc:
                raise LLMFailure(exc) from exc
            answer.usage["input_tokens"] += turn.usage.get("input_tokens", 0)
            answer.usage["output_tokens"] += turn.usage.get("output_tokens", 0)
            calls = [b for b in turn.blocks if b.get("type") == "tool_use"] if turn.stop_reason == "tool_use" else []
            # kept as it will be replayed: tool calls only with their results to come, never an empty message
            kept = [b for b in turn.blocks if b.get("type") == "text" and b["text"]] + calls
            new.append({"role": "assistant", "content": kept or [{"type": "text", "text": "(no answer)"}]})
            answer.text.extend(b["text"] for b in turn.blocks if b.get("type") == "text")
            if not calls:
                break
            if any(b.get("type") == "text" and b["text"].strip() for b in turn.blocks):
                answer.text.append("\n\n")  # this turn's words apart from the next turn's
                await emit("text", {"delta": "\n\n"})
            results = []
            for call in calls:
                step = await self._call(call, len(answer.steps) + 1, principal, emit)
                answer.steps.append(step)
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": call["id"],
                        "is_error": step["is_error"],
                        "content": self._shown(step["output"]),
                    }
                )
            new.append({"role": "user", "content": results})
        else:
            note = f"(stopped after {self.settings.assistant_max_steps} steps: ask again to go on)"
            new.append({"role": "assistant", "content": [{"type": "text", "text": note}]})
            answer.text.append(f"\n\n{note}")
            await emit("text", {"delta": f"\n\n{note}"})
        answer.blocks = new[1:]
        return answer

    async def _call(self, call: dict[str, Any], order: int, principal: Principal, emit: Emit) -> dict[str, Any]:
        name, arguments = call["name"], call.get("input") or {}
        await emit("tool_call", {"order": order, "name": name, "input": arguments})
        started = time.perf_counter()
        try:
            with acting_as(principal):
                result = await self.server.call_tool(name, arguments)
            is_error = bool(getattr(result, "is_error", False))
            output: Any = result.structured_content  # type: ignore[union-attr]
            if output is None:
                output = "\n".join(getattr(c, "text", "") for c in result.content)  # type: ignore[union-attr]
        except ToolError as exc:
            is_error, output = True, str(exc)
        step = {
            "order": order,
            "name": name,
            "input": arguments,
            "output": output,
            "is_error": is_error,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        known = name in self._tool_names
        ASSISTANT_STEPS.labels(name if known else "unknown", "error" if is_error else "ok").inc()
        await emit("tool_result", step)
        return step

    def _shown(self, output: Any) -> str:
        """A tool's output as the model reads it, cut to ASSISTANT_TOOL_OUTPUT_CHARS."""
        text = output if isinstance(output, str) else orjson.dumps(output).decode()
        most = self.settings.assistant_tool_output_chars
        return text if len(text) <= most else f"{text[:most]}... (cut: {len(text) - most} more characters)"

    # -- the first-question cache --------------------------------------------------------------------------------

    def _cache_key(self, model: str, conversation: Conversation, content: str, principal: Principal) -> str | None:
        """Same question, model versions, dataset and key (an answer may hold what only that key may read)."""
        if not self.settings.assistant_cache_enabled:
            return None
        registry = self.services.resources.registry
        versions = sorted((n, registry.get(n).version) for n in registry.names())
        question = " ".join(content.split())
        basis = orjson.dumps([self.settings.llm_provider, model, conversation.dataset_id, question, versions,
                              principal.key_id, sorted(principal.scopes)])  # fmt: skip
        return f"{self.settings.key_prefix}assistant:first:{hashlib.sha256(basis).hexdigest()}"

    async def _cached(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        try:
            raw = await asyncio.to_thread(self.redis.get, key)
        except redis.RedisError:  # a cache that is down is a miss
            log.warning("assistant cache unreadable", exc_info=True)
            raw = None
        ASSISTANT_CACHE.labels("hit" if raw else "miss").inc()
        return orjson.loads(raw) if raw else None

    async def _remember(self, key: str, value: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self.redis.set, key, orjson.dumps(value), ex=self.settings.assistant_cache_ttl_seconds
            )
        except redis.RedisError:
            log.warning("assistant cache unwritable", exc_info=True)


def _demand_read(principal: Principal) -> None:
    principal.demand("read", f"API key {principal.key_id} ({principal.name}) lacks the 'read' scope a conversation "
                     "about a dataset needs (the model is given the dataset's profile)")  # fmt: skip


class LLMFailure(ServiceError):
    """The LLM provider's failure as this API answers it: the status LLMError chose, and Retry-After on a 429."""

    def __init__(self, exc: LLMError) -> None:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
        super().__init__(exc.message, details=[{"provider_status": exc.provider_status}], headers=headers)
        self.status_code = exc.status
        self.code = {400: "llm_key_refused", 429: "llm_rate_limited", 504: "llm_timeout"}.get(exc.status, "llm_error")
