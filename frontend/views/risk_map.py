"""Predicted risk by district on a map of Daegu, and predicted ECLO by hour, weather and road type."""

from datetime import date

import folium
import plotly.express as px
import streamlit as st
from streamlit_folium import st_folium

from frontend.connection import api_call, caller_key, client
from frontend.district_map import CENTRE, DISTRICT_CENTRES, ZOOM, district_label, radius
from frontend.labels import RISK_COLORS, label
from frontend.maps import base_map
from frontend.model_inputs import model_or_stop, row_for

st.title("Risk map and charts")
model = model_or_stop()
allowed = model["allowed_values"]


def pick(title: str, field: str, default: str) -> str:
    values = allowed[field]
    return st.selectbox(title, values, index=values.index(default) if default in values else 0, format_func=label)


with st.container(border=True):
    top, bottom = st.columns(3), st.columns(3)  # two rows: six boxes in one clip their values
    with top[0]:
        weather = pick("기상상태 · weather", "weather", "맑음")
    with top[1]:
        surface = pick("노면상태 · road surface", "road_surface", "건조")
    with top[2]:
        road = pick("도로형태 · road type", "road_type", "교차로")
    with bottom[0]:
        kind = pick("사고유형 · accident type", "accident_type", "차대차")
    with bottom[1]:
        when = st.date_input("사고일 · date", value=date(2024, 12, 10))
    with bottom[2]:
        hour = st.slider("사고시각 · hour", 0, 23, 18)


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
    focus = st.selectbox("시군구 · district for the charts", districts, format_func=label)
    by_hour = scored([row_for({**base, "district": focus}, when, h) for h in range(24)])
    by_weather = scored([row_for({**base, "district": focus, "weather": w}, when, hour) for w in allowed["weather"]])
    roads = allowed["road_type"]
    by_road = scored([row_for({**base, "district": focus, "road_type": r}, when, hour) for r in roads])

left, right = st.columns(2)
with left:
    st.subheader("Predicted severity by district")
    area = base_map(CENTRE, ZOOM)
    for name, answer in zip(districts, by_district, strict=True):
        folium.CircleMarker(
            location=DISTRICT_CENTRES[name],
            radius=radius(answer),
            color=RISK_COLORS[answer["risk_level"]],
            weight=2,
            fill=True,
            fill_opacity=0.6,
            tooltip=f"{label(name)}: {answer['p_severe']:.0%} chance of a death or serious injury "
            f"({answer['relative_risk']:.2f} × average, {answer['risk_level']}); ECLO {answer['eclo']:.2f}",
        ).add_to(area)
        folium.Marker(DISTRICT_CENTRES[name], icon=district_label(name, answer), interactive=False).add_to(area)
    st_folium(area, height=480, width="100%", returned_objects=[], key="risk-map")
    st.caption("Each district at its office; the circle's colour is its risk level, its size the relative risk, "
               "the label the chance of a death or serious injury.")  # fmt: skip
with right:
    ranking = sorted(zip(districts, by_district, strict=True), key=lambda item: -item[1]["p_severe"])
    st.subheader("Ranking")
    st.dataframe(
        [
            {
                "district": label(d),
                "severe": round(100 * a["p_severe"], 1),
                "relative risk": a["relative_risk"],
                "risk": a["risk_level"],
                "ECLO": a["eclo"],
            }
            for d, a in ranking
        ],  # fmt: skip
        hide_index=True,
        width="stretch",
        column_config={
            # in pixels: the five columns fit the half page (Streamlit's "medium" leaves the last one clipped)
            "district": st.column_config.TextColumn(width=165),
            "severe": st.column_config.NumberColumn(
                "severe %", format="%.1f%%", width=72, help="chance of a death or serious injury"
            ),
            "relative risk": st.column_config.NumberColumn(
                "× average", format="%.2f", width=78, help="relative risk: the chance over the city's average"
            ),
            "risk": st.column_config.TextColumn(width=80),
            "ECLO": st.column_config.NumberColumn(format="%.2f", width=60, help="expected ECLO"),
        },
    )

charts = st.columns(2)
with charts[0]:
    figure = px.line(x=list(range(24)), y=[a["eclo"] for a in by_hour], markers=True,
                     labels={"x": "hour", "y": "predicted ECLO"}, title=f"By hour · {label(focus)}")  # fmt: skip
    st.plotly_chart(figure, width="stretch")
with charts[1]:
    figure = px.bar(x=[label(w) for w in allowed["weather"]], y=[a["eclo"] for a in by_weather],
                    labels={"x": "weather", "y": "predicted ECLO"}, title=f"By weather · {label(focus)}")  # fmt: skip
    st.plotly_chart(figure, width="stretch")
# Full width: the road types' labels ("단일로 - 횡단보도부근 (road segment - near a crosswalk)") need the room.
figure = px.bar(y=[label(r) for r in roads], x=[a["eclo"] for a in by_road], orientation="h",
                labels={"y": "road type", "x": "predicted ECLO"}, title=f"By road type · {label(focus)}")  # fmt: skip
figure.update_layout(height=120 + 28 * len(roads), yaxis={"automargin": True, "categoryorder": "total ascending"})
st.plotly_chart(figure, width="stretch")
