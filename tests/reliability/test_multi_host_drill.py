"""The multi-host drill (`make drill`): a services host (PostgreSQL, Redis and the object store), an API host and
worker hosts, each a network namespace with its own address and its own DATA_DIR, started with the compose file's
commands. Under load (batches submitted all along, a 100,000-row dataset scored) one worker host's link is cut for
20 s mid-job, then the other worker host is killed outright and a fresh one started. Afterwards every batch is
final and correct, every dataset row answered once and equal to a single prediction, the chunks were done by more
than one host, no record is lost, and the time each recovery took is printed.

The object store is moto's S3 server (the stand-in for a cloud store: no S3-compatible server installs from the
package registries here). DRILL_ROWS and DRILL_CUT_SECONDS shorten the drill for a try-out.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pandas as pd
import pytest
from sqlalchemy import create_engine, func, select

from backend.db.models import BatchJob, Prediction
from backend.dev.processes import PROJECT_ROOT, wait_until
from backend.ml.eclo.dacon import api_rows
from backend.ml.eclo.model import EcloModel
from tests.fixtures.datasets import dacon_file, read_results, upload
from tests.fixtures.hosts import Host, HostProcesses, Network, enter, entered, namespaces_unavailable, network

pytestmark = pytest.mark.drill

DATASET_ROWS = int(os.environ.get("DRILL_ROWS", "100000"))
CUT_SECONDS = float(os.environ.get("DRILL_CUT_SECONDS", "20"))
CHUNK_ROWS = max(100, DATASET_ROWS // 100)
BUCKET = "drill"
REDIS_PASSWORD = "drill-redis-password"  # Redis on a network address: a password, as in production
S3 = {"S3_REGION": "us-east-1", "S3_ACCESS_KEY_ID": "drill-access", "S3_SECRET_ACCESS_KEY": "drill-secret-key"}
# A worker's log message for a finished chunk (its log is JSON lines with a "ts"): "Task
# datasets.score_chunk[<id>] succeeded in 1.2s: {'job_id': ..., 'chunk': 7, 'status': 'scored', ...}"
SCORED = re.compile(r"^Task datasets\.score_chunk\[[^\]]+\] succeeded in [\d.]+s: \{'job_id': '[^']+', "
                    r"'chunk': (?P<chunk>\d+), 'status': 'scored'")  # fmt: skip


def _binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"multi-host drill not run: PostgreSQL's {name} is not installed")
    return found[-1]


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _scored_chunks(log: Path) -> list[tuple[float, int]]:
    """(POSIX time, chunk) of each chunk a worker host's log says it scored."""
    found = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if "score_chunk" in line and line.startswith("{"):
            entry = json.loads(line)
            scored = SCORED.match(entry.get("message", ""))
            if scored:
                at = datetime.strptime(entry["ts"], "%Y-%m-%d %H:%M:%S,%f")  # local time, as logging writes it
                found.append((at.timestamp(), int(scored["chunk"])))
    return found


