"""Health of the API, Redis, the database and the workers; model versions and metrics; links."""

import streamlit as st

from frontend.common import api_call, client, public_api_url
from frontend.settings import get_settings

STATUS_ICON = {"ok": "🟢", "degraded": "🟠", "down": "🔴"}

st.title("System")
with api_call():
    health = client().health()
    models = client().models()
    recent = client().predictions(size=10)

st.subheader(f"{STATUS_ICON.get(health['status'], '⚪')} Service {health['status']}")
st.dataframe(
    [
        {
            "component": name,
            "status": f"{STATUS_ICON.get(c['status'], '')} {c['status']}",
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
    metrics = {k: v for k, v in model["metrics"].items() if isinstance(v, int | float)}
    if metrics:
        cols = st.columns(min(len(metrics), 4) + 1)
        for col, (name, value) in zip(cols, list(metrics.items())[:4], strict=False):
            col.metric(name.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else f"{value:,}")
        cols[-1].metric("training rows", f"{model['rows']:,}" if model.get("rows") else "–")
    st.caption(f"trained {model['trained_at']} on {model['data_source']}")

st.subheader("Links")
st.link_button("API documentation (OpenAPI)", f"{public_api_url()}/docs")
st.link_button("Flower: workers and tasks", get_settings().flower_url)

st.subheader("Latest predictions")
st.dataframe(
    [{k: item[k] for k in ("created_at", "eclo", "risk_level", "model_version", "cached")} for item in recent["items"]],
    hide_index=True,
)
