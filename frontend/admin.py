"""Admin actions: the API keys page; on Datasets, uploads, scoring, cancelling, deleting and share links; on
Readings, the upload. The dashboard's own key reads and predicts only, so whoever reaches the dashboard is no
admin: an admin action asks this browser session to sign in with an admin key ("Sign in as admin"). The key is
checked with `GET /api/keys/me` that it holds `admin`, kept in this session only (a reload or "Sign out as admin"
forgets it) and sent with the admin calls only; reads keep the dashboard's key.

A visitor signed in with an admin key of their own (a dashboard without a key) needs no second sign-in; when the API
asks for no key (AUTH_ENABLED=false), nobody signs in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from frontend.client import ApiClient, ApiError
from frontend.connection import (
    ADMIN_IDENTITY,
    ADMIN_KEY,
    OPEN_API,
    api_call,
    client,
    new_client,
    show_error,
    signed_in_key,
)
from frontend.settings import get_settings
from frontend.sign_in import IDENTITY, identity_of

ADMIN = "admin"


def admin_key() -> str | None:
    """The admin key this session signed in with for admin actions, if any."""
    return st.session_state.get(ADMIN_KEY)


def admin_client() -> ApiClient | None:
    """The client for admin calls: with the session's admin key; the session's own client when that is an admin
    key (signed in without a dashboard key) or when the API asks for none; else None."""
    key = admin_key()
    if key:
        return new_client(key)
    own = st.session_state.get(IDENTITY) or {}
    if not get_settings().bearer_key and signed_in_key() and ADMIN in own.get("scopes", []):
        return client()
    if st.session_state.get(OPEN_API):
        return client()
    with api_call():
        if _api_asks_no_key(get_settings().api_url):
            return client()
    return None


@st.cache_data(ttl=10, show_spinner=False)
def _api_asks_no_key(api_url: str) -> bool:
    """Whether the API at `api_url` answers without a key (AUTH_ENABLED=false): asked once for every page of every
    session within the cache's life. Its errors are not kept."""
    try:
        new_client(None).whoami()
    except ApiError as exc:
        if exc.status == 401:
            return False
        raise
    return True


def require_admin(section: str) -> ApiClient | None:
    """The admin client for `section` (e.g. "Uploading a file"), or None after showing the "Sign in as admin"
    form in its place."""
    admin = admin_client()
    if admin is None:
        _sign_in_form(section)
    return admin


@contextmanager
def admin_call() -> Iterator[None]:
    """`with admin_call(): ...` around calls with the admin key: one the API refuses (revoked meanwhile) is
    forgotten and the visitor asked to sign in again; any other error is shown by `show_error`."""
    try:
        yield
    except ApiError as exc:
        if exc.status in (401, 403) and admin_key():
            sign_out()
            st.error(f"The API refused the admin key: {exc.message}. Sign in as admin again.")
            st.stop()
        show_error(exc)


def sign_out() -> None:
    for name in (ADMIN_KEY, ADMIN_IDENTITY):
        st.session_state.pop(name, None)


def admin_sidebar() -> None:
    """Who admin actions act as, with a button to sign out as admin: on every page while an admin key is kept."""
    if not admin_key():
        return
    identity = st.session_state.get(ADMIN_IDENTITY) or {}
    with st.sidebar:
        st.caption(f"Admin actions as **{identity.get('name', '?')}** (key {identity.get('key_id', '?')})")
        if st.button("Sign out as admin", key="admin-sign-out"):
            sign_out()
            st.rerun()


def _sign_in_form(section: str) -> None:
    slug = re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")
    st.info(f"{section} needs an admin key: the dashboard's own key only reads and predicts. Sign in with an API "
            "key holding the admin scope; it is kept in this browser tab until you sign out or reload.")  # fmt: skip
    with st.form(f"admin-sign-in-{slug}", clear_on_submit=True):
        key = st.text_input(
            "Admin API key", type="password", max_chars=200, placeholder="tpk_…", key=f"admin-key-{slug}"
        ).strip()
        submitted = st.form_submit_button("Sign in as admin")
    if not submitted:
        return
    identity = identity_of(key)
    if identity is None:
        return
    if ADMIN not in identity.get("scopes", []):
        st.error(f"Key {identity.get('key_id')} ({identity.get('name')}) lacks the admin scope: it holds "
                 f"{', '.join(identity.get('scopes', [])) or 'none'}.")  # fmt: skip
        return
    st.session_state[ADMIN_KEY] = key
    st.session_state[ADMIN_IDENTITY] = identity
    st.rerun()
