"""How the dashboard is served: `streamlit run frontend/dashboard.py` (the options of `streamlit run` apply) serves
frontend/app.py behind the Host allow-list of frontend/hosts.py, on every HTTP route and the WebSocket alike."""

import sys
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `frontend.*` must be importable
    sys.path.insert(0, str(HERE.parent))

from frontend.hosts import HostAllowList  # noqa: E402

app = st.App(HERE / "app.py", middleware=[Middleware(HostAllowList)])
