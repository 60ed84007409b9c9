"""Streamlit dashboard: `streamlit run frontend/dashboard.py` (this script behind the Host allow-list of
frontend/hosts.py; API address from API_URL)."""

import sys
from pathlib import Path

import streamlit as st

# Pages import `frontend.*`: the project root must be importable.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from frontend.admin import admin_sidebar  # noqa: E402
from frontend.hosts import refuse_foreign_host  # noqa: E402
from frontend.sign_in import require_sign_in  # noqa: E402

st.set_page_config(page_title="Traffic: accident severity and congestion", page_icon="🚦", layout="wide")
refuse_foreign_host()
require_sign_in()
admin_sidebar()

HERE = Path(__file__).parent
pages = {
    "Accident severity (ECLO)": [
        st.Page(HERE / "views" / "predict.py", title="Predict", icon=":material/target:", default=True),
        st.Page(HERE / "views" / "batch.py", title="Batch", icon=":material/inventory_2:", url_path="batch"),
        st.Page(HERE / "views" / "risk_map.py", title="Risk map & charts", icon=":material/map:", url_path="risk-map"),
    ],
    "Data": [
        st.Page(HERE / "views" / "datasets.py", title="Datasets", icon=":material/dataset:", url_path="datasets"),
        st.Page(HERE / "views" / "explore.py", title="Explore", icon=":material/query_stats:", url_path="explore"),
    ],
    "Assistant": [
        st.Page(HERE / "views" / "assistant.py", title="Assistant", icon=":material/forum:", url_path="assistant"),
    ],
    "Congestion": [
        st.Page(HERE / "views" / "network.py", title="Network", icon=":material/traffic:", url_path="network"),
        st.Page(HERE / "views" / "sensor.py", title="Sensor", icon=":material/show_chart:", url_path="sensor"),
        st.Page(HERE / "views" / "readings.py", title="Readings", icon=":material/upload_file:", url_path="readings"),
    ],
    "Operations": [
        st.Page(HERE / "views" / "system.py", title="System", icon=":material/monitor_heart:", url_path="system"),
        st.Page(HERE / "views" / "models.py", title="Models", icon=":material/model_training:", url_path="models"),
        st.Page(HERE / "views" / "keys.py", title="API keys", icon=":material/key:", url_path="keys"),
    ],
}
st.navigation(pages).run()
