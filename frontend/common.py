"""What every page shares: the API client, the model's vocabularies, labels with English hints, error display."""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from backend.core.config import get_settings
from frontend.client import ApiClient, ApiError, ApiUnavailable

RISK_COLORS = {"low": "#2e7d32", "moderate": "#f9a825", "high": "#ef6c00", "severe": "#c62828"}
DAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")
ENGLISH = {
    "맑음": "clear", "흐림": "cloudy", "비": "rain", "눈": "snow", "안개": "fog", "기타": "other",
    "건조": "dry", "젖음/습기": "wet", "서리/결빙": "frost/ice", "적설": "snow-covered", "침수": "flooded",
    "차대사람": "vehicle-pedestrian", "차대차": "vehicle-vehicle", "차량단독": "single vehicle",
    "출근시간대": "morning rush 7-9h", "퇴근시간대": "evening rush 17-19h", "심야": "late night 22-5h",
    "일반시간대": "regular hours", "교차로": "intersection", "교차로안": "inside", "교차로부근": "near",
    "교차로횡단보도내": "on a crosswalk", "단일로": "road segment", "고가도로위": "overpass", "교량": "bridge",
    "지하차도(도로)내": "underpass", "터널": "tunnel", "미분류": "unclassified", "주차장": "parking lot",
    "월요일": "Mon", "화요일": "Tue", "수요일": "Wed", "목요일": "Thu", "금요일": "Fri", "토요일": "Sat",
    "일요일": "Sun", "중구": "Jung-gu", "동구": "Dong-gu", "서구": "Seo-gu", "남구": "Nam-gu", "북구": "Buk-gu",
    "수성구": "Suseong-gu", "달서구": "Dalseo-gu", "달성군": "Dalseong-gun",
}  # fmt: skip
FIELDS = ("weather", "road_surface", "road_type", "accident_type", "time_period", "district", "day_of_week",
          "accident_hour", "accident_year", "accident_month", "accident_day")  # fmt: skip


def label(value: str) -> str:
    """'교차로 - 교차로안' -> '교차로 - 교차로안 (intersection - inside)'."""
    parts = [part.strip() for part in value.replace(" - ", "|").split("|")]
    hints = [ENGLISH.get(part) for part in parts]
    if not any(hints):
        return value
    return f"{value} ({' - '.join(h or p for h, p in zip(hints, parts, strict=True))})"


@st.cache_resource
def client() -> ApiClient:
    return ApiClient(get_settings().api_url)


def public_api_url() -> str:
    settings = get_settings()
    return settings.api_public_url or settings.api_url


@st.cache_data(ttl=60, show_spinner=False)
def eclo_model() -> dict[str, Any]:
    """The ECLO model's description: the form's choices come from its vocabularies."""
    return next(m for m in client().models() if m["name"] == "eclo")


def show_unavailable(error: ApiError) -> None:
    """A clear message and a retry button instead of the page; never a traceback."""
    st.error(f"The prediction API is not reachable: {error.message}")
    st.caption(f"API address: {get_settings().api_url}. Is the service running (`make run`)?")
    if st.button("Retry", type="primary"):
        eclo_model.clear()
        st.rerun()
    st.stop()


def show_api_error(error: ApiError) -> None:
    st.error(error.message)
    if error.details:
        st.dataframe([{k: v for k, v in d.items() if k != "allowed"} for d in error.details], hide_index=True)


def model_or_stop() -> dict[str, Any]:
    try:
        return eclo_model()
    except ApiUnavailable as exc:
        show_unavailable(exc)
    except ApiError as exc:
        show_api_error(exc)
        st.stop()
    raise AssertionError("unreachable")


def risk_badge(eclo: float, risk: str) -> str:
    color = RISK_COLORS.get(risk, "#555")
    return (
        f'<div style="padding:1rem 1.5rem;border-radius:0.6rem;background:{color};color:white;display:inline-block">'
        f'<div style="font-size:0.9rem;opacity:0.85">predicted ECLO</div>'
        f'<div style="font-size:3rem;font-weight:700;line-height:1.1">{eclo:.2f}</div>'
        f'<div style="font-size:1.1rem;text-transform:uppercase;letter-spacing:0.05em">{risk} risk</div></div>'
    )


def row_for(conditions: dict[str, Any], when: date, hour: int) -> dict[str, Any]:
    return {
        **conditions,
        "day_of_week": DAYS[when.weekday()],
        "accident_hour": hour,
        "accident_year": when.year,
        "accident_month": when.month,
        "accident_day": when.day,
    }
