"""Tables and times as the pages show them: a missing value as "–" (never `None` or `nan`), a time as the clock in
UTC to the minute or second (never a raw ISO stamp)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

MISSING = "–"


def dataframe(rows: Any, **kwargs: Any) -> None:
    """`st.dataframe` with every missing value shown as "–" (the grid's own default is "None")."""
    st.dataframe(rows, placeholder=MISSING, **kwargs)


def utc(stamp: str | None, seconds: bool = False) -> str:
    """'2026-12-02T08:30:38.312754Z' -> '2026-12-02 08:30 UTC' (with `seconds`, '… 08:30:38 UTC'); '' for none."""
    if not stamp:
        return ""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M{':%S' if seconds else ''}} UTC"
