"""Health of the API, Redis, the database and the workers; model versions and metrics; links."""

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import plotly.graph_objects as go
import streamlit as st

from frontend.client import record_filters
from frontend.connection import api_call, client, public_api_url
from frontend.settings import get_settings
from frontend.tables import dataframe, utc

# Streamlit's bundled icon font: drawn without internet or an emoji font.
STATUS_ICON = {"ok": ":green[:material/check_circle:]", "degraded": ":orange[:material/warning:]",
               "down": ":red[:material/error:]"}  # fmt: skip
BY_HORIZON = re.compile(r"^(?:baseline_(?P<baseline>[a-z]+)_)?(?P<metric>[a-z]+)_(?P<minutes>\d+)$")
BASELINES = {"last": "copy-last", "ha": "historical average", "lgbm": "plain LightGBM"}
METRICS = {"mae": "MAE (mph)", "rmse": "RMSE (mph)", "mape": "MAPE (%)"}
DETAIL_CHARS = 85  # about what the health table's detail column shows on a laptop screen


def short(detail: str) -> str:
    """A detail cut to what the health table's cell shows, at a word: the whole is written under the table."""
    if len(detail) <= DETAIL_CHARS:
        return detail
    cut = detail.rfind(" ", 0, DETAIL_CHARS - 2)
    return detail[: cut if cut > 0 else DETAIL_CHARS - 2] + " …"


def metrics_tables(metrics: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[int, float], list[dict[str, Any]]]:
    """A model's numeric metrics: its errors per forecast horizon (one row per measure and horizon, the model and
    each baseline side by side: a column per baseline would run off the page), its uncertainty band's coverage per
    horizon, and the rest."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    coverage: dict[int, float] = {}
    other = []
    for name, value in metrics.items():
        if not isinstance(value, int | float):
            continue
        found = BY_HORIZON.match(name)
        if found is None:
            other.append({"metric": name.replace("_", " "), "value": value})
            continue
        metric, minutes = found["metric"], int(found["minutes"])
        if metric == "coverage" and not found["baseline"]:
            coverage[minutes] = value
            continue
        row = rows.setdefault((metric, minutes), {"measure": METRICS.get(metric, metric), "horizon": f"+{minutes} min"})
        who = BASELINES.get(found["baseline"], found["baseline"]) if found["baseline"] else "model"
        row[who] = round(value, 4)
    order = list(METRICS)
    ranked = sorted(rows, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[0], k[1]))
    return [rows[k] for k in ranked], dict(sorted(coverage.items())), other


def evaluation_tables(evaluation: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An ECLO model's held-out-years and K-fold figures: RMSLE beside its constants, and the severe-outcome
    measures beside a constant rate."""
    eclo_rows, severe_rows = [], []
    temporal, cv = evaluation.get("temporal"), evaluation.get("cv")
    if temporal:
        first, last = temporal["test_years"]
        split = f"{first}-{last} after {temporal['train_years'][0]}-{temporal['train_years'][1]}"
        e, s = temporal["eclo"], temporal["severe"]
        eclo_rows.append({
            "evaluated on": split, "rows": e["rows"], "RMSLE": e["rmsle"],
            "constant (training mean)": e["constant_training_mean_rmsle"], "ratio": e["ratio_to_training_mean"],
            "constant (last training year)": e["constant_last_year_rmsle"], "ratio to it": e["ratio_to_last_year"],
        })  # fmt: skip
        severe_rows.append({
            "evaluated on": split, "AUC": s["auc"], "Brier": s["brier"], "Brier constant": s["brier_constant"],
            "Brier constant (last training year)": s["brier_constant_last_year"], "observed rate": s["observed_rate"],
            "mean predicted": s["mean_predicted"],
        })  # fmt: skip
    if cv:
        eclo_rows.append({"evaluated on": f"{cv['folds']}-fold CV, all years", "RMSLE": cv["rmsle"],
                          "constant (training mean)": cv["constant_rmsle"], "ratio": cv["ratio"],
                          "constant (last training year)": cv.get("constant_last_year_rmsle"),
                          "ratio to it": cv.get("ratio_to_last_year")})  # fmt: skip
        severe_rows.append({"evaluated on": f"{cv['folds']}-fold CV, all years", "AUC": cv["severe_auc"]})
    return eclo_rows, severe_rows


def record_answer(record: dict[str, Any]) -> str:
    """A recorded single prediction's answer in a line: an ECLO figure and its risk, or a sensor's forecasts."""
    if record.get("eclo") is not None:
        return f"ECLO {record['eclo']:.2f} · {record['risk_level']} risk"
    output = record.get("output") or {}
    forecasts = output.get("forecasts") or []
    if not forecasts:
        return "(no answer recorded)"
    horizons = "/".join(str(f["horizon_minutes"]) for f in forecasts)
    speeds = "/".join(f"{f['speed_mph']:.0f}" for f in forecasts)
    levels = "/".join(str(f["level"]) for f in forecasts)
    return f"sensor {output.get('sensor_id', '?')} at +{horizons} min: {speeds} mph, {levels}"


