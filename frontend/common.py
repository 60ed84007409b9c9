"""What every page shares: the API client, the model's inputs and vocabularies, labels with English hints, and
the one way an API error becomes the page's message."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, NoReturn

import streamlit as st

from frontend.client import ApiClient, ApiError, ApiUnavailable
from frontend.settings import get_settings

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


def label(value: str) -> str:
    """'교차로 - 교차로안' -> '교차로 - 교차로안 (intersection - inside)'."""
    parts = [part.strip() for part in value.replace(" - ", "|").split("|")]
    hints = [ENGLISH.get(part) for part in parts]
    if not any(hints):
        return value
    return f"{value} ({' - '.join(h or p for h, p in zip(hints, parts, strict=True))})"


# st.session_state (frontend.sign_in): the key this browser session signed in with; that the API asked for none
SIGNED_IN_KEY = "api_key"
OPEN_API = "api_asks_no_key"


def new_client(api_key: str | None) -> ApiClient:
    settings = get_settings()
    return ApiClient(
        settings.api_url, timeout=settings.api_timeout_seconds, attempts=settings.api_attempts, api_key=api_key
    )


@st.cache_resource(max_entries=100)
def _client_with(api_key: str | None) -> ApiClient:
    return new_client(api_key)


def signed_in_key() -> str | None:
    return st.session_state.get(SIGNED_IN_KEY)


def caller_key() -> str | None:
    """The key this session's calls send: the dashboard's own (API_KEY or API_KEY_FILE) if it has one, else the
    one the session signed in with (none while the API asks for none)."""
    return get_settings().bearer_key or signed_in_key()


def client() -> ApiClient:
    """The API client of this browser session, sending `caller_key()`."""
    return _client_with(caller_key())


def public_api_url() -> str:
    return get_settings().browser_api_url


@st.cache_data(ttl=60, show_spinner=False)
def eclo_model() -> dict[str, Any]:
    """The ECLO model's description: its input fields and, for the form's choices, its vocabularies."""
    return client().model("eclo")


def input_fields(model: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's input fields, as the API describes them (name, kind, required, range)."""
    return model["input_fields"]


def show_error(error: ApiError) -> NoReturn:
    """The page's message for a failed API call, then the page stops; never a traceback. An unreachable API
    gets a Retry button; a refused request lists what was wrong."""
    if isinstance(error, ApiUnavailable):
        st.error(f"The prediction API is not reachable: {error.message}")
        st.caption(f"API address: {get_settings().api_url}. Is the service running (`make run`)?")
        if st.button("Retry", type="primary"):
            st.cache_data.clear()
            st.rerun()
    elif error.status == 401 and st.session_state.pop(OPEN_API, False):
        st.rerun()  # the API asked for no key when this session began, and does now: the sign-in form
    elif error.status in (401, 403) and signed_in_key():
        st.error(f"The API refused your key: {error.message}")
        st.caption("Each page needs a scope of its own: predict (Predict, Batch, Risk map), read (listings, "
                   "readings, System) or admin (uploads, deletes, API keys). Sign out to use another key.")  # fmt: skip
    elif error.status in (401, 403) and get_settings().bearer_key:
        st.error(f"The API refused the dashboard's key: {error.message}")
        st.caption("The dashboard sends the key of API_KEY or API_KEY_FILE (`make run` makes one; compose too). "
                   "It needs the scopes predict, read and admin: `python -m backend.cli.keys create dashboard "
                   "--scopes predict,read,admin`. Without either, each visitor signs in with a key of their "
                   "own.")  # fmt: skip
    else:
        st.error(error.message)
        if error.details:
            rows = [{k: v for k, v in d.items() if k != "allowed"} for d in error.details if isinstance(d, dict)]
            st.dataframe(rows, hide_index=True)
    st.stop()


@contextmanager
def api_call() -> Iterator[None]:
    """`with api_call(): ...` shows any API error of the block with `show_error`."""
    try:
        yield
    except ApiError as exc:
        show_error(exc)


def model_or_stop() -> dict[str, Any]:
    with api_call():
        return eclo_model()
    raise AssertionError("unreachable: show_error stops the page")


def risk_badge(answer: dict[str, Any]) -> str:
    """The answer's risk level over its chance of a severe outcome and its relative risk."""
    color = RISK_COLORS.get(answer["risk_level"], "#555")
    relative = math.floor(answer["relative_risk"] * 100) / 100  # 0.7996 is "low": shown as 0.79, not 0.80
    return (
        f'<div style="padding:1rem 1.5rem;border-radius:0.6rem;background:{color};color:white;display:inline-block">'
        f'<div style="font-size:0.9rem;opacity:0.85">chance of a death or serious injury</div>'
        f'<div style="font-size:3rem;font-weight:700;line-height:1.1">{answer["p_severe"]:.0%}</div>'
        f'<div style="font-size:1rem">{relative:.2f} × the city\'s average</div>'
        f'<div style="font-size:1.1rem;text-transform:uppercase;letter-spacing:0.05em">{answer["risk_level"]} risk'
        f"</div></div>"
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
