"""Load a readings CSV: long (one reading a row) or wide (a time column and one speed column per sensor, the
METR-LA layout); preview it with each row's problems, send it in chunks with a progress bar, and show what the
API accepted, found duplicate and refused (the refused rows with the API's reason). A template CSV to start from,
and a sample day (the demo feed's readings of the last 24 hours) for a network with no readings of its own.
Storing readings asks for an admin key (frontend/admin.py)."""

from __future__ import annotations

import io
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from frontend.admin import admin_call, require_admin
from frontend.connection import api_call, client
from frontend.readings_csv import readings_of, template_csv
from frontend.settings import get_settings

ZONES = ["UTC", "America/Los_Angeles", "Asia/Seoul", "Europe/London", "America/New_York"]


st.title("Load readings")
st.markdown(
    "**Long** layout: `sensor_id,timestamp,speed_mph[,volume,occupancy]`, one reading a row. **Wide** layout: a "
    "time column first, then one column of speeds per sensor id (the METR-LA table); an empty cell is no reading. "
    "Times are ISO-8601; a time without a zone is read in the zone chosen here."
)
with api_call():
    registered_sensors = [s["sensor_id"] for s in client().sensors()]
registered = set(registered_sensors)
st.download_button(
    "Download a template CSV", template_csv(registered_sensors), file_name="readings_template.csv",
    mime="text/csv", icon=":material/download:",
    help="The long layout with three readings of registered sensors: replace them with yours.",
)  # fmt: skip
admin = require_admin("Loading readings")
if admin is None:
    st.stop()
with st.container(border=True):
    st.markdown(
        "**No readings of your own yet?** Load a sample day: the last 24 hours of every congestion-model sensor, as "
        "the demo feed publishes them (the speeds the model learned for that time, with noise). "
        "Readings already stored count as duplicates."
    )
    if st.button("Load a sample day", icon=":material/science:"):
        with st.spinner("storing 24 hours of readings…"), admin_call():
            sample = admin.load_sample_readings(24)
        st.success(f"{sample['accepted']:,} readings stored, {sample['duplicates']:,} already there. "
                   "The Network and Sensor pages show them.")  # fmt: skip
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
st.caption(f"{flagged:,} {'looks' if flagged == 1 else 'look'} wrong here (the API decides; they are sent too and it "
           "names why it refuses them)")  # fmt: skip
preview = pd.DataFrame(readings).assign(line=lines, problem=[p or "" for p in problems])
flag = preview["problem"] != ""
shown = pd.concat([preview[flag], preview[~flag]]).head(200).fillna("")
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
