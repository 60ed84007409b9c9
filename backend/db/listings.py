"""Pages of the large tables (records, batches, readings): by offset or after a row's sort key (keyset), with the
matching rows counted only up to a limit, so that no page costs a scan of the whole table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

R = TypeVar("R")

# A listing's order: two columns, each with its direction (True: descending).
Order = tuple[tuple[InstrumentedAttribute[Any], bool], tuple[InstrumentedAttribute[Any], bool]]


@dataclass(frozen=True)
class Slice(Generic[R]):
    items: list[R]
    more: bool  # rows follow the last item
    total: int  # the matching rows, exactly or (total_exact false) at least
    total_exact: bool


def after_key(order: Order, key: Sequence[Any]) -> ColumnElement[bool]:
    """Rows sorted after `key`: `a <= x AND (a < x OR b < y)` for a descending order. A row value `(a, b) < (x, y)`
    cannot mix directions (the batches' order does), and PostgreSQL makes it an index range only on an index that
    leads with `a` (not on the readings' (sensor_id, timestamp) key); the bound on `a` alone is one on any index
    holding `a`, the tie on `b` a filter of the few rows at `a = x`."""
    (first, first_descending), (second, second_descending) = order
    x, y = key
    reach, beyond = (first <= x, first < x) if first_descending else (first >= x, first > x)
    return and_(reach, or_(beyond, second < y if second_descending else second > y))


def count_up_to(session: Session, query: Select[Any], limit: int | None) -> tuple[int, bool]:
    """(total, exact): the rows `query` matches, counted up to `limit` (None: all); beyond it, (limit, False)."""
    if limit is None:
        return session.scalar(select(func.count()).select_from(query.subquery())) or 0, True
    ones = query.with_only_columns(literal_column("1"), maintain_column_froms=True).limit(limit + 1)
    counted = session.scalar(select(func.count()).select_from(ones.subquery())) or 0
    return (counted, True) if counted <= limit else (limit, False)


def slice_of(
    session: Session,
    query: Select[tuple[R]],
    *,
    order: Order,
    size: int,
    offset: int = 0,
    after: Sequence[Any] | None = None,
    count_limit: int | None = None,
) -> Slice[R]:
    """`size` rows of `query` in `order`, `offset` rows in or after the key `after`; the total counts every row
    `query` matches, wherever the page starts."""
    total, exact = count_up_to(session, query, count_limit)
    if after is not None:
        query = query.where(after_key(order, after))
    query = query.order_by(*(column.desc() if descending else column.asc() for column, descending in order))
    rows = list(session.scalars((query.offset(offset) if offset else query).limit(size + 1)))
    return Slice(items=rows[:size], more=len(rows) > size, total=total, total_exact=exact)
