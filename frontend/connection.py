"""This browser session's connection to the API: the key its calls send, its client, and the one way an API
error becomes the page's message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import streamlit as st

from frontend.client import ApiClient, ApiError, ApiUnavailable
from frontend.settings import get_settings

# st.session_state (frontend.sign_in): the key this browser session signed in with; that the API asked for none
SIGNED_IN_KEY = "api_key"
OPEN_API = "api_asks_no_key"
# st.session_state (frontend.admin): the admin key this session signed in with for admin actions; what the API said
# of it
ADMIN_KEY = "admin_key"
ADMIN_IDENTITY = "admin_key_identity"


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
                   "readings, System) or admin (uploads, scoring, deletes, API keys: those ask for an admin key). "
                   "Sign out to use another key.")  # fmt: skip
    elif error.status in (401, 403) and get_settings().bearer_key:
        st.error(f"The API refused the dashboard's key: {error.message}")
        st.caption("The dashboard sends the key of API_KEY or API_KEY_FILE (`make run` makes one; compose too). "
                   "It needs the scopes predict and read: `python -m backend.cli.keys create dashboard "
                   "--scopes predict,read`; admin actions ask each visitor for an admin key. Without either, each "
                   "visitor signs in with a key of their own.")  # fmt: skip
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