class Drill:
    """The hosts, their processes and settings."""

    def __init__(self, net: Network, root: Path) -> None:
        self.net, self.root = net, root
        self.services = net.add_host("services")
        self.api_host = net.add_host("api")
        self.client = net.add_host("client")
        self.processes = HostProcesses(root / "logs", {k: v for k, v in os.environ.items()
                                                       if not k.startswith(("TEST_", "PYTEST_"))})  # fmt: skip
        address = self.services.address
        self.env = {
            "PYTHONPATH": str(PROJECT_ROOT),
            "ENVIRONMENT": "local",
            "DATABASE_URL": f"postgresql+psycopg2://postgres@{address}:5432/postgres",
            "REDIS_URL": f"redis://:{REDIS_PASSWORD}@{address}:6379/0",
            "STORAGE_URL": f"s3://{BUCKET}/files",
            "S3_ENDPOINT_URL": f"http://{address}:9000",
            **S3,
            "MODEL_DIR": str(PROJECT_ROOT / "model"),
            "FEED_ENABLED": "false",
            "DEMO_FEED": "off",
            # A dead host's chunks come back 30 s after their delivery (production: 300 s); a chunk handed out
            # twice (the cut host's) is answered once all the same (put-if-absent).
            "CELERY_VISIBILITY_TIMEOUT_SECONDS": "30",
            "BATCH_TIME_LIMIT_SECONDS": "25",
            "BATCH_SOFT_TIME_LIMIT_SECONDS": "20",
            "CELERY_UNACKED_RESTORE_INTERVAL_SECONDS": "2",
            "BATCH_THROTTLE_SECONDS": "1.0",  # each chunk's worker pauses after it: the job spans the drill
            "RATE_LIMIT_ENABLED": "false",
        }

    def host_env(self, host: Host) -> dict[str, str]:
        """Each host has a disk of its own: its DATA_DIR and its temporary folder (the storage's caches) are
        nobody else's."""
        temporary = self.root / host.name / "tmp"
        temporary.mkdir(parents=True, exist_ok=True)
        return {**self.env, "DATA_DIR": str(self.root / host.name / "var"), "TMPDIR": str(temporary)}

    def start_services(self) -> None:
        pg = self.postgres_dir = Path(tempfile.mkdtemp(prefix="drillpg-"))  # postgres must reach it
        shutil.chown(pg, "postgres", "postgres")
        data = pg / "data"
        command = [_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]
        initdb = self.processes.start(self.services, "initdb", command, user="postgres")
        assert initdb.wait(120) == 0, f"initdb failed; see {self.processes.log_file('services-initdb')}"
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.net.subnet}.0/24 trust\n")
        address = self.services.address
        self.processes.start(self.services, "postgres", [_binary("postgres"), "-D", str(data), "-p", "5432",
                             "-c", f"listen_addresses={address}", "-c", f"unix_socket_directories={pg}",
                             "-c", "fsync=off", "-c", "max_connections=200"], user="postgres")  # fmt: skip
        redis = ["redis-server", "--bind", address, "--port", "6379", "--save", "", "--appendonly", "no",
                 "--requirepass", REDIS_PASSWORD]  # fmt: skip
        self.processes.start(self.services, "redis", redis)
        self.processes.start(self.services, "object-store", [sys.executable, "-m", "moto.server", "-H", address,
                                                             "-p", "9000"])  # fmt: skip
        with entered(self.client) as run:
            for port in (5432, 6379, 9000):
                assert run(lambda p=port: wait_until(lambda: _answers(address, p), 60)), f"{address}:{port} is down"
            s3 = boto3.client("s3", endpoint_url=self.env["S3_ENDPOINT_URL"], region_name=S3["S3_REGION"],
                              aws_access_key_id=S3["S3_ACCESS_KEY_ID"],
                              aws_secret_access_key=S3["S3_SECRET_ACCESS_KEY"])  # fmt: skip
            run(lambda: s3.create_bucket(Bucket=BUCKET))

    def start_api(self) -> tuple[str, str]:
        """Migrations, an admin key, the API and beat on the API host; returns the API's URL and the key."""
        env = self.host_env(self.api_host)
        host = self.api_host
        migrated = self.processes.start(host, "migrate", [sys.executable, "-m", "alembic", "upgrade", "head"], **env)
        assert migrated.wait(120) == 0, f"migrations failed; see {self.processes.log_file('api-migrate')}"
        made = self.processes.start(host, "key", [sys.executable, "-m", "backend.cli.keys", "create", "drill",
                                                  "--scopes", "admin,predict,read"], **env)  # fmt: skip
        assert made.wait(60) == 0
        key = re.search(r"tpk_[A-Za-z0-9_-]+", self.processes.log_file("api-key").read_text())
        assert key is not None, self.processes.log_file("api-key").read_text()
        self.processes.start(host, "server", [sys.executable, "-m", "backend.api.server", "--host", host.address,
                                              "--port", "8000"], **env)  # fmt: skip
        self.processes.start(
            host, "beat", [sys.executable, "-m", "celery", "-A", "backend.tasks", "beat", "--loglevel", "INFO"], **env
        )
        url = f"http://{host.address}:8000"
        with entered(self.client) as run:
            assert run(lambda: wait_until(lambda: _answers(host.address, 8000), 60)), "the API did not start"
        return url, key.group(0)

    def start_worker_host(self, name: str) -> Host:
        host = self.net.add_host(name)
        command = [sys.executable, "-m", "celery", "-A", "backend.tasks", "worker", "--loglevel", "INFO",
                   "-X", "batches-training", "-c", "2", "-n", f"{name}@%h"]  # fmt: skip
        self.processes.start(host, "worker", command, **self.host_env(host))
        log = self.worker_log(host)
        assert wait_until(lambda: "ready." in (log.read_text(errors="replace") if log.exists() else ""), 90), (
            f"{name} did not start; see {log}"
        )
        return host

    def worker_log(self, host: Host) -> Path:
        return self.processes.log_file(f"{host.name}-worker")

    def files_under_data_dirs(self) -> list[str]:
        """What any host wrote under its DATA_DIR other than logs, the spill file and beat's schedule."""
        found = []
        for path in self.root.glob("*/var/**/*"):
            relative = path.relative_to(self.root)
            if path.is_file() and not (relative.parts[2:3] in (("spill",), ("logs",))
                                       or path.name.startswith("celerybeat-schedule")):  # fmt: skip
                found.append(str(relative))
        return found


