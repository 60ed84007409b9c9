"""The assistant's conversations and their messages, on SQLite and (when it answers) PostgreSQL."""

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db import conversations
from backend.db.conversations import (
    append_messages,
    create_conversation,
    delete_conversation,
    get_conversation,
    list_conversations,
    messages_of,
)
from backend.db.models import Conversation, ConversationMessage

START = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reading of the clock a minute after the last: the order by `updated_at` is then certain."""
    minutes = count()
    monkeypatch.setattr(conversations, "utcnow", lambda: START + timedelta(minutes=next(minutes)))


def _new(session: Session, conversation_id: str, key_id: str | None = "k1", **fields: str | None) -> None:
    fields = {"title": None, "dataset_id": None, "model": None, **fields}
    create_conversation(session, conversation_id=conversation_id, key_id=key_id, **fields)  # type: ignore[arg-type]


def _turn(question: str, answer: str, model: str | None = "claude-x") -> list[dict]:
    tool_use = {"type": "tool_use", "id": "t1", "name": "predict", "input": {"weather": "맑음"}}
    asked = [{"role": "user", "content": [{"type": "text", "text": question}]}]
    return [
        {"role": "user", "content": question, "blocks": asked},
        {
            "role": "assistant", "content": answer, "model": model, "usage": {"input_tokens": 120, "output_tokens": 30},
            "steps": [{"order": 0, "name": "predict", "input": {"weather": "맑음"}, "output": {"eclo": 3.5},
                       "is_error": False, "elapsed_ms": 12.5}],
            "blocks": [
                {"role": "assistant", "content": [tool_use]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "3.5"}]},
                {"role": "assistant", "content": [{"type": "text", "text": answer}]},
            ],
        },
    ]  # fmt: skip


def test_a_conversation_keeps_its_messages_in_order_with_their_blocks(db_session: Session) -> None:
    _new(db_session, "c1", dataset_id="d1")
    db_session.commit()
    stored = get_conversation(db_session, "c1")
    assert stored is not None and stored.key_id == "k1" and stored.dataset_id == "d1" and stored.title is None
    assert stored.created_at == stored.updated_at == START
    first = append_messages(db_session, "c1", _turn("서울의 위험도는?", "낮음"))
    db_session.commit()
    second = append_messages(db_session, "c1", _turn("부산은?", "보통"))
    db_session.commit()
    assert [m.position for m in first + second] == [0, 1, 2, 3]
    db_session.expunge_all()
    messages = messages_of(db_session, "c1")
    assert [(m.position, m.role, m.content) for m in messages] == [
        (0, "user", "서울의 위험도는?"), (1, "assistant", "낮음"), (2, "user", "부산은?"), (3, "assistant", "보통"),
    ]  # fmt: skip
    answer = messages[1]
    assert answer.blocks == _turn("서울의 위험도는?", "낮음")[1]["blocks"]
    assert answer.steps == [{"order": 0, "name": "predict", "input": {"weather": "맑음"}, "output": {"eclo": 3.5},
                             "is_error": False, "elapsed_ms": 12.5}]  # fmt: skip
    assert answer.usage == {"input_tokens": 120, "output_tokens": 30} and answer.model == "claude-x"
    assert answer.cached is False and messages[0].steps is None and messages[0].usage is None
    assert messages[0].created_at.tzinfo is not None
    assert messages_of(db_session, "nothing") == []


def test_appending_touches_the_conversation(db_session: Session) -> None:
    _new(db_session, "c1", model="old-model")
    db_session.commit()
    question = "  What is\nthe risk  " + "x" * 100
    append_messages(db_session, "c1", _turn(question, "low", model="new-model"))
    db_session.commit()
    db_session.expunge_all()
    stored = get_conversation(db_session, "c1")
    assert stored is not None and stored.model == "new-model" and stored.updated_at > stored.created_at
    assert stored.title == ("What is the risk " + "x" * 100)[:80] and len(stored.title) == 80
    title, touched = stored.title, stored.updated_at
    # A title is set once; an answer without a model keeps the conversation's.
    append_messages(db_session, "c1", _turn("another question", "ok", model=None))
    db_session.commit()
    db_session.expunge_all()
    again = get_conversation(db_session, "c1")
    assert again is not None and again.title == title and again.model == "new-model"
    assert again.updated_at > touched
    # A given title is kept.
    _new(db_session, "c2", title="Mine")
    append_messages(db_session, "c2", _turn("question", "answer"))
    db_session.commit()
    assert get_conversation(db_session, "c2").title == "Mine"  # type: ignore[union-attr]


def test_appending_to_no_conversation_is_a_lookup_error(db_session: Session) -> None:
    with pytest.raises(LookupError):
        append_messages(db_session, "nothing", _turn("q", "a"))


def test_a_position_is_taken_once(db_session: Session) -> None:
    _new(db_session, "c1")
    append_messages(db_session, "c1", _turn("q", "a"))
    db_session.commit()
    db_session.add(ConversationMessage(conversation_id="c1", position=1, role="user", content="again", blocks=[]))
    with pytest.raises(IntegrityError):
        db_session.commit()


def test_conversations_list_newest_first_with_their_message_counts(db_session: Session) -> None:
    for conversation_id, key_id in (("a", "k1"), ("b", "k2"), ("c", "k1"), ("d", None)):
        _new(db_session, conversation_id, key_id)
    db_session.commit()
    append_messages(db_session, "a", _turn("q", "a"))  # the oldest, updated last
    append_messages(db_session, "b", _turn("q", "a")[:1])
    db_session.commit()

    def listed(**query: object) -> tuple[list[tuple[str, int]], int]:
        items, total = list_conversations(db_session, **{"page": 1, "size": 10, **query})  # type: ignore[arg-type]
        return [(c.id, n) for c, n in items], total

    assert listed(key_id="k1", all_keys=False) == ([("a", 2), ("c", 0)], 2)
    assert listed(key_id="k2", all_keys=False) == ([("b", 1)], 1)
    assert listed(key_id="k3", all_keys=False) == ([], 0)
    everyone = ([("b", 1), ("a", 2), ("d", 0), ("c", 0)], 4)
    assert listed(key_id="k1", all_keys=True) == everyone
    assert listed(key_id=None, all_keys=False) == everyone  # AUTH_ENABLED=false
    assert listed(key_id=None, all_keys=False, size=3, page=2) == ([("c", 0)], 4)
    assert listed(key_id="k1", all_keys=False, size=1, page=2) == ([("c", 0)], 2)


def test_deleting_a_conversation_deletes_its_messages(db_session: Session) -> None:
    for conversation_id in ("c1", "c2"):
        _new(db_session, conversation_id)
        append_messages(db_session, conversation_id, _turn("q", "a"))
    db_session.commit()
    assert delete_conversation(db_session, "c1") is True
    db_session.commit()
    assert get_conversation(db_session, "c1") is None and messages_of(db_session, "c1") == []
    assert len(messages_of(db_session, "c2")) == 2
    assert delete_conversation(db_session, "c1") is False


def test_the_database_cascades_a_conversation_to_its_messages(db_session: Session) -> None:
    """The foreign key's ON DELETE CASCADE alone removes the messages too (on SQLite, the service's engine turns
    foreign keys on)."""
    _new(db_session, "c1")
    append_messages(db_session, "c1", _turn("q", "a"))
    db_session.commit()
    db_session.execute(delete(Conversation).where(Conversation.id == "c1"))
    db_session.commit()
    assert db_session.scalar(select(func.count()).select_from(ConversationMessage)) == 0
