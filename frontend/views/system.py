"""Health of the API, Redis, the database and the workers; model versions and metrics; links."""

import re
from typing import Any

import streamlit as st

from frontend.common import api_call, client, public_api_url
from frontend.settings import get_settings

# Streamlit's bundled icon font: drawn without internet or an emoji font.
STATUS_ICON = {"ok": ":green[:material/check_circle:]", "degraded": ":orange[:material/warning:]",
               "down": ":red[:material/error:]"}  # fmt: skip
BY_HORIZON = re.compile(r"^(?:baseline_(?P<baseline>[a-z]+)_)?(?P<metric>mae|rmse|mape)_(?P<minutes>\d+)$")
BASELINES = {"last": "copy-last", "ha": "historical average"}


def metrics_tables(metrics: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A model's numeric metrics: those per forecast horizon (model and baselines side by side), and the rest."""
    horizons: dict[int, dict[str, Any]] = {}
    other = []
    for name, value in metrics.items():
        if not isinstance(value, int | float):
            continue
        found = BY_HORIZON.match(name)
        if found is None:
            other.append({"metric": name.replace("_", " "), "value": value})
            continue
        minutes = int(found["minutes"])
        row = horizons.setdefault(minutes, {"horizon": f"+{minutes} min"})
        who = BASELINES.get(found["baseline"], found["baseline"]) if found["baseline"] else "model"
        row[f"{found['metric'].upper()} {who}"] = round(value, 4)
    return [horizons[m] for m in sorted(horizons)], other


st.title("System")
with api_call():
    health = client().health()
    models = client().models()
    recent = client().predictions(size=10)

st.subheader(f"{STATUS_ICON.get(health['status'], '')} Service {health['status']}")
st.dataframe(
    [
        {
            "component": name,
            "status": c["status"],
            "detail": c.get("detail") or "",
            "latency ms": c.get("latency_ms"),
        }  # fmt: skip
        for name, c in health["components"].items()
    ],
    hide_index=True,
)

st.subheader("Models")
for model in models:
    trees = f" · {model['num_trees']} trees" if model.get("num_trees") else ""
    st.markdown(f"**{model['name']}** ({model.get('kind')}) · version `{model['version']}`{trees}")
    if model.get("summary"):
        st.caption(model["summary"])
    by_horizon, other = metrics_tables(model["metrics"])
    if by_horizon:
        st.dataframe(by_horizon, hide_index=True)
    if other:
        st.dataframe(other, hide_index=True)
    rows = f"{model['rows']:,} rows" if model.get("rows") else "rows unknown"
    st.caption(f"trained {model['trained_at']} on {model['data_source']} ({rows})")

st.subheader("Links")
st.link_button("API documentation (OpenAPI)", f"{public_api_url()}/docs")
st.link_button("Flower: workers and tasks", get_settings().flower_url)

st.subheader("Latest predictions")
st.dataframe(
    [{k: item[k] for k in ("created_at", "eclo", "risk_level", "model_version", "cached")} for item in recent["items"]],
    hide_index=True,
)
