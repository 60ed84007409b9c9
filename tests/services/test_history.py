"""Pages of the records through the service, on SQLite and PostgreSQL: by cursor with the filters, a bounded
total, and page numbers only near the start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from backend.core.errors import InvalidRequest
from backend.db.records import insert_predictions
from backend.schemas import pages
from backend.services.history import list_predictions

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KEY = "a1b2c3d4e5f6"


@pytest.fixture
def records(db_session: Session) -> Session:
    """30 records, three a second (ties in created_at), of two models and two keys."""
    rows = [{"created_at": NOW + timedelta(seconds=i // 3), "model_name": "eclo" if i % 2 else "congestion",
             "model_version": "v1", "inputs": {"i": i}, "latency_ms": 0.5, "request_id": f"r{i:02d}",
             "key_id": KEY if i % 5 else None, "record_id": f"{i:032x}"} for i in range(30)]  # fmt: skip
    insert_predictions(db_session, rows=rows)
    db_session.commit()
    return db_session


def _all_pages(session: Session, size: int, **filters: Any) -> list[pages.Page]:
    answers = [list_predictions(session=session, page=1, size=size, **filters)]
    while answers[-1].next is not None:
        answers.append(list_predictions(session=session, page=1, size=size, cursor=answers[-1].next, **filters))
    return answers


def test_the_cursor_walks_every_matching_record_once_newest_first(records: Session) -> None:
    cases = [
        (4, {}, lambda i: True),
        (3, {"model": "eclo", "since": NOW + timedelta(seconds=2)}, lambda i: i % 2 and i // 3 >= 2),
        (2, {"model": "congestion", "key_id": KEY, "until": NOW + timedelta(seconds=8)},
         lambda i: not i % 2 and i % 5 and i // 3 < 8),
    ]  # fmt: skip
    for size, filters, matches in cases:
        walked = _all_pages(records, size, **{"model": None, "since": None, **filters})
        expected = [f"r{i:02d}" for i in range(29, -1, -1) if matches(i)]  # ids rise with i: i is the order
        assert [r.request_id for answer in walked for r in answer.items] == expected and len(expected) > size
        assert all(len(a.items) == size for a in walked[:-1]) and walked[-1].next is None
        assert {(a.total, a.total_exact) for a in walked} == {(len(expected), True)}
        assert [a.page for a in walked] == [1] + [None] * (len(walked) - 1)


def test_a_total_beyond_the_limit_is_the_limit_and_not_exact(records: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "COUNT_LIMIT", 10)
    answer = list_predictions(session=records, page=1, size=4, model=None, since=None)
    assert (answer.total, answer.total_exact, answer.pages) == (10, False, 3)
    eclo = list_predictions(session=records, page=1, size=4, model="eclo", since=NOW + timedelta(seconds=5))
    assert (eclo.total, eclo.total_exact) == (8, True)
    walked = _all_pages(records, 7, model=None, since=None)
    assert sum(len(a.items) for a in walked) == 30 and not any(a.total_exact for a in walked)


def test_page_numbers_reach_only_so_deep_and_a_bad_cursor_is_named(
    records: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "MAX_OFFSET", 8)
    assert [r.request_id for r in list_predictions(session=records, page=3, size=4, model=None, since=None).items] == [
        "r21", "r20", "r19", "r18",
    ]  # fmt: skip
    with pytest.raises(InvalidRequest) as deep:
        list_predictions(session=records, page=4, size=4, model=None, since=None)
    assert deep.value.details[0]["field"] == "page" and "cursor" in deep.value.message
    with pytest.raises(InvalidRequest) as bad:
        list_predictions(session=records, page=1, size=4, model=None, since=None, cursor="not-a-cursor")
    assert bad.value.details[0]["field"] == "cursor"
