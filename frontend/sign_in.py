"""Who the dashboard acts as.

With a key of its own (API_KEY or API_KEY_FILE: `make run` and compose make one, scopes predict and read) every
visitor reads and predicts with it, so such a dashboard is served on loopback only. Without one, each browser
session signs in with its own API key: it is kept in that session only (a reload asks again), every call sends it,
and the records name the key that asked. When the API asks for no key (AUTH_ENABLED=false), nobody signs in.
Admin actions (keys, uploads, scoring, deletes) ask for an admin key: frontend/admin.py.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from frontend.client import ApiError
from frontend.connection import (
    ADMIN_IDENTITY,
    ADMIN_KEY,
    OPEN_API,
    SIGNED_IN_KEY,
    new_client,
    show_error,
    signed_in_key,
)
from frontend.settings import get_settings

LLM_KEY = "assistant_llm_key"  # the Assistant page's Anthropic key (frontend/views/assistant.py)
IDENTITY = "api_key_identity"  # st.session_state: what GET /api/keys/me said of the signed-in key


def require_sign_in() -> None:
    """Return once this session may call the API; otherwise show the sign-in form and stop the page."""
    if get_settings().bearer_key:
        return
    if signed_in_key():
        _signed_in_sidebar()
        return
    if st.session_state.get(OPEN_API) or _api_asks_no_key():
        return
    _sign_in_form()
    st.stop()


def _api_asks_no_key() -> bool:
    try:
        new_client(None).whoami()
    except ApiError as exc:
        if exc.status == 401:
            return False
        show_error(exc)
    st.session_state[OPEN_API] = True
    return True


def _sign_in_form() -> None:
    st.title("Sign in")
    st.write("This service's API needs a key. Sign in with yours: the dashboard sends it with every call from this "
             "browser tab, until you sign out or reload the page.")  # fmt: skip
    with st.form("sign-in"):
        key = st.text_input("API key", type="password", max_chars=200, placeholder="tpk_…").strip()
        submitted = st.form_submit_button("Sign in", type="primary")
    st.caption("An administrator makes keys: `python -m backend.cli.keys create <your name> --scopes predict,read`.")
    if not submitted:
        return
    identity = identity_of(key)
    if identity is None:
        return
    st.session_state[SIGNED_IN_KEY] = key
    st.session_state[IDENTITY] = identity
    st.rerun()


def identity_of(key: str) -> dict[str, Any] | None:
    """What `GET /api/keys/me` says of `key` (its id, name and scopes); None, with the reason shown, if it is no
    key or the API refuses it."""
    if not key:
        st.error("Enter an API key.")
        return None
    if not (key.isascii() and key.isprintable()):  # an HTTP header could not carry it
        st.error("That is not an API key: they read tpk_<12 hex digits>_<43 letters, digits, '-' or '_'>.")
        return None
    try:
        return new_client(key).whoami()
    except ApiError as exc:
        if exc.status != 401:
            show_error(exc)
        st.error(f"The API refused this key: {exc.message}")
        return None


def _signed_in_sidebar() -> None:
    identity = st.session_state.get(IDENTITY) or {}
    with st.sidebar:
        st.caption(f"Signed in as **{identity.get('name', '?')}** (key {identity.get('key_id', '?')}; "
                   f"{', '.join(identity.get('scopes', []))})")  # fmt: skip
        if st.button("Sign out", key="sign-out"):
            for name in (SIGNED_IN_KEY, IDENTITY, LLM_KEY, ADMIN_KEY, ADMIN_IDENTITY):  # every key of this session
                st.session_state.pop(name, None)
            st.rerun()
