"""API keys (an admin key, signed in on this page: frontend/admin.py): who holds one and with what scopes; make one
(shown once) or revoke one."""

import streamlit as st

from frontend.admin import admin_call, admin_key, require_admin, sign_out
from frontend.connection import caller_key

SCOPES = {"predict": "single predictions and batches", "read": "every listing and record",
          "admin": "writes of stored data, and keys"}  # fmt: skip
# st.session_state, shown once after the rerun that follows the action: the key just made; the key just revoked
NEW_KEY, REVOKED = "keys_page_new_key", "keys_page_revoked"


def minute(stamp: str) -> str:
    """'2026-12-02T08:30:38.312754Z' -> '2026-12-02 08:30 UTC'."""
    return f"{stamp[:16].replace('T', ' ')} UTC"


st.title("API keys")
st.caption("Programs and people call the API with a key of their own, each with the scopes it needs; the "
           "records name the key that asked. Only the SHA-256 of a key is kept: a key is shown once, when it is "
           "made.")  # fmt: skip

admin = require_admin("The API keys page")
if admin is None:
    st.stop()
with admin_call():
    keys = admin.keys()

made = st.session_state.pop(NEW_KEY, None)
if made:
    st.success(f"Made key {made['key_id']} for {made['name']} ({', '.join(made['scopes'])}). Copy it now: it is "
               "not shown again.")  # fmt: skip
    st.code(made["key"], language=None)
revoked = st.session_state.pop(REVOKED, None)
if revoked:
    st.success(f"Revoked key {revoked}.")

active = [k for k in keys if k["revoked_at"] is None]
st.subheader(f"{len(active)} active, {len(keys) - len(active)} revoked")
st.dataframe(
    [{"key id": k["key_id"], "name": k["name"], "scopes": ", ".join(k["scopes"]), "created": minute(k["created_at"]),
      "revoked": minute(k["revoked_at"]) if k["revoked_at"] else ""} for k in keys],
    hide_index=True,
)  # fmt: skip

st.subheader("Make a key")
with st.form("make-key", clear_on_submit=True):
    name = st.text_input("Name (who or what holds it)", max_chars=100, placeholder="traffic desk")
    scopes = st.multiselect("Scopes", list(SCOPES), default=["predict"], format_func=lambda s: f"{s}: {SCOPES[s]}")
    submitted = st.form_submit_button("Make key", type="primary")
if submitted:
    if not name.strip() or not scopes:
        st.error("A key needs a name and at least one scope.")
    else:
        with admin_call():
            st.session_state[NEW_KEY] = admin.create_key(name.strip(), scopes)
        st.rerun()

st.subheader("Revoke a key")
if not active:
    st.info("No active key.")
else:
    own, signed_in = (caller_key() or "").split("_")[1:2], (admin_key() or "").split("_")[1:2]
    labels = {k["key_id"]: f"{k['key_id']} · {k['name']} ({', '.join(k['scopes'])})" for k in active}
    chosen = st.selectbox("Key", list(labels), format_func=labels.__getitem__)
    if chosen in own:
        st.warning("This is the key this dashboard calls the API with: once revoked, its pages are refused.")
    elif chosen in signed_in:
        st.warning("This is the admin key you signed in with: once revoked, admin actions ask for another.")
    if st.button("Revoke", disabled=chosen is None):
        with admin_call():
            admin.revoke_key(chosen)
        if chosen in signed_in:
            sign_out()
        st.session_state[REVOKED] = labels[chosen]
        st.rerun()
