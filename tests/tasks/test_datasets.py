"""Datasets on real processes: uvicorn, prefork Celery workers, Redis; a worker killed mid-job, cancellation, and
an upload cut off mid-stream."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pandas as pd
import redis

from backend.dev.processes import wait_until
from backend.ml.eclo.dacon import api_rows
from backend.ml.eclo.model import EcloModel
from tests.fixtures.batches import submit, wait_for_batch
from tests.fixtures.datasets import read_results, upload, wait_for_job
from tests.fixtures.stack import Stack

SLOW = {"BATCH_THROTTLE_SECONDS": "0.2"}  # each chunk's worker pauses after it: a job of 50 chunks takes ~5 s


def _check_every_row(results: list[dict[str, str]], raw: bytes, model: EcloModel) -> int:
    """Every row of the file once, in its order; each valid row's prediction equals predict_one."""
    source = pd.read_csv(io.BytesIO(raw), encoding="cp949", dtype=str, keep_default_na=False)
    assert [r["ID"] for r in results] == source["ID"].tolist()
    scored = 0
    for result, row in zip(results, api_rows(source), strict=True):
        if result["error"]:
            assert result["predicted_eclo"] == ""
            continue
        assert row is not None and float(result["predicted_eclo"]) == model.predict_one(row).eclo
        scored += 1
    return scored


def test_a_cp949_dacon_file_is_uploaded_scored_by_the_workers_and_downloaded(
    api: httpx.Client, dacon_cp949: bytes, small_model: EcloModel
) -> None:
    dataset = upload(api, dacon_cp949, "daegu.csv").json()
    assert (dataset["encoding"], dataset["layout"], dataset["rows"]) == ("cp949", "dacon", 5000)
    job = api.post(f"/api/datasets/{dataset['id']}/predict").json()
    assert job["chunks"] == 5 and job["total"] == dataset["valid_rows"]
    status = wait_for_job(api, dataset["id"])
    assert status["status"] == "success" and status["progress"]["done"] == dataset["valid_rows"]
    assert status["evaluation"]["rows"] == dataset["valid_rows"]
    results = read_results(api.get(status["results_url"]).content)
    assert _check_every_row(results, dacon_cp949, small_model) == dataset["valid_rows"]
    invalid = [r for r in results if r["error"]]
    assert len(invalid) == 5000 - dataset["valid_rows"] and any("기상상태" in r["error"] for r in invalid)


def test_a_worker_killed_mid_job_still_gives_every_row_one_answer(
    own_stack: Stack, dacon_cp949: bytes, small_model: EcloModel
) -> None:
    with httpx.Client(base_url=own_stack.start_api(), timeout=30) as api:
        worker = own_stack.start_worker("worker-a", **SLOW)
        dataset = upload(api, dacon_cp949).json()
        job = api.post(f"/api/datasets/{dataset['id']}/predict", params={"chunk_rows": 100}).json()
        wait_for_job(api, dataset["id"], done=1000)
        own_stack.kill(worker)
        assert api.get(f"/api/datasets/{dataset['id']}/predictions").json()["status"] == "processing"
        own_stack.start_worker("worker-b", **SLOW)
        status = wait_for_job(api, dataset["id"], timeout=90)
        assert status["status"] == "success" and status["progress"]["done"] == dataset["valid_rows"]
        results = read_results(api.get(status["results_url"]).content)
    assert _check_every_row(results, dacon_cp949, small_model) == dataset["valid_rows"]
    client = redis.Redis.from_url(own_stack.env["REDIS_URL"])
    prefix = own_stack.env["KEY_PREFIX"]
    deliveries = {int(v) for v in client.hvals(f"{prefix}dsjob:{job['job_id']}:deliveries")}
    assert 2 in deliveries  # the chunks the killed worker held came back and were scored once
    assert int(client.hget(f"{prefix}dsjob:{job['job_id']}", "chunks_done")) == job["chunks"]


def test_cancellation_stops_the_remaining_chunks(own_stack: Stack, dacon_cp949: bytes) -> None:
    with httpx.Client(base_url=own_stack.start_api(), timeout=30) as api:
        own_stack.start_worker("worker", **SLOW)
        dataset = upload(api, dacon_cp949).json()
        api.post(f"/api/datasets/{dataset['id']}/predict", params={"chunk_rows": 100})
        wait_for_job(api, dataset["id"], done=500)
        cancelled = api.delete(f"/api/datasets/{dataset['id']}/predictions")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        time.sleep(2)  # chunks already running finish; the others are skipped
        settled = wait_for_job(api, dataset["id"])["progress"]["done"]
        time.sleep(1.5)
        after = api.get(f"/api/datasets/{dataset['id']}/predictions").json()
    assert after["status"] == "cancelled" and after["progress"]["done"] == settled < dataset["valid_rows"] - 1000


def test_a_batch_does_not_wait_behind_a_whole_file(own_stack: Stack, dacon_cp949: bytes, csv_rows: list[dict]) -> None:
    """Dataset chunks have a queue of their own: a 100-row batch sent while a file's 100 chunks wait is taken by
    the next free worker process, not after every chunk (one queue: ~5 s here)."""
    with httpx.Client(base_url=own_stack.start_api(), timeout=30) as api:
        own_stack.start_worker("worker", BATCH_THROTTLE_SECONDS="0.1")
        dataset = upload(api, dacon_cp949).json()
        api.post(f"/api/datasets/{dataset['id']}/predict", params={"chunk_rows": 50})
        wait_for_job(api, dataset["id"], done=200)
        started = time.perf_counter()
        result = wait_for_batch(api, submit(api, csv_rows[:100])["batch_id"], timeout=30)
        elapsed = time.perf_counter() - started
        job = api.get(f"/api/datasets/{dataset['id']}/predictions").json()
    assert result["status"] == "success" and len(result["results"]) == 100
    assert elapsed < 2.0, f"the batch took {elapsed:.1f} s behind the file's chunks"
    assert job["status"] == "processing", "the file was scored before the batch: nothing was measured"


def test_an_upload_cut_off_mid_stream_leaves_nothing(stack: Stack, api: httpx.Client) -> None:
    before = api.get("/api/datasets").json()["total"]
    data = Path(stack.env["DATA_DIR"]) / "datasets"
    kept = _files(data)
    url = urlparse(stack.env["API_URL"])
    boundary = "cutoff"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nID,사고일시,요일,기상상태,시군구,도로형태,노면상태,사고유형\r\n"
    ).encode()
    row = "A,2021-03-02 14,화요일,맑음,중구,교차로,건조,차대차\r\n".encode() * 1000
    with socket.create_connection((url.hostname, url.port)) as conn:
        conn.sendall(
            f"POST /api/datasets HTTP/1.1\r\nHost: {url.netloc}\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
        )
        for piece in [head] + [row] * 200:  # ~11 MB of a body that never ends
            conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    assert wait_until(lambda: _files(data) == kept, timeout=10), _files(data) - kept
    assert api.get("/api/datasets").json()["total"] == before


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_an_announced_2_gb_body_is_refused_before_it_is_read(stack: Stack) -> None:
    url = urlparse(stack.env["API_URL"])
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(
            f"POST /api/datasets HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {2 << 30}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n".encode()
            + b'--b\r\nContent-Disposition: form-data; name="file"; filename="huge.csv"\r\n\r\n'
        )
        answer = b""
        while b"too_large" not in answer and (chunk := conn.recv(65536)):
            answer += chunk
    answer = answer.decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.1 413") and '"code":"too_large"' in answer, answer
