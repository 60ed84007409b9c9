"""One prediction: a form built from the model's vocabularies; the chance of a severe outcome, its relative risk,
the expected ECLO and what drove each."""

from datetime import date

import plotly.graph_objects as go
import streamlit as st

from frontend.connection import api_call, client
from frontend.labels import label, risk_badge
from frontend.model_inputs import model_or_stop, row_for

st.title("Predict accident severity")
st.caption(
    "For an accident in Daegu: the chance that it kills or seriously injures someone, compared with the city's "
    "average, and its expected ECLO (10 × deaths + 5 × serious + 3 × minor + 1 × reported injuries)."
)

model = model_or_stop()
allowed = model["allowed_values"]


def choice(title: str, field: str, default: str, options: list[str] | None = None) -> str:
    values = options or allowed[field]
    return st.selectbox(title, values, index=values.index(default) if default in values else 0, format_func=label)


# The form's names of the fields an explanation names.
FIELD_TITLES = {
    "weather": "기상상태 · weather", "road_surface": "노면상태 · road surface", "road_type": "도로형태 · road type",
    "accident_type": "사고유형 · accident type", "district": "시군구 · district", "accident_hour": "사고시각 · hour",
    "time_period": "시간대 · time band", "day_of_week": "요일 · weekday", "accident_year": "연도 · year",
    "accident_month": "월 · month", "accident_day": "일 · day of month",
}  # fmt: skip


def contribution_chart(contributions: list[dict], title: str, unit: str) -> None:
    """An explanation's contributions as bars: raising ones red, lowering ones green."""
    parts = sorted(contributions, key=lambda c: c["contribution"])
    figure = go.Figure(
        go.Bar(
            x=[c["contribution"] for c in parts],
            y=[FIELD_TITLES.get(c["feature"], c["feature"]) for c in parts],
            orientation="h",
            marker_color=["#c62828" if c["contribution"] > 0 else "#2e7d32" for c in parts],
        )
    )
    figure.update_layout(title=title, xaxis_title=unit, height=320, margin={"l": 10, "r": 10, "t": 40})
    st.plotly_chart(figure, width="stretch")


districts = [d for d in allowed["district"] if " " not in d] + [d for d in allowed["district"] if " " in d]
periods = [p for p in allowed["time_period"] if p in ("출근시간대", "퇴근시간대", "심야", "일반시간대")]
with st.form("predict"):
    left, middle, right = st.columns(3)
    with left:
        weather = choice("기상상태 · weather", "weather", "맑음")
        surface = choice("노면상태 · road surface", "road_surface", "건조")
        kind = choice("사고유형 · accident type", "accident_type", "차대차")
    with middle:
        road = choice("도로형태 · road type", "road_type", "교차로")
        district = choice("시군구 · district (구/군, or 구/군 + 동)", "district", "중구", districts)
    with right:
        when = st.date_input("사고일 · date", value=date(2024, 12, 10))
        hour = st.slider("사고시각 · hour", 0, 23, 14)
        period = st.selectbox(
            "시간대 · time band", ["(from the hour)", *periods], format_func=lambda v: v if v[0] == "(" else label(v)
        )
    submitted = st.form_submit_button("Predict", type="primary")

if submitted:
    conditions = {"weather": weather, "road_surface": surface, "road_type": road, "accident_type": kind,
                  "district": district}  # fmt: skip
    if not period.startswith("("):
        conditions["time_period"] = period
    with api_call():
        st.session_state["prediction"] = client().predict_eclo(row_for(conditions, when, hour))

answer = st.session_state.get("prediction")
if answer:
    for note in answer.get("notes", []):
        st.info(note, icon=":material/info:")
    left, right = st.columns([1, 2])
    with left:
        st.markdown(risk_badge(answer), unsafe_allow_html=True)
        st.metric("expected ECLO", f"{answer['eclo']:.2f}", help="on the ECLO scale; 3 = one minor injury")
        st.caption(f"model {answer['model_version']}{' · from cache' if answer['cached'] else ''}")
        bands = ", ".join(
            f"{b['level']} {'≥ ' + str(b['min']) if b['max'] is None else '< ' + str(b['max'])}"
            for b in model["risk_levels"]
        )
        base_rate = (model.get("severe") or {}).get("base_rate")
        average = f" The city's average is {base_rate:.0%}." if base_rate else ""
        st.caption(f"Risk bands of the relative risk: {bands}.{average}")
    with right:
        severe, eclo = st.tabs(["Why this chance", "Why this ECLO"])
        with severe:
            if answer.get("severe_explanation"):
                contribution_chart(
                    answer["severe_explanation"],
                    "What drove the chance of a death or serious injury",
                    "contribution (log-odds)",
                )
                st.caption(
                    "The five inputs that moved it most, each as its contribution to the log-odds of a death or "
                    "serious injury: positive (red) raises the chance, negative (green) lowers it."
                )
            else:
                st.caption("This API does not explain the chance of a severe outcome.")
        with eclo:
            contribution_chart(answer["explanation"], "What drove the expected ECLO", "contribution (log(1 + ECLO))")
            st.caption(
                "The five inputs that moved it most, each as its effect on log(1 + ECLO): positive (red) raises the "
                "expected ECLO, negative (green) lowers it."
            )