def calibration_chart(table: list[dict[str, Any]], title: str) -> go.Figure:
    figure = go.Figure()
    top = max(max(r["predicted"], r["observed"]) for r in table) * 1.05
    figure.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="perfect",
                                line={"dash": "dot", "color": "#888"}))  # fmt: skip
    figure.add_trace(go.Scatter(
        x=[r["predicted"] for r in table], y=[r["observed"] for r in table], mode="lines+markers", name="deciles",
        text=[f"decile {r['decile']}: {r['rows']:,} accidents" for r in table],
        hovertemplate="%{text}<br>predicted %{x:.1%}<br>observed %{y:.1%}<extra></extra>",
    ))  # fmt: skip
    figure.update_layout(title=title, height=340, margin={"l": 10, "r": 10, "t": 40},
                         xaxis={"title": "predicted chance of a severe outcome", "tickformat": ".0%"},
                         yaxis={"title": "observed share", "tickformat": ".0%"})  # fmt: skip
    return figure


st.title("System")
with api_call():
    health = client().health()
    models = client().models()
    recent = client().predictions(size=10)

st.subheader(f"{STATUS_ICON.get(health['status'], '')} Service {health['status']}")
components = {name.replace("_", " "): c for name, c in health["components"].items()}
long_details = {name: c["detail"] for name, c in components.items() if len(c.get("detail") or "") > DETAIL_CHARS}
dataframe(
    [
        {"component": name, "status": c["status"], "latency ms": c.get("latency_ms"),
         "detail": short(c.get("detail") or "") if name in long_details else c.get("detail") or ""}
        for name, c in components.items()
    ],
    hide_index=True,
)  # fmt: skip
for name, detail in long_details.items():  # whole, where the table's cell would cut it off
    st.caption(f"**{name}**: {detail}")

st.subheader("Models")
for model in models:
    trees = f" · {model['num_trees']} trees" if model.get("num_trees") else ""
    st.markdown(f"**{model['name']}** ({model.get('kind')}) · version `{model['version']}`{trees}")
    if model.get("summary"):
        st.caption(model["summary"])
    evaluation = model.get("evaluation") or {}
    eclo_rows, severe_rows = evaluation_tables(evaluation)
    if eclo_rows:
        st.markdown("Expected ECLO (log scale error; lower is better)")
        dataframe(eclo_rows, hide_index=True)
        st.markdown("Chance of a death or serious injury")
        dataframe(severe_rows, hide_index=True)
        temporal = evaluation.get("temporal")
        if temporal and temporal["severe"].get("calibration"):
            first, last = temporal["test_years"]
            title = f"Calibration on {first}-{last} (each half calibrated by the other)"
            st.plotly_chart(calibration_chart(temporal["severe"]["calibration"], title), width="stretch")
    else:
        by_horizon, coverage, other = metrics_tables(model["metrics"])
        if by_horizon:
            dataframe(by_horizon, hide_index=True, height=35 * (len(by_horizon) + 1) + 3)  # every row, unscrolled
        if coverage:
            st.caption(f"The forecasts' 10th-90th percentile band held "
                       f"{' / '.join(f'{share:.1%}' for share in coverage.values())} of the real speeds at "
                       f"+{'/'.join(str(m) for m in coverage)} min on the test windows.")  # fmt: skip
        if other:
            dataframe(other, hide_index=True)
    rows = f"{model['rows']:,} rows" if model.get("rows") else "rows unknown"
    st.caption(f"trained {utc(model['trained_at']) or 'at an unknown time'} on {model['data_source']} ({rows})")

st.subheader("Links")
st.link_button("API documentation (OpenAPI)", f"{public_api_url()}/docs")
st.link_button("Flower: workers and tasks", get_settings().flower_url)

st.subheader("Latest predictions")
if recent["items"]:
    dataframe(
        [
            {"at": utc(item["created_at"], seconds=True), "model": item["model_name"], "answer": record_answer(item),
             "model version": item["model_version"], "cached": item["cached"], "key": item["key_id"]}
            for item in recent["items"]
        ],
        hide_index=True,
    )  # fmt: skip
else:
    st.info("No prediction recorded yet: the Predict and Batch pages make some.")

st.subheader("Export the records")
st.caption("Every single prediction in the chosen days (UTC), oldest first, as CSV: when, which model and key, the "
           "answer, and the inputs as sent.")  # fmt: skip
model_column, from_column, to_column = st.columns(3)
kind = model_column.selectbox("Model", ["all", *sorted(model["name"] for model in models)])
today = datetime.now(UTC).date()
first = from_column.date_input("From", today - timedelta(days=7), max_value=today)
last = to_column.date_input("To (inclusive)", today, max_value=today)
if first > last:
    st.warning("The first day is after the last: choose days in order.")
else:
    chosen = {
        "model": None if kind == "all" else kind,
        "since": datetime.combine(first, time.min),
        "until": datetime.combine(last + timedelta(days=1), time.min),
    }
    with api_call():
        listing = client().predictions(size=1, **chosen)
    count, exact = listing["total"], listing["total_exact"]  # not exact: more than `total`, counted no further
    limit = get_settings().records_export_max_rows
    if count > limit or not exact:
        query = urlencode(record_filters(**chosen))
        counted = f"{count:,} records" if exact else f"More than {count:,} records (counted no further)"
        st.info(f"{counted}: the dashboard hands out at most {limit:,} at once. Choose fewer days, or fetch them "
                f"from the API, which streams them: `GET {public_api_url()}/api/predictions.csv?{query}` with a key "
                "of the `read` scope.")  # fmt: skip
    else:
        st.download_button(
            f"Download records (CSV, {count:,})",
            data=lambda: client().predictions_csv(**chosen),
            file_name=f"predictions-{kind}-{first}-{last}.csv",
            mime="text/csv",
            on_click="ignore",
        )
