"""Load a readings CSV: long (one reading a row) or wide (a time column and one speed column per sensor, the
METR-LA layout); preview it with each row's problems, send it in chunks with a progress bar, and show what the
API accepted, found duplicate and refused (the refused rows with the API's reason). Storing readings asks for an
admin key (frontend/admin.py)."""

from __future__ import annotations

import io
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from frontend.admin import admin_call, require_admin
from frontend.connection import api_call, client
from frontend.readings_csv import readings_of
from frontend.settings import get_settings

ZONES = ["UTC", "America/Los_Angeles", "Asia/Seoul", "Europe/London", "America/New_York"]


st.title("Load readings")
st.markdown(
    "**Long** layout: `sensor_id,timestamp,speed_mph[,volume,occupancy]`, one reading a row. **Wide** layout: a "
    "time column first, then one column of speeds per sensor id (the METR-LA table); an empty cell is no reading. "
    "Times are ISO-8601; a time without a zone is read in the zone chosen here."
)
admin = require_admin("Loading readings")
if admin is None:
    st.stop()
with api_call():
    registered = {s["sensor_id"] for s in client().sensors()}
zone_name = st.selectbox("Zone of times written without one", ZONES)
upload = st.file_uploader("Readings CSV", type=["csv"])
if upload is None:
    st.stop()
try:
    table = pd.read_csv(io.BytesIO(upload.getvalue()), dtype=str, keep_default_na=False, na_values=[""])
except (ValueError, UnicodeDecodeError) as exc:
    st.error(f"{upload.name} is not a readable CSV: {exc}")
    st.stop()
if table.empty or len(table.columns) < 2:
    st.error(f"{upload.name} has no readings: it needs a header and at least two columns")
    st.stop()
readings, lines, problems = readings_of(table, ZoneInfo(zone_name), registered)
flagged = sum(p is not None for p in problems)
st.subheader(f"Preview: {len(readings):,} readings")
st.caption(f"{flagged:,} look wrong here (the API decides; they are sent too and it names why it refuses them)")
preview = pd.DataFrame(readings).assign(line=lines, problem=problems)
shown = pd.concat([preview[preview["problem"].notna()], preview[preview["problem"].isna()]]).head(200)
st.dataframe(shown, hide_index=True, height=260)

chunk = get_settings().upload_chunk_readings
if st.button(f"Send {len(readings):,} readings", type="primary"):
    bar = st.progress(0.0, text="sending…")
    totals = {"accepted": 0, "duplicates": 0}
    refused: list[dict[str, Any]] = []
    with admin_call():
        for start in range(0, len(readings), chunk):
            answer = admin.ingest_readings(readings[start : start + chunk])
            totals["accepted"] += answer["accepted"]
            totals["duplicates"] += answer["duplicates"]
            for item in answer["rejected"]:
                index = start + item["index"]
                refused.append({"line": lines[index], **readings[index], "reason": item["message"]})
            done = min(start + chunk, len(readings))
            bar.progress(done / len(readings), text=f"{done:,} of {len(readings):,} readings sent")
    cols = st.columns(3)
    cols[0].metric("accepted", f"{totals['accepted']:,}")
    cols[1].metric("duplicates", f"{totals['duplicates']:,}")
    cols[2].metric("rejected", f"{len(refused):,}")
    if refused:
        st.subheader("Rejected rows")
        st.dataframe(pd.DataFrame(refused), hide_index=True)
    else:
        st.success("Every reading was stored or was already stored.")
