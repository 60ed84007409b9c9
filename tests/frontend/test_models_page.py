"""The Models page with streamlit's AppTest against a stand-in of the lifecycle API (a local HTTP server answering
what the real one answers), and the page's pure helpers."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import pytest
from streamlit.testing.v1 import AppTest

from backend.dev.processes import free_port
from frontend.model_lifecycle import drift_chart, psi_band, trainable_datasets, versions_table
from frontend.settings import get_settings
from tests.fixtures.dashboard import APP, point_at

DEFAULT, TRAINED = "6dc9c908c471b145", "1ac1f27c34c7bdc2"
DATASET = "40c5569f91b44b44976582f6f60bec43"
JOB = "8189e3cc6ca5438b9d57f0f661999291"
DASHBOARD_KEY = "tpk_0123456789ab_" + "d" * 43

VERSIONS = {
    "name": "eclo", "champion": DEFAULT, "challenger": None, "rollback_to": None, "keep_versions": 5,
    "versions": [
        {"version": DEFAULT, "kind": "eclo", "is_default": True, "aliases": ["champion"],
         "trained_at": "2026-11-24T02:01:23+00:00", "deletable": False, "comparison": None,
         "training_data": {"data_source": "accidents_2007_2015.csv.gz", "rows": 127826, "years": [2007, 2015]},
         "metrics": {"cv": {"folds": 5, "rmsle": 0.4446},
                     "temporal": {"train_years": [2007, 2013], "test_years": [2014, 2015], "test_rows": 28747,
                                  "eclo": {"rmsle": 0.4606, "constant_training_mean_rmsle": 0.475},
                                  "severe": {"auc": 0.618, "brier": 0.2115, "brier_constant": 0.229}}}},
        {"version": TRAINED, "kind": "eclo", "is_default": False, "aliases": [],
         "trained_at": "2026-12-07T12:52:40+00:00", "deletable": False,
         "training_data": {"dataset_ids": [DATASET], "rows": 6000, "years": [2019, 2021]},
         "metrics": {"temporal": {"train_years": [2019, 2020], "test_years": [2021, 2021], "test_rows": 2014,
                                  "eclo": {"rmsle": 0.4151, "constant_training_mean_rmsle": 0.4574},
                                  "severe": {"auc": 0.6876, "brier": 0.1898, "brier_constant": 0.2092}}},
         "comparison": {
             "held_out_years": [2021, 2021], "held_out_rows": 2014, "rows": 1960, "left_out": {"rows": 54},
             "new": {"version": TRAINED, "rows": 1960, "rmsle": 0.414395, "constant_rmsle": 0.456937,
                     "last_year_rmsle": 0.45696, "severe_auc": 0.685635, "severe_brier": 0.191685},
             "champion": {"version": DEFAULT, "rows": 1960, "rmsle": 0.453881, "constant_rmsle": 0.459389,
                          "last_year_rmsle": 0.457164, "severe_auc": 0.589985, "severe_brier": 0.205612},
             "notes": ["new: the fit on 2019-2020", "champion: as served"]}},
    ],
}  # fmt: skip
DRIFT = {
    "name": "eclo", "version": DEFAULT, "since": "2026-12-01T00:00:00Z", "until": "2026-12-08T00:00:00Z",
    "rows": 400, "threshold": 0.2, "drifted_share": 0.25, "note": None,
    "fields": [
        {"field": "weather", "kind": "categorical", "n": 400, "psi": 0.05, "p_value": 0.4, "drifted": False,
         "unseen_share": 0.0, "note": None, "bins": [{"label": "맑음", "reference_share": 0.8, "recorded_share": 0.7},
                                                     {"label": "비", "reference_share": 0.2, "recorded_share": 0.3}]},
        {"field": "district", "kind": "categorical", "n": 400, "psi": 0.15, "p_value": 0.01, "drifted": False,
         "unseen_share": 0.0, "note": None, "bins": []},
        {"field": "accident_hour", "kind": "numeric", "n": 400, "psi": 1.4, "p_value": 1e-9, "drifted": True,
         "unseen_share": None, "note": None, "bins": []},
        {"field": "accident_month", "kind": "numeric", "n": 0, "psi": None, "p_value": None, "drifted": False,
         "unseen_share": None, "note": "no recorded values of this field", "bins": []},
    ],
    "predictions": [{"field": "eclo", "kind": "numeric", "n": 400, "psi": 0.31, "p_value": 1e-5, "drifted": True,
                     "unseen_share": None, "note": None, "bins": []}],
}  # fmt: skip
SHADOW = {"name": "eclo", "champion": DEFAULT, "challenger": None, "count": 0, "mean_abs_difference": None,
          "mean_difference": None, "largest_difference": None, "level_differs_share": None,
          "compared": "eclo (expected ECLO)", "first": None, "last": None}  # fmt: skip
DATASETS = {"total": 2, "items": [
    {"id": DATASET, "name": "Generated accidents", "kind": "eclo", "has_outcomes": True, "rows": 6000,
     "columns": ["사고일시", "사망자수", "중상자수", "경상자수", "부상자수"], "uploaded_at": "2026-12-07T12:50:00Z"},
    {"id": "f" * 32, "name": "parking lots", "kind": "table", "has_outcomes": False, "rows": 50, "columns": ["x"],
     "uploaded_at": "2026-12-07T12:51:00Z"},
]}  # fmt: skip


class FakeApi:
    """Answers the routes the Models page calls; records what it is sent. `secured`: a key is asked for, and the
    dashboard's own key holds predict and read only."""

    def __init__(self, secured: bool = False) -> None:
        self.secured = secured
        self.versions = copy.deepcopy(VERSIONS)
        self.jobs: list[dict[str, Any]] = []
        self.moves: list[dict[str, Any]] = []
        self.sent: list[tuple[str, str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, payload = owner.route(self.command, urlparse(self.path).path, body,
                                              self.headers.get("Authorization"))  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method: str, path: str, body: Any, authorization: str | None) -> tuple[int, Any]:
        if self.secured and not authorization:
            return 401, {"error": {"code": "unauthorized", "message": "this route needs an API key", "details": []}}
        if path == "/api/keys/me":
            return 200, {"key_id": "0123456789ab", "name": "dashboard", "scopes": ["predict", "read"]}
        if method != "GET" and not path.endswith("/query"):  # a dataset query is a read
            self.sent.append((method, path, body))
        if (method, path) == ("POST", "/api/models/eclo/versions"):
            self.jobs.insert(0, {"job_id": JOB, "model_name": "eclo", "status": "running", "stage": "training",
                                 "fraction": 0.4, "log": ["the champion is version " + DEFAULT, "fold 1/5: rmsle 0.39"],
                                 "version": None, "error": None, "request": body, "created_at": "2026-12-07T13:00:00Z",
                                 "started_at": "2026-12-07T13:00:01Z", "finished_at": None})  # fmt: skip
            return 202, {"job_id": JOB, "status": "pending", "poll_url": f"/api/models/eclo/training/{JOB}"}
        if (method, path) == ("PUT", "/api/models/eclo/aliases/champion"):
            previous, self.versions["champion"] = self.versions["champion"], body["version"]
            return 200, {"name": "eclo", "alias": "champion", "version": body["version"], "previous": previous,
                         "reload_seconds": 5.0}  # fmt: skip
        answers = {
            "/api/models": {"models": [{"name": "eclo", "kind": "eclo", "version": self.versions["champion"]}]},
            "/api/models/eclo/versions": self.versions,
            "/api/models/eclo/training": {"jobs": self.jobs},
            f"/api/models/eclo/training/{JOB}": self.jobs[0] if self.jobs else None,
            "/api/models/eclo/aliases/history": {"name": "eclo", "moves": self.moves},
            "/api/models/eclo/shadow": SHADOW,
            "/api/models/eclo/drift": DRIFT,
            "/api/datasets": DATASETS,
        }  # fmt: skip
        if method == "GET" and answers.get(path) is not None:
            return 200, answers[path]
        if (method, path) == ("POST", f"/api/datasets/{DATASET}/query"):  # the least and greatest accident time
            return 200, {"columns": ["first", "last"], "rows": [{"first": "2019-01-01 25", "last": "2021-12-31 18"}],
                         "truncated": False}  # fmt: skip
        return 404, {"error": {"code": "not_found", "message": f"no route {method} {path}", "details": []}}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    api = FakeApi()
    point_at(monkeypatch, api.url)
    yield api
    api.server.shutdown()
    get_settings.cache_clear()


def _open() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    app.run()
    app.switch_page("views/models.py").run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _button(app: AppTest, label: str) -> Any:
    return next(b for b in app.button if b.label == label)


def test_the_page_shows_the_versions_side_by_side_and_the_comparison_on_the_same_rows(fake: FakeApi) -> None:
    app = _open()
    assert app.title[0].value == "Models"
    assert {m.label: m.value for m in app.metric}["Champion"] == DEFAULT[:8]
    side_by_side = app.dataframe[0].value
    assert list(side_by_side.columns) == [DEFAULT, TRAINED]
    assert side_by_side.loc["RMSLE, held-out"].tolist() == ["0.4606", "0.4151"]
    assert side_by_side.loc["aliases", DEFAULT] == "champion, committed default"
    comparison = app.dataframe[1].value
    assert comparison["model"].tolist() == ["new", "champion at training", "constant: new's training mean",
                                            "constant: new's last training year"]  # fmt: skip
    assert comparison["RMSLE"].tolist() == [0.414395, 0.453881, 0.456937, 0.45696]
    assert comparison["rows"].tolist() == [1960] * 4  # the same rows
    assert any("1,960 of 2,014 rows compared (54 left out" in c.value for c in app.caption)
    drift = json.loads(next(c.proto.spec for c in app.get("plotly_chart") if "population stability" in c.proto.spec))
    bars = {y: trace["marker"]["color"] for trace in drift["data"] if trace["type"] == "bar" for y in trace["y"]}
    # accident_month has no PSI: it is in the table, not the chart
    assert bars == {"weather": "#2e7d32", "district": "#f9a825", "accident_hour": "#c62828",
                    "answer: eclo": "#c62828"}  # fmt: skip
    assert drift["layout"]["shapes"][0]["x0"] == 0.2 and drift["data"][-1]["name"] == "threshold 0.2"
    assert drift["layout"]["xaxis"]["type"] == "log"  # a PSI of 1.4, over 5 times the threshold
    assert {m.label: m.value for m in app.metric}["Input fields drifted"] == "1 of 4"


def test_the_training_form_submits_and_the_job_is_followed(fake: FakeApi) -> None:
    app = _open()
    (year,) = [n for n in app.number_input if n.label == "First held-out year"]
    assert year.value == 2021  # the last year of the chosen file (2019-2021), its least and greatest 사고일시
    (files,) = [m for m in app.multiselect if m.label == "Accident files with outcomes"]
    assert files.value == [DATASET] and len(files.options) == 1  # the table is no accident file
    _button(app, "Train a new version").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert fake.sent == [("POST", "/api/models/eclo/versions", {"dataset_ids": [DATASET], "holdout_from_year": 2021})]
    (bar,) = app.get("progress")
    assert bar.proto.text == "running: training (40%)" and bar.value == 40
    assert "fold 1/5: rmsle 0.39" in app.code[0].value
    assert not [b for b in app.button if b.label == "Train a new version"]  # one job at a time


def test_promoting_asks_for_a_confirmation_first(fake: FakeApi) -> None:
    app = _open()
    assert app.selectbox[-2].label == "Version" and app.selectbox[-2].value == TRAINED
    _button(app, "Promote to champion").click().run()
    assert fake.sent == [] and any(f"Promote version {TRAINED} to champion?" in w.value for w in app.warning)
    _button(app, "Confirm").click().run()
    assert fake.sent == [("PUT", "/api/models/eclo/aliases/champion", {"version": TRAINED})]
    assert any(f"moved from {DEFAULT} to {TRAINED}" in s.value for s in app.success)
    assert {m.label: m.value for m in app.metric}["Champion"] == TRAINED[:8]


def test_a_dashboard_key_without_admin_sees_no_promote_button(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi(secured=True)
    monkeypatch.setenv("API_KEY", DASHBOARD_KEY)
    point_at(monkeypatch, api.url)
    try:
        app = _open()
        labels = {b.label for b in app.button}
        assert not labels & {"Promote to champion", "Set as challenger", "Roll back the champion",
                             "Train a new version"}, labels  # fmt: skip
        assert any("needs an admin key" in i.value for i in app.info)  # said, and the sign-in form offered
        assert len(app.dataframe) >= 2 and api.sent == []  # the versions and the comparison all the same
    finally:
        api.server.shutdown()
        get_settings.cache_clear()


def test_an_unreachable_api_shows_a_message_and_a_retry_button(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ATTEMPTS", "1")
    point_at(monkeypatch, f"http://127.0.0.1:{free_port()}")
    try:
        app = _open()
        assert "The prediction API is not reachable" in app.error[0].value
        assert [b.label for b in app.button] == ["Retry"]
    finally:
        get_settings.cache_clear()


def test_psi_bands_and_the_versions_table() -> None:
    assert [psi_band(p)[0] for p in (0.0, 0.0999, 0.1, 0.1999, 0.2, 3.0)] == ["#2e7d32"] * 2 + ["#f9a825"] * 2 + [
        "#c62828"
    ] * 2
    assert psi_band(None)[1] == "no PSI"
    calm = drift_chart({**DRIFT, "fields": DRIFT["fields"][:2], "predictions": []})
    assert [len(trace.y) for trace in calm.data] == [1, 1, 0, 1]  # the bands' bars, then the threshold's legend
    assert calm.layout.xaxis.type is None and calm.layout.xaxis.range == (0, pytest.approx(0.3 * 1.15))
    listing = copy.deepcopy(VERSIONS)
    assert versions_table(listing).loc["data", TRAINED] == f"1 uploaded file: {DATASET[:8]}"
    usable, lacking = trainable_datasets(
        [*DATASETS["items"], {"id": "x", "kind": "eclo", "has_outcomes": True, "columns": ["ECLO"]}]
    )
    assert [d["id"] for d in usable] == [DATASET] and lacking == 1
