"""The assistant: conversations owned by the key that made them, answered by an LLM calling the service's tools.

A question is answered as JSON, or with `?stream=true` as server-sent events: `tool_call` and `tool_result` for
each tool as it runs, `text` deltas, then `done` (the saved answer) or `error` (the envelope and its status)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from backend.api.auth import AUTH_ERRORS, PredictKey
from backend.api.params import PageNumber
from backend.assistant.chat import KEY_HEADER, Assistant
from backend.core.errors import ServiceError
from backend.schemas.assistant import AnswerOut, ConversationCreate, ConversationOut, ConversationSummary, MessageCreate
from backend.schemas.errors import ErrorResponse
from backend.schemas.pages import Page

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/assistant", tags=["assistant"], responses=AUTH_ERRORS)

ConversationId = Annotated[str, Path(max_length=64)]
UserKey = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        max_length=512,
        pattern=r"^[\x21-\x7e]+$",
        description="your own Anthropic API key, used for this request only (LLM_PROVIDER=anthropic)",
    ),  # fmt: skip
]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "no LLM key, or the provider refused it"},
    404: {"model": ErrorResponse},
    429: {"model": ErrorResponse, "description": "the LLM provider is rate limiting (Retry-After)"},
    502: {"model": ErrorResponse, "description": "the LLM provider failed"},
    503: {"model": ErrorResponse},
    504: {"model": ErrorResponse, "description": "the LLM provider did not answer in time"},
}


def _assistant(request: Request) -> Assistant:
    return request.app.state.assistant


@router.post("/conversations", status_code=201, responses=ERRORS)
def create_conversation(
    request: Request, principal: PredictKey, body: ConversationCreate | None = None
) -> ConversationOut:
    """A new conversation; with `dataset_id`, about that dataset (the model is given its profile first)."""
    return _assistant(request).create(principal, body or ConversationCreate())


@router.get("/conversations", responses=ERRORS)
def list_conversations(
    request: Request, principal: PredictKey, page: PageNumber = 1, size: Annotated[int, Query(ge=1, le=100)] = 20
) -> Page[ConversationSummary]:
    """This key's conversations, the latest active first."""
    return _assistant(request).list(principal, page, size)


@router.get("/conversations/{conversation_id}", responses=ERRORS)
def get_conversation(request: Request, conversation_id: ConversationId, principal: PredictKey) -> ConversationOut:
    """A conversation with its messages: each answer with its tool steps (inputs, outputs, elapsed) and usage."""
    return _assistant(request).get(principal, conversation_id)


@router.delete("/conversations/{conversation_id}", status_code=204, responses=ERRORS)
def delete_conversation(request: Request, conversation_id: ConversationId, principal: PredictKey) -> Response:
    _assistant(request).delete(principal, conversation_id)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/messages",
    responses=ERRORS | {200: {"content": {"text/event-stream": {}}}},
)
async def ask(
    request: Request,
    conversation_id: ConversationId,
    body: MessageCreate,
    principal: PredictKey,
    user_key: UserKey = None,
    stream: bool = False,
) -> Any:
    """Ask a question in the conversation. The LLM key: `X-Anthropic-API-Key` (yours, for this request only),
    else the server's ANTHROPIC_API_KEY."""
    assistant = _assistant(request)
    assistant.llm_key(user_key)  # no key: the 400 now, before any stream starts
    if not stream:
        return await assistant.answer(principal, conversation_id, body.content, model=body.model, user_key=user_key)
    await asyncio.to_thread(assistant.get, principal, conversation_id)  # a 404 before the stream starts
    events: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()

    async def emit(event: str, data: dict[str, Any]) -> None:
        await events.put((event, data))

    async def run() -> AnswerOut | None:
        try:
            return await assistant.answer(
                principal, conversation_id, body.content, model=body.model, user_key=user_key, emit=emit
            )
        except ServiceError as exc:
            error = {"code": exc.code, "message": exc.message, "details": exc.details}
            await events.put(("error", {"status": exc.status_code, "error": error}))
        except Exception:
            log.exception("assistant answer failed")
            error = {"code": "internal_error", "message": "internal error; it has been logged", "details": []}
            await events.put(("error", {"status": 500, "error": error}))
        finally:
            await events.put(None)
        return None

    async def sse() -> AsyncIterator[bytes]:
        task = asyncio.create_task(run())
        try:
            while (item := await events.get()) is not None:
                yield b"event: " + item[0].encode() + b"\ndata: " + orjson.dumps(item[1]) + b"\n\n"
        finally:
            if not task.done():
                task.cancel()

    return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
