"""Datasets through the in-process app; the chunk task run here as a worker would (real-worker tests: tests/tasks)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import EndpointConnectionError
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.core.config import Settings
from backend.core.csv_stream import safe_cell
from backend.db.models import Dataset, ShareToken
from backend.main import create_app
from backend.ml.eclo.dacon import api_rows
from backend.ml.eclo.model import EcloModel
from backend.services import datasets as datasets_service
from backend.tasks.datasets import run_chunk
from backend.wiring import Resources
from tests.fixtures.datasets import dacon_file, read_results, upload
from tests.fixtures.object_store import stored_keys

pytestmark = pytest.mark.stack  # uploads are checked in a spawned process of their own (the app runs in-process)


def _score(client: TestClient, resources: Resources, dataset_id: str, chunk_rows: int = 400) -> dict:
    job = client.post(f"/api/datasets/{dataset_id}/predict", params={"chunk_rows": chunk_rows})
    assert job.status_code == 202, job.text
    for chunk in range(job.json()["chunks"]):
        run_chunk(resources, job.json()["job_id"], chunk)
    return client.get(f"/api/datasets/{dataset_id}/predictions").json()


def _left_behind(settings: Settings, resources: Resources) -> tuple[list[str], int]:
    """Dataset files the storage still holds (DATA_DIR or the object store), and dataset records."""
    files = stored_keys(settings, "datasets")
    with resources.sessions() as session:
        return files, len(session.scalars(select(Dataset)).all())


@pytest.fixture(scope="module")
def dacon_1000(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return dacon_file(tmp_path_factory.mktemp("upload"), 1000, seed=5)


def test_upload_describes_the_file_and_reports_bad_rows(
    app_client: TestClient, dacon_cp949: bytes, small_model: EcloModel
) -> None:
    response = upload(app_client, dacon_cp949, "train_2019.csv", name="Daegu 2019")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Daegu 2019" and body["filename"] == "train_2019.csv"
    assert (body["layout"], body["encoding"], body["has_outcomes"]) == ("dacon", "cp949", True)
    assert body["rows"] == 5000 and 0 < body["valid_rows"] < 5000
    frame = pd.read_csv(io.BytesIO(dacon_cp949), encoding="cp949", dtype=str, keep_default_na=False)
    invalid = sum(1 for row in api_rows(frame) if not _valid(small_model, row))
    assert body["valid_rows"] == 5000 - invalid and body["problems"] >= invalid
    assert len(body["checksum"]) == 64 and body["size_bytes"] == len(dacon_cp949)
    first = app_client.get(f"/api/datasets/{body['id']}", params={"size": 5}).json()["report"]
    second = app_client.get(f"/api/datasets/{body['id']}", params={"size": 5, "page": 2}).json()["report"]
    assert first["total"] == body["problems"] and len(first["items"]) == 5
    assert first["items"][0]["row"] < second["items"][0]["row"]
    problem = first["items"][0]
    assert problem["column"] in frame.columns and problem["value"] == frame.iloc[problem["row"] - 1][problem["column"]]
    listing = app_client.get("/api/datasets").json()
    assert [d["id"] for d in listing["items"]] == [body["id"]] and listing["total"] == 1


def _valid(model: EcloModel, row: dict | None) -> bool:
    try:
        return row is not None and model.validate(row) is None
    except ValueError:
        return False


def test_results_keep_the_file_order_and_equal_single_predictions(
    app_client: TestClient, app_resources: Resources, dacon_1000: bytes, small_model: EcloModel
) -> None:
    dataset = upload(app_client, dacon_1000).json()
    status = _score(app_client, app_resources, dataset["id"], chunk_rows=300)
    assert status["status"] == "success" and status["progress"] == {"done": dataset["valid_rows"],
                                                                     "total": dataset["valid_rows"]}  # fmt: skip
    response = app_client.get(status["results_url"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    results = read_results(response.content)
    source = pd.read_csv(io.BytesIO(dacon_1000), dtype=str, keep_default_na=False)
    assert [r["ID"] for r in results] == source["ID"].tolist()
    for result, row in zip(results, api_rows(source), strict=True):
        if result["error"]:
            assert result["predicted_eclo"] == "" and not _valid(small_model, row)
        else:
            expected = small_model.predict_one(row)
            assert float(result["predicted_eclo"]) == expected.eclo and result["risk_level"] == expected.risk_level
    assert sum(1 for r in results if not r["error"]) == dataset["valid_rows"]
    parquet = pd.read_parquet(io.BytesIO(app_client.get(f"{status['results_url']}?format=parquet").content))
    assert parquet["ID"].tolist() == source["ID"].tolist()
    scored = [float(r["predicted_eclo"]) for r in results if r["predicted_eclo"]]
    assert parquet["predicted_eclo"].dropna().tolist() == scored


def test_the_parquet_export_streams_the_csv_rows_in_row_groups(
    app_client: TestClient, app_resources: Resources, dacon_1000: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets_service, "PARQUET_GROUP_CELLS", 200 * 28)  # 200 rows of the 28 columns a group
    dataset_id = upload(app_client, dacon_1000).json()["id"]
    results_url = _score(app_client, app_resources, dataset_id, chunk_rows=300)["results_url"]
    csv_rows = list(csv.reader(io.StringIO(app_client.get(results_url).content.decode("utf-8-sig"))))
    share = app_client.post(f"/api/datasets/{dataset_id}/share").json()
    for url, name in ((results_url, dataset_id), (f"{share['url']}/predictions.csv", "shared")):
        response = app_client.get(url, params={"format": "parquet"})
        assert response.status_code == 200 and response.headers["content-type"] == "application/vnd.apache.parquet"
        assert response.headers["content-disposition"] == f'attachment; filename="{name}-predictions.parquet"'
        parquet = pq.ParquetFile(io.BytesIO(response.content))
        assert parquet.metadata.num_row_groups == 5 and parquet.metadata.num_rows == len(csv_rows) - 1 == 1000
        table = parquet.read()
        assert table.column_names == csv_rows[0]
        assert table.schema.field("predicted_eclo").type == table.schema.field("p_severe").type == pa.float64()
        assert {table.schema.field(n).type for n in csv_rows[0] if n not in ("predicted_eclo", "p_severe")} == {
            pa.large_string()
        }
        as_csv = [["" if cell is None else str(safe_cell(cell)) for cell in row.values()] for row in table.to_pylist()]
        assert as_csv == csv_rows[1:]  # the same rows in the same order, cell for cell


def test_outcome_columns_give_rmsle_beside_a_constant(
    app_client: TestClient, app_resources: Resources, dacon_1000: bytes
) -> None:
    dataset = upload(app_client, dacon_1000).json()
    evaluation = _score(app_client, app_resources, dataset["id"])["evaluation"]
    results = read_results(app_client.get(f"/api/datasets/{dataset['id']}/predictions.csv").content)
    scored = [r for r in results if r["predicted_eclo"]]
    predicted = pd.Series([float(r["predicted_eclo"]) for r in scored])
    actual = pd.Series([float(r["ECLO"]) for r in scored])
    rmsle = float(((predicted.map(lambda v: __import__("math").log1p(v)) - actual.map(
        lambda v: __import__("math").log1p(v))) ** 2).mean() ** 0.5)  # fmt: skip
    assert evaluation["rows"] == len(scored) and evaluation["rmsle"] == pytest.approx(rmsle, abs=1e-5)
    assert evaluation["constant_rmsle"] > 0 and evaluation["file_mean_rmsle"] <= evaluation["constant_rmsle"]


def test_a_file_without_outcomes_has_no_evaluation(
    app_client: TestClient, app_resources: Resources, classic_row: dict
) -> None:
    text = ",".join(classic_row) + "\n" + ",".join(str(v) for v in classic_row.values()) + "\n"
    dataset = upload(app_client, text.encode()).json()
    assert (dataset["layout"], dataset["has_outcomes"], dataset["valid_rows"]) == ("api", False, 1)
    status = _score(app_client, app_resources, dataset["id"])
    assert status["status"] == "success" and status["evaluation"] is None


@pytest.mark.parametrize(
    ("raw", "fields", "message"),
    [
        (b"\x00\x01\x02\x03junk\xff" * 100, {}, "a binary file"),
        (b"", {}, "the file is empty"),
        ("ID,시간,날씨\n1,2,3\n".encode(), {"kind": "eclo"}, "no header naming the columns"),
        ("A1,2021-03-02 14,화요일,맑음,중구,교차로,건조,차대차\n".encode(), {"kind": "eclo"},
         "no header naming the columns"),
        ("ID,시간,날씨\n1,2,3\n".encode(), {"kind": "nope"}, "kind must be one of auto, table, eclo"),
        ("ID,사고일시,요일,기상상태,시군구,도로형태,노면상태,사고유형\n".encode("cp949"), {}, "no data rows"),
        ("ID,사고일시,요일,기상상태,시군구,도로형태,노면상태,사고유형\nA,어제,월요일,맑음,중구,교차로,건조,차대차\n".encode(),
         {}, "none of the 1 rows is valid"),
        ("ID,사고일시,요일,기상상태,시군구,도로형태,노면상태,사고유형\n".encode("cp949"), {"encoding": "utf-8"},
         "declared utf-8 but is not UTF-8"),
    ],
)  # fmt: skip
def test_unusable_uploads_are_refused_and_leave_nothing(
    app_client: TestClient, app_settings: Settings, app_resources: Resources, raw: bytes, fields: dict, message: str
) -> None:
    response = upload(app_client, raw, **fields)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    assert _left_behind(app_settings, app_resources) == ([], 0)


def test_requests_that_are_no_upload_are_refused(app_client: TestClient) -> None:
    assert app_client.post("/api/datasets", json={"file": "a,b"}).status_code == 422
    response = app_client.post("/api/datasets", files={"data": ("a.csv", b"a,b\n", "text/csv")})
    assert response.status_code == 422 and "no part named 'file'" in response.json()["error"]["message"]


def test_a_file_over_the_limit_is_refused_as_it_streams(
    app_settings: Settings, dacon_1000: bytes, tmp_path: Path
) -> None:
    settings = app_settings.model_copy(update={"dataset_max_bytes": 50_000})
    with TestClient(create_app(settings)) as client:
        response = upload(client, dacon_1000)
        resources = client.app.state.resources  # type: ignore[attr-defined]
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
        assert response.json()["error"]["details"] == [{"field": "file", "max_bytes": 50_000}]
        assert _left_behind(settings, resources) == ([], 0)


def test_a_stream_without_a_length_is_cut_at_the_limit(app_settings: Settings) -> None:
    settings = app_settings.model_copy(update={"dataset_max_bytes": 50_000})

    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it by
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="endless.csv"\r\n\r\n'
        for _ in range(1000):
            yield b"x" * 10_000

    with TestClient(create_app(settings)) as client:
        headers = {"Content-Type": "multipart/form-data; boundary=b"}
        response = client.post("/api/datasets", content=body(), headers=headers)
        resources = client.app.state.resources  # type: ignore[attr-defined]
        assert response.status_code == 413 and "larger than the limit of 50000 bytes" in response.text
        assert _left_behind(settings, resources) == ([], 0)


def test_one_job_at_a_time_and_cancellation_skips_the_remaining_chunks(
    app_client: TestClient, app_resources: Resources, dacon_1000: bytes
) -> None:
    dataset_id = upload(app_client, dacon_1000).json()["id"]
    job = app_client.post(f"/api/datasets/{dataset_id}/predict", params={"chunk_rows": 100}).json()
    again = app_client.post(f"/api/datasets/{dataset_id}/predict")
    assert again.status_code == 409 and again.json()["error"]["details"] == [{"job_id": job["job_id"]}]
    run_chunk(app_resources, job["job_id"], 0)
    run_chunk(app_resources, job["job_id"], 0)  # a redelivered chunk is counted once
    cancelled = app_client.delete(f"/api/datasets/{dataset_id}/predictions").json()
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["done"] == 100
    assert run_chunk(app_resources, job["job_id"], 1)["status"] == "skipped"
    after = app_client.get(f"/api/datasets/{dataset_id}/predictions").json()
    assert after["progress"]["done"] == 100 and after["results_url"] is None
    assert app_client.get(f"/api/datasets/{dataset_id}/predictions.csv").status_code == 409
    assert app_client.delete(f"/api/datasets/{dataset_id}/predictions").status_code == 409
    assert app_client.post(f"/api/datasets/{dataset_id}/predict").status_code == 202  # a new job may start


def test_share_links_expire_are_revocable_and_stored_hashed(
    app_client: TestClient, app_resources: Resources, dacon_1000: bytes
) -> None:
    dataset_id = upload(app_client, dacon_1000).json()["id"]
    _score(app_client, app_resources, dataset_id)
    service = app_client.app.state.services.datasets  # type: ignore[attr-defined]
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    service.clock = lambda: now
    share = app_client.post(f"/api/datasets/{dataset_id}/share").json()
    assert len(share["token"]) >= 43 and share["expires_at"].startswith("2026-12-08T12:00:00")
    shared = app_client.get(share["url"], params={"size": 3})
    assert shared.status_code == 200 and shared.json()["dataset"]["id"] == dataset_id
    assert len(shared.json()["dataset"]["report"]["items"]) == 3
    csv_via_link = app_client.get(shared.json()["predictions_url"])
    assert csv_via_link.content == app_client.get(f"/api/datasets/{dataset_id}/predictions.csv").content
    with app_resources.sessions() as session:
        stored = session.scalars(select(ShareToken.token_hash)).all()
    assert share["token"] not in stored and len(stored) == 1
    service.clock = lambda: now + timedelta(days=7, seconds=1)
    expired = app_client.get(share["url"])
    assert expired.status_code == 410 and "expired" in expired.json()["error"]["message"]
    service.clock = lambda: now + timedelta(days=1)
    short = app_client.post(f"/api/datasets/{dataset_id}/share", params={"days": 0.5}).json()
    assert app_client.get(short["url"]).status_code == 200
    assert app_client.delete(f"/api/shares/{short['token']}").status_code == 204
    assert app_client.get(short["url"]).status_code == 404
    assert app_client.get(f"{short['url']}/predictions.csv").status_code == 404
    assert app_client.delete(f"/api/shares/{short['token']}").status_code == 404
    assert app_client.get("/api/shared/not-a-token").status_code == 404
    assert app_client.get("/api/shared/" + "x" * 101).status_code == 422


def test_delete_removes_the_file_its_results_and_links(
    app_client: TestClient, app_settings: Settings, app_resources: Resources, dacon_1000: bytes
) -> None:
    dataset_id = upload(app_client, dacon_1000).json()["id"]
    _score(app_client, app_resources, dataset_id)
    share = app_client.post(f"/api/datasets/{dataset_id}/share").json()
    assert any(key.startswith(f"datasets/{dataset_id}/jobs/") for key in stored_keys(app_settings, "datasets"))
    assert app_client.delete(f"/api/datasets/{dataset_id}").status_code == 204
    assert _left_behind(app_settings, app_resources) == ([], 0)
    assert app_client.get(share["url"]).status_code == 404
    assert app_client.get(f"/api/datasets/{dataset_id}").status_code == 404
    assert app_client.delete(f"/api/datasets/{dataset_id}").status_code == 404


def test_unknown_datasets_and_bad_parameters(app_client: TestClient) -> None:
    assert app_client.get("/api/datasets/" + "0" * 32).status_code == 404
    assert app_client.get("/api/datasets/../../etc").status_code == 404
    assert app_client.post("/api/datasets/" + "0" * 32 + "/predict").status_code == 404
    assert app_client.get("/api/datasets", params={"page": 99999999999999999999}).status_code == 422
    body = app_client.get("/api/datasets", params={"size": 0}).json()
    assert body["error"]["details"][0]["field"] == "size"


def test_deleting_a_dataset_cancels_its_running_job(
    app_client: TestClient, app_settings: Settings, app_resources: Resources, dacon_1000: bytes
) -> None:
    dataset_id = upload(app_client, dacon_1000).json()["id"]
    job = app_client.post(f"/api/datasets/{dataset_id}/predict", params={"chunk_rows": 100}).json()
    run_chunk(app_resources, job["job_id"], 0)
    assert app_client.delete(f"/api/datasets/{dataset_id}").status_code == 204
    assert app_resources.dataset_jobs.get(job["job_id"]).status == "cancelled"  # type: ignore[union-attr]
    assert run_chunk(app_resources, job["job_id"], 1)["status"] == "skipped"
    assert _left_behind(app_settings, app_resources) == ([], 0)


def test_the_file_parts_declared_charset_is_honoured(app_client: TestClient) -> None:
    raw = "ID,사고일시,요일,기상상태,시군구,도로형태,노면상태,사고유형\n".encode("cp949")
    response = app_client.post("/api/datasets", files={"file": ("a.csv", raw, "text/csv; charset=utf-8")})
    assert response.status_code == 422 and "declared utf-8 but is not UTF-8" in response.json()["error"]["message"]


def test_korean_file_names_are_kept_and_control_characters_refused(app_client: TestClient, tmp_path: Path) -> None:
    raw = dacon_file(tmp_path, 30)
    korean = upload(app_client, raw, filename="사고 데이터.csv")
    assert korean.status_code == 201, korean.text
    assert korean.json()["filename"] == "사고 데이터.csv" and korean.json()["name"] == "사고 데이터.csv"
    boundary = "rfc5987"

    def posted(disposition: bytes) -> httpx.Response:
        body = (f"--{boundary}\r\n".encode() + b"Content-Disposition: form-data; name=\"file\"; " + disposition
                + b"\r\nContent-Type: text/csv\r\n\r\n" + raw + f"\r\n--{boundary}--\r\n".encode())  # fmt: skip
        return app_client.post("/api/datasets", content=body,
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip

    extended = posted(b"filename=\"x.csv\"; filename*=UTF-8''%EC%82%AC%EA%B3%A0.csv")
    assert extended.status_code == 201, extended.text
    assert extended.json()["filename"] == "사고.csv"
    nul_name = posted(b'filename="a\x00b.csv"')
    assert nul_name.status_code == 422 and nul_name.json()["error"]["details"] == [{"field": "filename"}]
    nul_field = upload(app_client, raw, name="x\x00y")
    assert nul_field.status_code == 422 and nul_field.json()["error"]["details"] == [{"field": "name"}]


def test_an_upload_while_the_file_store_is_unreachable_is_503_naming_no_host(
    app_client: TestClient, app_resources: Resources, dacon_1000: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_: object, **__: object) -> None:
        raise EndpointConnectionError(endpoint_url="http://10.0.0.2:9000/traffic")

    monkeypatch.setattr(app_resources.dataset_files.storage, "open_write", unreachable)
    monkeypatch.setattr(app_resources.dataset_files.storage, "delete_prefix", unreachable)
    answer = upload(app_client, dacon_1000)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["details"] == [{"dependency": "storage"}] and "10.0.0.2" not in answer.text
