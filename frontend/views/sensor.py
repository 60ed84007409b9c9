"""One sensor: its last 24 hours of speed over its usual speeds for those weekdays (a 10th-90th percentile band),
the 15/30/60-minute forecast joined to the line, its neighbours on demand, and its readings as a table and CSV."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from frontend.client import ApiError
from frontend.connection import api_call, client, show_error
from frontend.maps import LEVEL_COLORS
from frontend.spreadsheet import csv_bytes
from frontend.tables import dataframe

DAY = timedelta(hours=24)


def free_flow(mph: float | None) -> str:
    return "free-flow speed unknown" if mph is None else f"free-flow {mph:.0f} mph"


def readings_between(sensor_id: str, since: datetime, until: datetime) -> pd.DataFrame:
    """Every reading of the sensor in [since, until), page after page (each after the one before: `next`)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = client().sensor_readings(sensor_id, since.isoformat(), until.isoformat(), cursor=cursor)
        items += answer["items"]
        cursor = answer["next"]
        if cursor is None:
            break
    frame = pd.DataFrame(items, columns=["sensor_id", "timestamp", "speed_mph", "volume", "occupancy"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].map(lambda t: wall_clock(t, since)))
    return frame


def wall_clock(stamp: str | datetime, zone_of: datetime) -> datetime:
    """A time as the clock on the wall in `zone_of`'s zone, without a zone: the chart's axis mixes none."""
    moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
    return moment.astimezone(zone_of.tzinfo).replace(tzinfo=None)


def profile_band(sensor_id: str, since: datetime, until: datetime) -> pd.DataFrame:
    """The usual speeds (by quarter hour, for each weekday the window touches) placed on the window's times."""
    parts = []
    day = since.date()
    while day <= until.date():
        profile = client().speed_profile(sensor_id, day.weekday())
        for b in profile["bins"]:
            start = datetime.combine(day, datetime.min.time(), since.tzinfo) + timedelta(minutes=b["minute_of_day"])
            if since <= start <= until:
                parts.append({"timestamp": start.replace(tzinfo=None), "p10": b["p10"], "median": b["median"],
                              "p90": b["p90"]})  # fmt: skip
        day += timedelta(days=1)
    return pd.DataFrame(parts, columns=["timestamp", "p10", "median", "p90"])


def shade(figure: go.Figure, x: Any, low: Any, high: Any, color: str, name: str) -> None:
    """A band between `low` and `high`: an unseen upper edge, then the lower one filled up to it."""
    figure.add_trace(go.Scatter(x=x, y=high, line={"width": 0}, showlegend=False, hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=x, y=low, line={"width": 0}, fill="tonexty", fillcolor=color, name=name))


def speed_chart(
    sensor_id: str, history: pd.DataFrame, band: pd.DataFrame, forecast: dict | None, neighbours: dict,
    zone_of: datetime,
) -> go.Figure:  # fmt: skip
    figure = go.Figure()
    if not band.empty:
        shade(figure, band["timestamp"], band["p10"], band["p90"], "rgba(96,125,139,0.25)", "usual (10th-90th pct)")
        figure.add_trace(go.Scatter(x=band["timestamp"], y=band["median"], name="usual (median)",
                                    line={"color": "#607d8b", "dash": "dot"}))  # fmt: skip
    for neighbour, frame in neighbours.items():
        figure.add_trace(go.Scatter(x=frame["timestamp"], y=frame["speed_mph"], name=f"neighbour {neighbour}",
                                    line={"width": 1}, opacity=0.6))  # fmt: skip
    figure.add_trace(go.Scatter(x=history["timestamp"], y=history["speed_mph"], name=f"sensor {sensor_id}",
                                line={"color": "#1565c0", "width": 2}))  # fmt: skip
    if forecast is not None and not history.empty:
        points = forecast["forecasts"]
        last = history.iloc[-1]
        if all(p.get("speed_mph_p10") is not None for p in points):
            times = [last["timestamp"], *[wall_clock(p["at"], zone_of) for p in points]]
            low = [last["speed_mph"], *[p["speed_mph_p10"] for p in points]]
            high = [last["speed_mph"], *[p["speed_mph_p90"] for p in points]]
            shade(figure, times, low, high, "rgba(106,27,154,0.18)", "forecast band (10th-90th pct)")
        figure.add_trace(go.Scatter(
            x=[last["timestamp"], *[wall_clock(p["at"], zone_of) for p in points]],
            y=[last["speed_mph"], *[p["speed_mph"] for p in points]],
            name="forecast", mode="lines+markers", line={"color": "#6a1b9a", "dash": "dash"},
            marker={"size": [0, 11, 11, 11], "color": ["#6a1b9a", *[LEVEL_COLORS.get(p["level"]) for p in points]]},
            text=["last reading", *[f"+{p['horizon_minutes']} min: {p['level']}" for p in points]],
        ))  # fmt: skip
    # The legend above the plot: below it, it covers the time axis's second line (the date).
    legend = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0}
    figure.update_layout(height=480, margin={"t": 60}, yaxis_title="speed (mph)", legend=legend)
    return figure


