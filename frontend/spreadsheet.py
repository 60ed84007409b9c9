"""CSV files the dashboard offers for download, safe to open in a spreadsheet: OWASP's rule, as the API applies it
to the CSV it writes (backend/core/csv_stream.py; the dashboard imports nothing of the backend)."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with `'`; numbers and numeric text stay."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV with every text cell (and column name) neutralised."""
    safe = frame.rename(columns=lambda name: safe_cell(str(name)))
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(safe_cell)
    return safe.to_csv(index=False).encode("utf-8")
