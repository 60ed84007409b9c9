"""The one error of the explore engine: a query (or a request of a column, points, proximity) that cannot run."""

from __future__ import annotations


class QueryError(Exception):
    """Names the offending field (like `filters[0].column`) so a client can point at it; `allowed` lists the valid
    choices when there is a closed set (the table's columns, say)."""

    def __init__(self, field: str, message: str, allowed: list[str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.allowed = allowed

    def to_dict(self) -> dict[str, object]:
        answer: dict[str, object] = {"field": self.field, "message": self.message}
        if self.allowed is not None:
            answer["allowed"] = self.allowed
        return answer
