"""The Datasets page with streamlit's AppTest against the real API and worker of the session stack."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures.dashboard import APP, open_with_dataset
from tests.fixtures.datasets import dacon_file, upload, wait_for_job
from tests.fixtures.explore import side_csv


@pytest.fixture(scope="module")
def scored(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 1,000-row file with bad rows, uploaded and scored by the stack's worker."""
    dataset = upload(api, dacon_file(Path(tmp_path_factory.mktemp("page")), 1000, seed=9), name="page test").json()
    api.post(f"/api/datasets/{dataset['id']}/predict")
    return {**dataset, "job": wait_for_job(api, dataset["id"])}


def _open(dataset_id: str) -> AppTest:
    return open_with_dataset("views/datasets.py", dataset_id)


def test_a_scored_dataset_shows_its_counts_report_evaluation_and_downloads(live_api: str, scored: dict) -> None:
    app = _open(scored["id"])
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rows"] == "1,000" and metrics["Valid"] == f"{scored['valid_rows']:,}"
    assert metrics["RMSLE of the model"] == f"{scored['job']['evaluation']['rmsle']:.4f}"
    report = app.dataframe[-1].value
    assert len(report) == min(200, scored["problems"]) and set(report.columns) >= {"row", "column", "problem"}
    downloads = {e.proto.label: e.proto for e in app.get("download_button")}
    assert set(downloads) == {"Download results (CSV)", "Download results (Parquet)"}
    assert all(d.deferred_file_id for d in downloads.values())  # fetched when clicked, with the dashboard's key


def test_invalid_rows_and_problems_are_counted_apart_and_uploads_told_apart(live_api: str, scored: dict) -> None:
    app = _open(scored["id"])
    invalid = scored["rows"] - scored["valid_rows"]
    assert invalid and scored["problems"] >= invalid
    assert {m.label: m.value for m in app.metric}["Invalid"] == f"{invalid:,}"
    title = f"Validation report ({scored['problems']:,} problems in {invalid:,} rows)"
    assert title in [t.label for t in app.tabs], [t.label for t in app.tabs]
    (box,) = [s for s in app.selectbox if s.label == "Dataset"]
    pattern = rf"page test · eclo · uploaded \d{{4}}-\d\d-\d\d \d\d:\d\d UTC \({scored['id'][:8]}\)"
    assert any(re.fullmatch(pattern, option) for option in box.options), box.options
    listed = app.dataframe[0].value
    assert {"uploaded", "valid", "invalid"} <= set(listed.columns) and "uploaded_at" not in listed.columns


def test_a_share_link_opens_the_dataset_read_only(live_api: str, scored: dict) -> None:
    app = _open(scored["id"])
    next(b for b in app.button if b.label == "Create a read-only link").click().run()
    (code,) = [c.value for c in app.code if "?share=" in c.value]
    token = code.split("?share=", 1)[1]
    assert httpx.get(f"{live_api}/api/shared/{token}").json()["dataset"]["id"] == scored["id"]

    shared = AppTest.from_file(APP, default_timeout=60)
    shared.run()
    shared.query_params["share"] = token
    shared.switch_page("views/datasets.py").run()
    assert not shared.exception, [e.message for e in shared.exception]
    assert shared.title[0].value == "Shared dataset" and shared.subheader[0].value == "page test"
    assert {m.label: m.value for m in shared.metric}["Valid"] == f"{scored['valid_rows']:,}"
    assert not [b for b in shared.button if b.label in ("Delete", "Create a read-only link")]
    links = [e.proto.url for e in shared.get("link_button")]
    assert links[0] == f"{live_api}/api/shared/{token}/predictions.csv"

    httpx.delete(f"{live_api}/api/shares/{token}")
    revoked = AppTest.from_file(APP, default_timeout=60)
    revoked.run()
    revoked.query_params["share"] = token
    revoked.switch_page("views/datasets.py").run()
    assert "no such share link" in revoked.error[0].value


def test_a_table_shows_its_kind_and_offers_explore_instead_of_scoring(live_api: str, api: httpx.Client) -> None:
    table = upload(api, side_csv("parking", 120, seed=5), filename="parking.csv", name="parking page test").json()
    assert table["kind"] == "table"
    app = _open(table["id"])
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rows"] == "120" and metrics["Columns"] == "7" and "Valid" not in metrics
    listed = app.dataframe[0].value.set_index("id")  # the ids' first 8 characters, as the Dataset box names them
    assert listed.loc[table["id"][:8], "kind"] == "table" and listed.loc[table["id"][:8], "layout"] == "–"
    assert not [b for b in app.button if b.label.startswith("Score")]  # a table cannot be scored (the API: 409)
    links = [(e.proto.label, e.proto.page) for e in app.get("page_link")]
    assert ("Explore parking page test", "explore") in links, links  # the Explore page's url_path
    (kind,) = [s for s in app.selectbox if s.label == "Kind"]
    assert kind.options[:2] == [
        "auto: an accident file is checked against the model, any other table is kept as a table",
        "table: keep it as a table to explore, whatever its columns",
    ]
