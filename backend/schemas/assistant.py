"""The assistant's conversations: what a client sends and what it is answered, bounded."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_QUESTION_CHARS = 8000


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConversationCreate(_Input):
    dataset_id: str | None = Field(
        default=None,
        min_length=32,
        max_length=32,
        description="a dataset to talk about: the model is given its profile first",
    )
    title: str | None = Field(default=None, min_length=1, max_length=200)


class MessageCreate(_Input):
    content: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question")
    model: str | None = Field(
        default=None, min_length=1, max_length=100, description="the LLM to ask (LLM_MODEL when absent)"
    )


class Step(BaseModel):
    """One tool call of an answer."""

    order: int
    name: str
    input: dict[str, Any]
    output: Any
    is_error: bool
    elapsed_ms: float


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class MessageOut(BaseModel):
    position: int
    role: Literal["user", "assistant"]
    content: str
    steps: list[Step] = []
    usage: Usage | None = None
    model: str | None = None
    cached: bool = False
    created_at: datetime


class _Conversation(BaseModel):
    id: str
    title: str | None
    dataset_id: str | None
    model: str | None
    created_at: datetime
    updated_at: datetime


class ConversationSummary(_Conversation):
    messages: int


class ConversationOut(_Conversation):
    messages: list[MessageOut]


class AnswerOut(BaseModel):
    conversation_id: str
    message: MessageOut