def _database_counts(url: str, batch_ids: list[str]) -> tuple[int, dict[str, int]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            predictions = connection.scalar(select(func.count()).select_from(Prediction)) or 0
            statuses = dict(connection.execute(select(BatchJob.status, func.count()).where(
                BatchJob.id.in_(batch_ids)).group_by(BatchJob.status)).all())  # fmt: skip
    finally:
        engine.dispose()
    return predictions, statuses


@pytest.mark.timeout(1200)
def test_workers_on_many_hosts_survive_a_cut_link_and_a_dead_host(tmp_path: Path, csv_rows: list[dict]) -> None:
    unavailable = namespaces_unavailable()
    if unavailable is not None:
        pytest.skip(f"multi-host drill not run: {unavailable}")
    root = Path(tempfile.mkdtemp(prefix="drill-"))
    raw = dacon_file(tmp_path, DATASET_ROWS, seed=11)
    model = EcloModel.load(PROJECT_ROOT / "model" / "eclo")
    with network() as net:
        drill = Drill(net, root)
        try:
            drill.start_services()
            url, key = drill.start_api()
            worker1, worker2 = drill.start_worker_host("worker1"), drill.start_worker_host("worker2")
            report = _run_load(drill, url, key, worker1, worker2, csv_rows, raw)
            with entered(drill.client) as run:
                predictions, statuses = run(lambda: _database_counts(drill.env["DATABASE_URL"], report["batch_ids"]))
        finally:
            drill.processes.stop_all()
            shutil.rmtree(getattr(drill, "postgres_dir", root / "none"), ignore_errors=True)
    leftovers = drill.files_under_data_dirs()
    lost = report["singles"] - predictions + len(report["batch_ids"]) - sum(statuses.values())
    source = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    results = report["results"]
    ids = [r["ID"] for r in results]
    by_id = dict(zip(source["ID"], api_rows(source), strict=True))
    answered = [r for r in results if not r["error"]]
    equal = sum(float(r["predicted_eclo"]) == model.predict_one(by_id[r["ID"]]).eclo for r in answered)
    per_host = {name: len({c for _, c in _scored_chunks(drill.worker_log(h))})
                for name, h in report["workers"].items()}  # fmt: skip
    lines = [
        f"batches: submitted {len(report['batch_ids'])}, final {report['batches_final']}, "
        f"correct {report['batches_correct']} (refused at the door and not counted: {report['batches_refused']})",
        f"dataset rows: {DATASET_ROWS}, valid {report['valid_rows']}, answered {len(answered)}, answered once "
        f"{len(set(ids)) == len(ids) == DATASET_ROWS}, equal to single predictions {equal}",
        "chunks per worker host (scored, by their logs): " + ", ".join(f"{n} {c}" for n, c in per_host.items()),
        f"records: single predictions answered {report['singles']}, in the database {predictions}; batches in the "
        f"database {statuses}; lost {lost}",
        f"recovery: worker1 scored again {report['cut_recovery']:.1f} s after its link came back "
        f"({CUT_SECONDS:.0f} s cut); the job final {report['kill_recovery']:.1f} s after worker2 was killed; "
        f"worker3 scored its first chunk {report['fresh_first']:.1f} s after it started",
        f"files under the hosts' DATA_DIR besides logs and the spill file: {leftovers or 'none'}",
    ]
    print("\nmulti-host drill\n" + "\n".join(f"  {line}" for line in lines))
    assert report["job_status"] == "success", report["job_status"]
    assert report["batches_final"] == report["batches_correct"] == len(report["batch_ids"]) > 0, report["unfinished"]
    assert ids == source["ID"].tolist(), "every row of the file once, in its order"
    assert len(answered) == report["valid_rows"] == equal
    assert sum(1 for c in per_host.values() if c > 0) >= 2, per_host
    assert predictions == report["singles"] and statuses == {"success": len(report["batch_ids"])}
    assert leftovers == []
    shutil.rmtree(root, ignore_errors=True)  # kept for its logs when an assertion above failed


def _run_load(
    drill: Drill, url: str, key: str, worker1: Host, worker2: Host, rows: list[dict], raw: bytes
) -> dict[str, Any]:
    """Batches all along and the dataset; the cut, the kill and the fresh host meanwhile."""
    headers = {"Authorization": f"Bearer {key}"}
    rows = list(rows)
    report: dict[str, Any] = {"workers": {"worker1": worker1, "worker2": worker2}, "batch_ids": [],
                              "batches_refused": 0}  # fmt: skip
    stop = threading.Event()
    expected: dict[int, float] = {}
    submitted: list[tuple[str, int]] = []

    def submit_batches() -> None:
        enter(drill.client.namespace)
        with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
            i = 0
            while not stop.is_set():
                start = (i * 7) % (len(rows) - 20)
                answer = api.post("/api/predict/eclo/batch", json={"items": rows[start : start + 20]})
                if answer.status_code == 202:
                    submitted.append((answer.json()["batch_id"], start))
                else:
                    report["batches_refused"] += 1
                i += 1
                stop.wait(1.0)

    with entered(drill.client, threads=2) as run, httpx.Client(base_url=url, headers=headers, timeout=60) as api:
        answers = run(lambda: [api.post("/api/predict/eclo", json=row) for row in rows])
        # The rows are the small test model's; the served model knows fewer road types: its 422s are not records.
        valid = [(row, a.json()["eclo"]) for row, a in zip(rows, answers, strict=True) if a.status_code == 200]
        assert len(valid) >= 100 and {a.status_code for a in answers} <= {200, 422}
        rows[:] = [row for row, _ in valid]
        expected.update({i: eclo for i, (_, eclo) in enumerate(valid)})
        report["singles"] = len(valid)
        dataset = run(lambda: upload(api, raw, "drill.csv")).json()
        report["valid_rows"] = dataset["valid_rows"]
        job = run(lambda: api.post(f"/api/datasets/{dataset['id']}/predict", params={"chunk_rows": CHUNK_ROWS}))
        assert job.status_code == 202, job.text
        chunks = job.json()["chunks"]
        batches = threading.Thread(target=submit_batches)
        batches.start()

        def done() -> int:
            return run(lambda: api.get(f"/api/datasets/{dataset['id']}/predictions").json())["progress"]["done"]

        assert wait_until(lambda: done() >= report["valid_rows"] * 0.1, 120, interval=0.5), "the job did not start"
        drill.net.cut(worker1)
        time.sleep(CUT_SECONDS)
        drill.net.restore(worker1)
        restored = time.time()
        assert wait_until(lambda: any(t > restored for t, _ in _scored_chunks(drill.worker_log(worker1))), 120), (
            "worker1 never scored again after its link came back"
        )
        report["cut_recovery"] = min(t for t, _ in _scored_chunks(drill.worker_log(worker1)) if t > restored) - restored
        assert done() < report["valid_rows"], "the job ended before worker2 could be killed"
        killed = time.time()
        drill.net.kill(worker2)
        fresh = drill.start_worker_host("worker3")
        fresh_started = time.time()
        report["workers"]["worker3"] = fresh

        def final() -> bool:
            body = run(lambda: api.get(f"/api/datasets/{dataset['id']}/predictions").json())
            report["job_status"] = body["status"]
            report["job"] = body
            return body["status"] in {"success", "partial", "failure", "cancelled"}

        assert wait_until(final, 600, interval=0.5), f"the job never ended: {report.get('job')}"
        report["kill_recovery"] = time.time() - killed
        first = [t for t, _ in _scored_chunks(drill.worker_log(fresh))]
        report["fresh_first"] = (min(first) - fresh_started) if first else float("nan")
        stop.set()
        batches.join()
        report["batch_ids"] = [b for b, _ in submitted]
        outcomes = {}

        def batches_final() -> bool:
            for batch_id, start in submitted:
                if batch_id not in outcomes:
                    body = run(lambda b=batch_id: api.get(f"/api/predict/batch/{b}/results").json())
                    if body.get("status") in {"success", "partial", "failure"}:
                        outcomes[batch_id] = (body, start)
            return len(outcomes) == len(submitted)

        wait_until(batches_final, 300, interval=1)
        report["batches_final"] = len(outcomes)
        report["unfinished"] = [b for b, _ in submitted if b not in outcomes]
        report["batches_correct"] = sum(
            body["status"] == "success"
            and [r["eclo"] for r in body["results"]] == [expected[start + j] for j in range(20)]
            for body, start in outcomes.values()
        )
        if report["job_status"] == "success":
            content = run(lambda: api.get(report["job"]["results_url"]).content)
            report["results"] = read_results(content)
        else:
            report["results"] = []
        report["chunks"] = chunks
    return report
