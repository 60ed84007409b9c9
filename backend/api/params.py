"""Query parameters several routes share, bounded: an unbounded page number overflows the database's integer."""

from typing import Annotated

from fastapi import Query

MAX_PAGE = 1_000_000

PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]

Cursor = Annotated[
    str | None,
    Query(max_length=200, description="the `next` of the page before; the page after it (then `page` stays 1)"),
]
