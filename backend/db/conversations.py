"""The assistant's conversations and their messages; a session passed in, committed by the caller."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from backend.db.models import Conversation, ConversationMessage, utcnow

TITLE_CHARS = 80


def create_conversation(
    session: Session,
    *,
    conversation_id: str,
    key_id: str | None,
    title: str | None,
    dataset_id: str | None,
    model: str | None,
) -> Conversation:
    now = utcnow()
    conversation = Conversation(
        id=conversation_id, key_id=key_id, title=title, dataset_id=dataset_id, model=model, created_at=now,
        updated_at=now,
    )  # fmt: skip
    session.add(conversation)
    session.flush()
    return conversation


def get_conversation(session: Session, conversation_id: str) -> Conversation | None:
    return session.get(Conversation, conversation_id)


def list_conversations(
    session: Session, *, key_id: str | None, all_keys: bool, page: int, size: int
) -> tuple[list[tuple[Conversation, int]], int]:
    """A page of conversations, the most recently updated first, each with its number of messages; and how many
    there are. Only `key_id`'s unless `all_keys`, or unless `key_id` is None (AUTH_ENABLED=false: everyone's)."""
    owned = Conversation.key_id == key_id if key_id is not None and not all_keys else None
    total_query = select(func.count()).select_from(Conversation)
    counts = (
        select(ConversationMessage.conversation_id, func.count().label("messages"))
        .group_by(ConversationMessage.conversation_id)
        .subquery()
    )
    query = select(Conversation, func.coalesce(counts.c.messages, 0)).outerjoin(
        counts, counts.c.conversation_id == Conversation.id
    )
    if owned is not None:
        total_query = total_query.where(owned)
        query = query.where(owned)
    total = session.scalar(total_query) or 0
    rows = session.execute(
        query.order_by(Conversation.updated_at.desc(), Conversation.id).offset((page - 1) * size).limit(size)
    ).all()
    return [(conversation, int(count)) for conversation, count in rows], total


def messages_of(session: Session, conversation_id: str) -> list[ConversationMessage]:
    return list(
        session.scalars(
            select(ConversationMessage)
            .where(ConversationMessage.conversation_id == conversation_id)
            .order_by(ConversationMessage.position)
        )
    )


def append_messages(
    session: Session, conversation_id: str, messages: list[dict[str, Any]]
) -> list[ConversationMessage]:
    """Store `messages` (fields of ConversationMessage: role, content, blocks, and optionally steps, usage, model,
    cached) after the conversation's last, and touch the conversation: its `updated_at`, its `model` (the last
    assistant message's that names one), and its title when it has none (the first user message's opening).
    LookupError if there is no such conversation. On PostgreSQL the conversation's row stays locked until the
    caller commits, so two appends to one conversation take turns rather than collide on a position."""
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise LookupError(f"no conversation {conversation_id!r}")
    last = session.scalar(
        select(func.max(ConversationMessage.position)).where(ConversationMessage.conversation_id == conversation_id)
    )
    start = 0 if last is None else last + 1
    now = utcnow()
    rows = [
        ConversationMessage(**{"created_at": now, **message, "conversation_id": conversation_id, "position": start + i})
        for i, message in enumerate(messages)
    ]
    session.add_all(rows)
    conversation.updated_at = now
    models = [m["model"] for m in messages if m.get("role") == "assistant" and m.get("model")]
    if models:
        conversation.model = models[-1]
    if not (conversation.title or "").strip():
        first = next((m for m in messages if m.get("role") == "user" and (m.get("content") or "").strip()), None)
        if first is not None:
            conversation.title = " ".join(first["content"].split())[:TITLE_CHARS]
    session.flush()
    return rows


def delete_conversation(session: Session, conversation_id: str) -> bool:
    """The conversation and its messages (deleted explicitly too: the cascade needs SQLite's foreign keys on, which
    only the service's own engine sets)."""
    session.execute(delete(ConversationMessage).where(ConversationMessage.conversation_id == conversation_id))
    return session.execute(delete(Conversation).where(Conversation.id == conversation_id)).rowcount > 0  # type: ignore[attr-defined]
