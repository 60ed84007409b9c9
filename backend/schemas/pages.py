"""One page of a listing."""

from __future__ import annotations

import math
from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):  # noqa: UP046 - pydantic generics on Python 3.11
    items: list[T]
    total: int
    page: int
    size: int
    pages: int

    @classmethod
    def build(cls, *, items: list[T], total: int, page: int, size: int) -> Page[T]:
        return cls(items=items, total=total, page=page, size=size, pages=math.ceil(total / size) if total else 0)