st.title("Sensor history and forecast")
with api_call():
    sensors = client().sensors()
if not sensors:
    st.info("No sensors are registered yet.")
    st.stop()
ids = [s["sensor_id"] for s in sensors]
wanted = st.query_params.get("sensor") or st.session_state.get("sensor_id")
sensor_id = st.selectbox("Sensor", ids, index=ids.index(wanted) if wanted in ids else 0)
st.query_params["sensor"] = sensor_id
with api_call():
    detail = client().sensor(sensor_id)
latest = detail.get("latest")
if latest is None:
    st.info(f"Sensor {sensor_id} has no readings yet: the Readings page loads a sample day or a CSV of them, and "
            "`make run` starts a demo feed on a database without readings.")  # fmt: skip
    st.stop()

until = datetime.fromisoformat(latest["timestamp"])
since = until - DAY + timedelta(seconds=1)
with api_call():
    history = readings_between(sensor_id, since, until + timedelta(seconds=1))
    band = profile_band(sensor_id, since, until)
try:
    forecast: dict | None = client().predict_congestion(sensor_id)
except ApiError as error:
    if error.status != 422:
        show_error(error)
    forecast = None
    st.warning(f"No forecast: {error.message}")

cols = st.columns(5)
cols[0].metric("speed now", f"{latest['speed_mph']:.1f} mph", help=f"reading of {latest['timestamp']}")
cols[1].metric("level now", latest.get("level") or "–")
for col, point in zip(cols[2:], (forecast or {}).get("forecasts", []), strict=False):
    low, high = point.get("speed_mph_p10"), point.get("speed_mph_p90")
    col.metric(f"+{point['horizon_minutes']} min", f"{point['speed_mph']:.1f} mph", point["level"],
               delta_color="off", delta_arrow="off",
               help=None if low is None or high is None else f"8 in 10 likely between {low:.1f} and {high:.1f} "
               "mph (the model's 10th-90th percentile band)")  # fmt: skip

neighbour_ids = detail.get("neighbours", [])
shown: dict[str, pd.DataFrame] = {}
if neighbour_ids and st.toggle(f"Show its {len(neighbour_ids)} neighbours", key="neighbours"):
    with api_call():
        shown = {n: readings_between(n, since, until + timedelta(seconds=1)) for n in neighbour_ids}
st.plotly_chart(speed_chart(sensor_id, history, band, forecast, shown, until), width="stretch")
st.caption(f"last 24 hours up to {until:%Y-%m-%d %H:%M} (times on the clock of UTC{until:%z}) · "
           f"{len(history)} readings · usual speeds from the "
           f"same weekdays of the 8 weeks before · {free_flow(detail.get('free_flow_mph'))}")  # fmt: skip

st.subheader("Recent readings")
table = history.sort_values("timestamp", ascending=False)
dataframe(table, hide_index=True, height=300)
st.download_button("Download CSV", csv_bytes(table),
                   file_name=f"sensor-{sensor_id}-readings.csv", mime="text/csv")  # fmt: skip
