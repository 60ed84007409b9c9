"""A listing's position: cursors (opaque, URL-safe, of one listing) and page numbers bounded in depth."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from backend.core.errors import InvalidRequest
from backend.schemas.pages import MAX_OFFSET, Page, Position

AT = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _refused(field: str, **arguments: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as refused:
        Position.of(**arguments)  # type: ignore[arg-type]
    assert refused.value.details[0]["field"] == field
    return refused.value


def test_a_cursor_is_url_safe_and_gives_back_its_key() -> None:
    first = Position.of("records", page=1, size=20, cursor=None, tie=int)
    cursor = first.cursor_after((AT, 10**15))
    assert cursor.replace("-", "").replace("_", "").isalnum()
    at = Position.of("records", page=1, size=20, cursor=cursor, tie=int)
    assert (at.after, at.offset, at.page) == ((AT, 10**15), 0, None)
    seoul = datetime(2026, 11, 1, 21, 0, tzinfo=timezone(timedelta(hours=9)))
    readings = Position.of("readings", page=1, size=5, cursor=None, tie=str).cursor_after((seoul, "773869"))
    assert Position.of("readings", page=1, size=5, cursor=readings, tie=str).after == (seoul, "773869")


@pytest.mark.parametrize(
    "cursor",
    [
        "nope",
        "",
        "%%%",
        base64.urlsafe_b64encode(b'["records", "2026-11-01T12:00:00+00:00", "10"]').decode(),  # an id as a string
        base64.urlsafe_b64encode(b'["records", "2026-11-01T12:00:00", 10]').decode(),  # no zone
        base64.urlsafe_b64encode(b'["records", "yesterday", 10]').decode(),
        base64.urlsafe_b64encode(b'["records", "2026-11-01T12:00:00+00:00", true]').decode(),
        base64.urlsafe_b64encode(b'{"records": 1}').decode(),
        base64.urlsafe_b64encode(b'["records", "0001-01-01T00:00:00+01:00", 10]').decode(),  # before year 1 in UTC
        base64.urlsafe_b64encode(b'["records", "2026-11-01T12:00:00+00:00", 9223372036854775808]').decode(),
    ],
)
def test_a_cursor_that_does_not_decode_is_refused_naming_it(cursor: str) -> None:
    _refused("cursor", listing="records", page=1, size=20, cursor=cursor, tie=int)


def test_a_cursor_of_another_listing_is_refused_naming_it() -> None:
    batches = Position.of("batches", page=1, size=20, cursor=None, tie=str).cursor_after((AT, "ab12"))
    refused = _refused("cursor", listing="readings", page=1, size=20, cursor=batches, tie=str)
    assert "readings" in refused.message


def test_a_page_number_reaches_max_offset_rows_in_and_no_further() -> None:
    assert Position.of("records", page=MAX_OFFSET // 20 + 1, size=20, cursor=None, tie=int).offset == MAX_OFFSET
    refused = _refused("page", listing="records", page=MAX_OFFSET // 20 + 2, size=20, cursor=None, tie=int)
    assert "cursor" in refused.message
    cursor = Position.of("records", page=1, size=20, cursor=None, tie=int).cursor_after((AT, 1))
    _refused("page", listing="records", page=2, size=20, cursor=cursor, tie=int)


def test_a_page_of_a_small_listing_is_exact_and_has_no_next() -> None:
    page = Page[int].build(items=[1, 2], total=42, page=3, size=20)
    assert page.model_dump() == {"items": [1, 2], "total": 42, "total_exact": True, "page": 3, "size": 20,
                                 "pages": 3, "next": None}  # fmt: skip
