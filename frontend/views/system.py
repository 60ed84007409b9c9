"""Health of the API, Redis, the database and the workers; model versions and metrics; links."""

import streamlit as st

from backend.core.config import get_settings
from frontend.client import ApiError, ApiUnavailable
from frontend.common import client, public_api_url, show_api_error, show_unavailable

STATUS_ICON = {"ok": "🟢", "degraded": "🟠", "down": "🔴"}

st.title("System")
try:
    health = client().health()
    models = client().models()
    recent = client().predictions(size=10)
except ApiUnavailable as exc:
    show_unavailable(exc)
except ApiError as exc:
    show_api_error(exc)
    st.stop()

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
    metrics = model["metrics"]
    st.markdown(f"**{model['name']}** · version `{model['version']}` · {model['num_trees']} trees")
    cols = st.columns(4)
    cols[0].metric("CV RMSLE", f"{metrics['cv_rmsle']:.4f}")
    cols[1].metric("constant baseline", f"{metrics['baseline_constant_rmsle']:.4f}")
    cols[2].metric(
        "ratio", f"{metrics['cv_to_baseline_ratio']:.3f}", help="CV RMSLE / constant baseline; lower is better"
    )
    cols[3].metric("training rows", f"{model['rows']:,}")
    st.caption(f"trained {model['trained_at']} on {model['data_source']}")

st.subheader("Links")
st.link_button("API documentation (OpenAPI)", f"{public_api_url()}/docs")
st.link_button("Flower: workers and tasks", get_settings().flower_url)

st.subheader("Latest predictions")
st.dataframe(
    [{k: item[k] for k in ("created_at", "eclo", "risk_level", "model_version", "cached")} for item in recent["items"]],
    hide_index=True,
)
