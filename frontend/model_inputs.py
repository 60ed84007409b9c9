"""The ECLO model's inputs: its description (input fields and, for the form's choices, their vocabularies) and
the row a form's conditions make at a date and hour."""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from frontend.connection import api_call, client

DAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")


@st.cache_data(ttl=60, show_spinner=False)
def eclo_model() -> dict[str, Any]:
    """The ECLO model's description: its input fields and, for the form's choices, its vocabularies."""
    return client().model("eclo")


def input_fields(model: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's input fields, as the API describes them (name, kind, required, range)."""
    return model["input_fields"]


def model_or_stop() -> dict[str, Any]:
    with api_call():
        return eclo_model()
    raise AssertionError("unreachable: show_error stops the page")


def row_for(conditions: dict[str, Any], when: date, hour: int) -> dict[str, Any]:
    return {
        **conditions,
        "day_of_week": DAYS[when.weekday()],
        "accident_hour": hour,
        "accident_year": when.year,
        "accident_month": when.month,
        "accident_day": when.day,
    }
