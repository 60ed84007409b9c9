"""`make run`'s launcher: starts Redis when none answers, the API, a worker and Flower; Ctrl-C stops them all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.dev.launcher import RestartBudget
from backend.dev.processes import PROJECT_ROOT, free_port, redis_answers, wait_until
from tests.fixtures.batches import submit, wait_for_batch

pytestmark = pytest.mark.stack


def test_embedded_stack_starts_serves_and_stops(small_model_root: Path, tmp_path: Path, csv_rows: list[dict]) -> None:
    api_port, flower_port, redis_port, streamlit_port = free_port(), free_port(), free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MODEL_DIR": str(small_model_root), "DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url, "API_PORT": str(api_port), "FLOWER_PORT": str(flower_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'traffic.db'}",
        "STREAMLIT_PORT": str(streamlit_port),
    }  # fmt: skip
    output = tmp_path / "launcher.out"
    with output.open("wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "backend.dev.launcher"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until(lambda: "stack is up" in output.read_text(), timeout=90), output.read_text()
        text = output.read_text()
        assert f"http://127.0.0.1:{api_port}" in text and f"http://127.0.0.1:{flower_port}" in text
        assert "started by make run" in text and "ECLO RMSLE" in text and "severe outcome AUC" in text
        key = re.search(r"^API key: (\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
        dashboard_key = (tmp_path / "keys" / "dashboard.key").read_text().strip()
        assert (tmp_path / "keys" / "user.key").read_text().strip() == key
        assert (tmp_path / "keys" / "user.key").stat().st_mode & 0o777 == 0o600
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"http://127.0.0.1:{api_port}/api/predictions", timeout=10).status_code == 401
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=10) as api:
            assert wait_for_batch(api, submit(api, csv_rows[:10])["batch_id"], timeout=60)["status"] == "success"
            assert api.get("/api/predictions").status_code == 200
            assert api.get("/api/keys/me").json()["scopes"] == ["predict", "read", "admin"]
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api:
            me = api.get("/api/keys/me", headers={"Authorization": f"Bearer {dashboard_key}"}).json()
            assert me["scopes"] == ["predict", "read"]  # the dashboard's own key: no admin
        worker = _worker_pid(tmp_path)
        os.killpg(worker, signal.SIGKILL)
        assert wait_until(lambda: "worker exited with -9; restarting it" in output.read_text(), timeout=15)
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=10) as api:
            assert wait_for_batch(api, submit(api, csv_rows[10:20])["batch_id"], timeout=60)["status"] == "success"
        flower_user, flower_password = re.search(r"\(basic auth (\S+)\)", text).group(1).split(":", 1)  # type: ignore[union-attr]
        flower = f"http://127.0.0.1:{flower_port}/"
        assert wait_until(lambda: _answers(flower, auth=(flower_user, flower_password)), timeout=30)
        assert httpx.get(flower, timeout=5).status_code == 401
        assert wait_until(lambda: _answers(f"http://127.0.0.1:{streamlit_port}/_stcore/health"), timeout=60)
        assert f"http://127.0.0.1:{streamlit_port}" in text
        foreign = httpx.get(f"http://127.0.0.1:{streamlit_port}/", headers={"Host": "evil.example"}, timeout=5)
        assert foreign.status_code == 403  # frontend/dashboard.py's Host allow-list (tests/frontend/test_hosts.py)
    finally:
        launcher.send_signal(signal.SIGINT)
        launcher.wait(30)
    assert "stopped" in output.read_text()
    time.sleep(0.5)
    assert not redis_answers(redis_url)
    assert not _answers(f"http://127.0.0.1:{api_port}/health/live")


def test_a_first_run_shows_a_live_network_from_the_demo_feed(full_model_root: Path, tmp_path: Path) -> None:
    """A fresh database: the demo feed fills the last hour at once, so every sensor has a level and a forecast."""
    api_port = free_port()
    env = {
        **os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MODEL_DIR": str(full_model_root), "DATA_DIR": str(tmp_path),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "API_PORT": str(api_port), "FLOWER_PORT": str(free_port()),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'traffic.db'}", "STREAMLIT_PORT": str(free_port()),
    }  # fmt: skip
    env.pop("DEMO_FEED", None)
    output = tmp_path / "launcher.out"
    with output.open("wb") as out:
        launcher = subprocess.Popen([sys.executable, "-m", "backend.dev.launcher"], cwd=PROJECT_ROOT, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert wait_until(lambda: "stack is up" in output.read_text(), timeout=90), output.read_text()
        text = output.read_text()
        assert re.search(r"^demo feed  on: the database holds no readings .*DEMO_FEED=off", text, re.M), text
        key = re.search(r"^API key: (\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"},
                          timeout=10) as api:  # fmt: skip

            def every_sensor_fresh() -> bool:
                sensors = api.get("/api/traffic/current").json()
                return bool(sensors) and all((s["latest"] or {}).get("age_seconds", 1e9) < 300 for s in sensors)

            assert wait_until(every_sensor_fresh, timeout=60, interval=1), api.get("/api/traffic/current").text
            network = api.get("/api/traffic/forecast").json()
            assert network["forecasts"] and not network["unavailable"]
            assert "demo_feed" in api.get("/health").json()["components"]
    finally:
        launcher.send_signal(signal.SIGINT)
        launcher.wait(30)


def _worker_pid(data_dir: Path) -> int:
    """The launcher's worker: the celery process whose log is in this stack's data folder."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"worker" in cmdline and b"embedded@%h" in cmdline and os.getsid(int(proc.name)) == int(proc.name):
                log = os.readlink(proc / "fd" / "1")
                if log.startswith(str(data_dir)):
                    return int(proc.name)
        except OSError:
            continue
    raise AssertionError("no worker process found")


def _answers(url: str, auth: tuple[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, timeout=1, auth=auth).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_restart_budget_counts_deaths_within_its_window() -> None:
    budget = RestartBudget(limit=5, window_seconds=300)
    assert all(budget.allow("worker", t) for t in (0, 10, 20, 30, 40))
    assert not budget.allow("worker", 50)  # the 6th death within 5 minutes stops the stack
    assert budget.allow("api", 50)  # counted per process
    spread = RestartBudget(limit=5, window_seconds=300)
    assert all(spread.allow("worker", hour * 3600.0) for hour in range(100))  # a death an hour, for ever


def test_an_older_all_scope_dashboard_key_is_replaced_by_a_predict_read_one(tmp_path: Path) -> None:
    """`python -m backend.dev.launcher --dashboard-key FILE` (compose's api service; `make run` does the same):
    `backend.cli.keys ensure` would keep the active key of an older version, which held every scope."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "DATA_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'traffic.db'}"}  # fmt: skip
    key_file = tmp_path / "keys" / "dashboard.key"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    run("backend.cli.keys", "ensure", "dashboard", "--scopes", "predict,read,admin", "--file", str(key_file))
    old = key_file.read_text().strip()
    assert "created the dashboard's key" in run("backend.dev.launcher", "--dashboard-key", str(key_file)).stderr
    new = key_file.read_text().strip()
    assert new != old and key_file.stat().st_mode & 0o777 == 0o600
    assert "kept the dashboard's key" in run("backend.dev.launcher", "--dashboard-key", str(key_file)).stderr
    assert key_file.read_text().strip() == new
    listed = {line.split()[0]: line for line in run("backend.cli.keys", "list").stdout.splitlines()}
    old_id, new_id = old.split("_")[1], new.split("_")[1]
    assert "predict,read,admin" in listed[old_id] and "revoked" in listed[old_id]
    assert "predict,read " in listed[new_id] and listed[new_id].endswith("active")
