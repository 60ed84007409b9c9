"""One page of a listing. The large listings (records, batches, readings) go on by cursor (`next`: an opaque key
of the page's last row) and count their rows only up to COUNT_LIMIT; the small ones count exactly."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, Field

from backend.core.errors import InvalidRequest

T = TypeVar("T")
K = TypeVar("K", int, str)  # a key's tie-breaker: an id or a name

# Read at each request (tests set smaller ones): a total is counted up to COUNT_LIMIT rows, and a page number may
# start at most MAX_OFFSET rows in; deeper, a listing goes on by cursor.
COUNT_LIMIT = 10_000
MAX_OFFSET = 10_000


class Page(BaseModel, Generic[T]):  # noqa: UP046 - pydantic generics on Python 3.11
    items: list[T]
    total: int = Field(description="the matching rows; when `total_exact` is false, more than this many")
    total_exact: bool = True
    page: int | None = Field(description="the page number asked; null on a page reached by `cursor`")
    size: int
    pages: int = Field(description="pages of `size` in `total`; when `total_exact` is false, at least this many")
    next: str | None = Field(default=None, description="pass as `cursor` for the page after this one; null on the last")

    @classmethod
    def build(
        cls,
        *,
        items: list[T],
        total: int,
        page: int | None,
        size: int,
        next: str | None = None,
        total_exact: bool = True,
    ) -> Page[T]:
        return cls(items=items, total=total, total_exact=total_exact, page=page, size=size,
                   pages=math.ceil(total / size) if total else 0, next=next)  # fmt: skip


@dataclass(frozen=True)
class Position(Generic[K]):
    """Where a page of a keyset listing starts (`offset` rows in, or after the key `after`), and how far its
    total is counted."""

    listing: str
    page: int | None
    offset: int
    after: tuple[datetime, K] | None
    count_limit: int

    @classmethod
    def of(cls, listing: str, *, page: int, size: int, cursor: str | None, tie: type[K]) -> Position[K]:
        """The position a request asks for: by `cursor` (of this listing, its tie-breaker of type `tie`), or by
        page number while that starts at most MAX_OFFSET rows in."""
        if cursor is not None:
            if page != 1:
                raise InvalidRequest("give `page` or `cursor`, not both", details=[{"field": "page"}])
            return cls(listing, None, 0, _decoded(listing, cursor, tie), COUNT_LIMIT)
        offset = (page - 1) * size
        if offset > MAX_OFFSET:
            raise InvalidRequest(
                f"page {page} of {size} starts {offset:,} rows in, past the {MAX_OFFSET:,} a page number reaches: "
                "go on from a page's `next` with `cursor`",
                details=[{"field": "page", "max_offset": MAX_OFFSET}],
            )
        return cls(listing, page, offset, None, COUNT_LIMIT)

    def cursor_after(self, key: tuple[datetime, K]) -> str:
        """The cursor of the rows after `key`: URL-safe base64 of JSON `[listing, ISO time, tie-breaker]`."""
        payload = orjson.dumps([self.listing, key[0].isoformat(), key[1]])
        return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def _decoded(listing: str, cursor: str, tie: type[K]) -> tuple[datetime, K]:
    refused = InvalidRequest(f"`cursor` is not a cursor of this listing ({listing}): pass the `next` of a page of it",
                             details=[{"field": "cursor"}])  # fmt: skip
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        value: Any = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise refused from exc
    if not (isinstance(value, list) and len(value) == 3 and value[0] == listing and isinstance(value[1], str)):
        raise refused
    second = value[2]
    if type(second) is not tie:
        raise refused
    if not (len(second) <= 64 if isinstance(second, str) else -(2**63) <= second < 2**63):  # a column's range
        raise refused
    try:
        moment = datetime.fromisoformat(value[1])
        if moment.tzinfo is None:
            raise refused
        return moment.astimezone(UTC), second  # OverflowError: before year 1 in UTC
    except (ValueError, OverflowError) as exc:
        raise refused from exc
