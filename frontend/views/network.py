"""Every sensor on a map, coloured by its congestion level now or 15, 30 or 60 minutes ahead, with a count per
level; redrawn by itself (only this part of the page) while the live feed runs."""

from __future__ import annotations

import time
from typing import Any

import folium
import streamlit as st
from streamlit_folium import st_folium

from frontend.connection import api_call, client
from frontend.maps import LEVEL_COLORS, NO_DATA_COLOR, base_map
from frontend.settings import get_settings
from frontend.tables import utc

HORIZONS = {"now": None, "+15 min": 15, "+30 min": 30, "+60 min": 60}
SENSOR_PAGE = "views/sensor.py"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def sensor_states(sensors: list[dict[str, Any]], network: dict[str, Any], horizon: int | None) -> list[dict]:
    """One row per sensor: where it is, its speed and level now, its forecasts, and the level shown."""
    forecasts = {f["sensor_id"]: {p["horizon_minutes"]: p for p in f["forecasts"]} for f in network["forecasts"]}
    rows = []
    for sensor in sensors:
        latest = sensor.get("latest") or {}
        ahead = forecasts.get(sensor["sensor_id"], {})
        shown = latest.get("level") if horizon is None else ahead.get(horizon, {}).get("level")
        rows.append({
            "sensor_id": sensor["sensor_id"], "latitude": sensor["latitude"], "longitude": sensor["longitude"],
            "speed_mph": latest.get("speed_mph"), "level_now": latest.get("level"),
            "age_seconds": latest.get("age_seconds"), "shown": shown or "no data",
            **{f"mph_{m}": ahead.get(m, {}).get("speed_mph") for m in (15, 30, 60)},
            **{f"level_{m}": ahead.get(m, {}).get("level") for m in (15, 30, 60)},
        })  # fmt: skip
    return rows


def _mph(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} mph"


def network_map(rows: list[dict[str, Any]]) -> folium.Map:
    """All sensors as one GeoJSON layer of circle markers: one element to render, however many sensors."""
    centre = (sum(r["latitude"] for r in rows) / len(rows), sum(r["longitude"] for r in rows) / len(rows))
    area = base_map(centre, 11)
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [r["longitude"], r["latitude"]]},
         "properties": {
             "sensor_id": r["sensor_id"], "color": LEVEL_COLORS.get(r["shown"], NO_DATA_COLOR),
             "now": f"{_mph(r['speed_mph'])} ({r['level_now'] or '–'})",
             **{f"in_{m}": f"{_mph(r[f'mph_{m}'])} ({r[f'level_{m}'] or '–'})" for m in (15, 30, 60)},
             "age": f"{_age(r['age_seconds'])} ago"}}
        for r in rows
    ]  # fmt: skip
    fields = ["sensor_id", "now", "in_15", "in_30", "in_60", "age"]
    folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        marker=folium.CircleMarker(radius=7, weight=1, color="#263238", fill=True, fill_opacity=0.9),
        style_function=lambda feature: {"fillColor": feature["properties"]["color"]},
        tooltip=folium.GeoJsonTooltip(fields=["sensor_id"], labels=False),
        popup=folium.GeoJsonPopup(fields=fields, aliases=["sensor", "now", "+15 min", "+30 min", "+60 min",
                                                          "last reading"]),
    ).add_to(area)  # fmt: skip
    area.fit_bounds([[min(r["latitude"] for r in rows), min(r["longitude"] for r in rows)],
                     [max(r["latitude"] for r in rows), max(r["longitude"] for r in rows)]])  # fmt: skip
    return area


st.title("Traffic network")
with api_call():
    components = client().health()["components"]
feed, demo = components.get("feed", {}), components.get("demo_feed")
feed_running = feed.get("status") == "ok"
refresh = get_settings().network_refresh_seconds if feed_running else None
if demo:
    st.info(f"**Demo feed.** These are not real readings: {demo.get('detail')}.", icon=":material/science:")
choice = st.segmented_control("Level shown", list(HORIZONS), default="now", key="horizon") or "now"
st.caption(
    f"The map redraws every {refresh:.0f} s while the feed consumer runs." if refresh
    else f"Live feed consumer: {feed.get('status', 'unknown')} ({feed.get('detail') or 'not running'}); the map "
    "shows the stored readings."
)  # fmt: skip
LEGEND = " ".join(
    f"<span style='color:{color}; font-size:1.2em'>●</span> {label}"
    for label, color in [*LEVEL_COLORS.items(), ("no data", NO_DATA_COLOR)]
)
FLOWING_SECONDS = 15 * 60


def freshness(rows: list[dict[str, Any]]) -> str:
    """Whether readings are arriving: the newest reading's age over every sensor."""
    ages = [r["age_seconds"] for r in rows if r["age_seconds"] is not None]
    if not ages:
        return "no readings stored yet"
    newest = min(ages)
    if newest <= FLOWING_SECONDS:
        return f"readings arriving: the newest is {_age(newest)} old"
    return f"no reading for {_age(newest)}: the map shows the last stored state"


@st.fragment(run_every=refresh)
def network() -> None:
    asked = time.perf_counter()
    with api_call():
        sensors = client().sensors()
        forecast = client().network_forecast()
    answered = time.perf_counter()
    if not sensors:
        st.info("No sensors are registered yet (PUT /api/traffic/sensors, or `make run`, which registers the model's).")
        return
    if forecast.get("as_of") is None:
        st.info("No readings are stored yet: every sensor shows as no data. `make run` starts a demo feed on an "
                "empty database (DEMO_FEED); or load a sample day on the Readings page, send readings with "
                "`POST /api/traffic/readings`, or replay a speed table into the live feed: "
                "`python -m backend.cli.replay --speeds FILE --shift-to-now`.")  # fmt: skip
    rows = sensor_states(sensors, forecast, HORIZONS[choice])
    counts = {level: sum(r["shown"] == level for r in rows) for level in [*LEVEL_COLORS, "no data"]}
    for column, (level, count) in zip(st.columns(len(counts)), counts.items(), strict=True):
        column.metric(level, count)
    st.markdown(f"{LEGEND} &nbsp;·&nbsp; {freshness(rows)}", unsafe_allow_html=True)
    picked = st_folium(network_map(rows), height=560, width="100%", key="network-map",
                       returned_objects=["last_active_drawing"])  # fmt: skip
    clicked = ((picked or {}).get("last_active_drawing") or {}).get("properties", {}).get("sensor_id")
    if clicked:
        st.session_state["sensor_id"] = clicked
        st.page_link(SENSOR_PAGE, label=f"Open sensor {clicked}: history and forecast", icon=":material/show_chart:")
    drawn = time.perf_counter() - answered
    st.caption(f"{len(rows)} sensors · newest reading {utc(forecast.get('as_of')) or '–'} · model "
               f"{forecast['model_version']} · {len(forecast['unavailable'])} without a forecast · drawn in "
               f"{drawn:.2f} s after the API answered in {answered - asked:.2f} s")  # fmt: skip
    with st.expander("Sensors as a table"):
        st.dataframe([{k: v for k, v in r.items() if k not in ("latitude", "longitude")} for r in rows],
                     hide_index=True)  # fmt: skip


network()
