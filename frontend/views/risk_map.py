"""Predicted risk by district on a map of Daegu, and predicted ECLO by hour, weather and road type."""

from datetime import date

import folium
import plotly.express as px
import streamlit as st
from streamlit_folium import st_folium

from frontend.connection import api_call, caller_key, client
from frontend.labels import ENGLISH, RISK_COLORS, label
from frontend.maps import base_map
from frontend.model_inputs import model_or_stop, row_for

DAEGU = (35.8714, 128.6014)
# Daegu's 구/군 at their district offices.
DISTRICT_CENTRES = {
    "중구": (35.8693, 128.6062), "동구": (35.8866, 128.6356), "서구": (35.8718, 128.5591),
    "남구": (35.8460, 128.5975), "북구": (35.8858, 128.5828), "수성구": (35.8582, 128.6305),
    "달서구": (35.8299, 128.5326), "달성군": (35.7746, 128.4314),
}  # fmt: skip

st.title("Risk map and charts")
model = model_or_stop()
allowed = model["allowed_values"]


def pick(title: str, field: str, default: str) -> str:
    values = allowed[field]
    return st.selectbox(title, values, index=values.index(default) if default in values else 0, format_func=label)


with st.container(border=True):
    cols = st.columns(6)
    with cols[0]:
        weather = pick("weather", "weather", "맑음")
    with cols[1]:
        surface = pick("road surface", "road_surface", "건조")
    with cols[2]:
        road = pick("road type", "road_type", "교차로")
    with cols[3]:
        kind = pick("accident type", "accident_type", "차대차")
    with cols[4]:
        when = st.date_input("date", value=date(2024, 12, 10))
    with cols[5]:
        hour = st.slider("hour", 0, 23, 18)


@st.cache_data(ttl=600, show_spinner="predicting…")
def predict(rows: tuple[tuple[tuple[str, object], ...], ...], caller: str | None) -> list[dict]:
    """Cached per key (`caller`): a session never gets answers its own key was not allowed, or not asked for."""
    return [client().predict_eclo(dict(row)) for row in rows]


def scored(rows: list[dict]) -> list[dict]:
    return predict(tuple(tuple(sorted(row.items())) for row in rows), caller_key())


base = {"weather": weather, "road_surface": surface, "road_type": road, "accident_type": kind}
districts = [d for d in DISTRICT_CENTRES if d in allowed["district"]]
with api_call():
    by_district = scored([row_for({**base, "district": d}, when, hour) for d in districts])
    focus = st.selectbox("district for the charts", districts, format_func=label)
    by_hour = scored([row_for({**base, "district": focus}, when, h) for h in range(24)])
    by_weather = scored([row_for({**base, "district": focus, "weather": w}, when, hour) for w in allowed["weather"]])
    roads = allowed["road_type"]
    by_road = scored([row_for({**base, "district": focus, "road_type": r}, when, hour) for r in roads])

left, right = st.columns([3, 2])
with left:
    st.subheader("Predicted severity by district")
    area = base_map(DAEGU, 11)
    for name, answer in zip(districts, by_district, strict=True):
        folium.CircleMarker(
            location=DISTRICT_CENTRES[name],
            radius=8 + 4 * answer["eclo"],
            color=RISK_COLORS[answer["risk_level"]],
            fill=True,
            fill_opacity=0.6,
            tooltip=f"{label(name)}: {answer['p_severe']:.0%} chance of a death or serious injury "
            f"({answer['relative_risk']:.2f} × average, {answer['risk_level']}); ECLO {answer['eclo']:.2f}",
        ).add_to(area)
        text = f"{ENGLISH.get(name, name)} {answer['p_severe']:.0%}"
        folium.Marker(DISTRICT_CENTRES[name], icon=folium.DivIcon(
            html=f'<div style="font:600 11px sans-serif;white-space:nowrap;transform:translate(-50%,14px)">'
                 f"{text}</div>",
            icon_size=(0, 0))).add_to(area)  # fmt: skip
    area.fit_bounds([[min(p[0] for p in DISTRICT_CENTRES.values()), min(p[1] for p in DISTRICT_CENTRES.values())],
                     [max(p[0] for p in DISTRICT_CENTRES.values()), max(p[1] for p in DISTRICT_CENTRES.values())]],
                    padding=(30, 30))  # fmt: skip
    st_folium(area, height=480, width="100%", returned_objects=[], key="risk-map")
with right:
    ranking = sorted(zip(districts, by_district, strict=True), key=lambda item: -item[1]["p_severe"])
    st.subheader("Ranking")
    st.dataframe(
        [
            {
                "district": label(d),
                "severe %": round(100 * a["p_severe"], 1),
                "relative risk": round(a["relative_risk"], 2),
                "risk": a["risk_level"],
                "ECLO": round(a["eclo"], 2),
            }
            for d, a in ranking
        ],  # fmt: skip
        hide_index=True,
    )

charts = st.columns(3)
with charts[0]:
    figure = px.line(x=list(range(24)), y=[a["eclo"] for a in by_hour], markers=True,
                     labels={"x": "hour", "y": "predicted ECLO"}, title=f"By hour · {label(focus)}")  # fmt: skip
    st.plotly_chart(figure, width="stretch")
with charts[1]:
    figure = px.bar(x=[label(w) for w in allowed["weather"]], y=[a["eclo"] for a in by_weather],
                    labels={"x": "weather", "y": "predicted ECLO"}, title="By weather")  # fmt: skip
    st.plotly_chart(figure, width="stretch")
with charts[2]:
    figure = px.bar(y=[label(r) for r in roads], x=[a["eclo"] for a in by_road], orientation="h",
                    labels={"y": "road type", "x": "predicted ECLO"}, title="By road type")  # fmt: skip
    figure.update_layout(height=520)
    st.plotly_chart(figure, width="stretch")
