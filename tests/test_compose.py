"""docker-compose.yml cannot be run here (no Docker engine), so it is checked by reading it."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from backend.core.config import Settings
from backend.dev.launcher import DASHBOARD_SCOPES
from backend.dev.processes import PROJECT_ROOT
from backend.tasks.celery_app import training_queue
from frontend.hosts import host_allowed
from frontend.settings import DashboardSettings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
BACKEND_SETTINGS = {name.upper() for name in Settings.model_fields}
DASHBOARD_SETTINGS = {name.upper() for name in DashboardSettings.model_fields}
SETTINGS = BACKEND_SETTINGS | DASHBOARD_SETTINGS
COMPOSE_ONLY = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "STREAMLIT_PORT"}


def _env(service: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def _command(service: str) -> list[str]:
    command = SERVICES[service].get("command")
    if command is None:
        return []
    if command[:2] == ["sh", "-c"]:
        return shlex.split(command[2])
    return list(command)


def test_expected_services() -> None:
    assert set(SERVICES) == {"postgres", "redis", "api", "worker", "trainer", "beat", "feed", "demo-feed", "flower",
                             "frontend"}  # fmt: skip


def test_training_has_a_worker_of_its_own() -> None:
    """The trainer takes only the training queue and the worker every queue but it: a long training never takes a
    batch's place."""
    queue = training_queue(Settings(_env_file=None))
    assert _command("worker")[-2:] == ["-X", queue]
    assert _command("trainer")[-2:] == ["-Q", queue] and _command("trainer")[:3] == ["celery", "-A", "backend.tasks"]
    assert "appdata:/app/var" in SERVICES["trainer"]["volumes"]


def test_the_demo_feed_stays_down_when_it_is_not_needed() -> None:
    """It exits 0 when DEMO_FEED says no: restarting on success would loop."""
    assert SERVICES["demo-feed"]["restart"] == "on-failure"
    assert _command("demo-feed") == ["python", "-m", "backend.services.demo_feed"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_has_a_health_check(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"] and check["interval"] and check["retries"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dependencies_wait_for_health(service: str) -> None:
    for name, condition in (SERVICES[service].get("depends_on") or {}).items():
        assert name in SERVICES and condition == {"condition": "service_healthy"}, (service, name)


@pytest.mark.parametrize("service", ["api", "worker", "beat", "demo-feed", "flower"])
def test_backend_environment_names_only_real_settings(service: str) -> None:
    assert set(_env(service)) <= BACKEND_SETTINGS, set(_env(service)) - BACKEND_SETTINGS


def test_dashboard_environment_names_only_its_settings() -> None:
    assert set(_env("frontend")) <= DASHBOARD_SETTINGS, set(_env("frontend")) - DASHBOARD_SETTINGS


def test_env_example_documents_every_setting() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (PROJECT_ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert SETTINGS <= names, SETTINGS - names
    assert names <= SETTINGS | COMPOSE_ONLY, names - SETTINGS - COMPOSE_ONLY


def test_worker_and_api_share_the_broker_and_database() -> None:
    api, worker, flower = _env("api"), _env("worker"), _env("flower")
    broker = api.get("CELERY_BROKER_URL", api["REDIS_URL"])
    assert broker == worker.get("CELERY_BROKER_URL", worker["REDIS_URL"]) == flower["REDIS_URL"]
    assert broker.startswith("redis://redis:")
    assert api["DATABASE_URL"] == worker["DATABASE_URL"] and api["DATABASE_URL"].startswith("postgresql+psycopg2://")


def test_api_migrates_before_serving() -> None:
    command = SERVICES["api"]["command"][2]
    assert command.index("alembic upgrade head") < command.index("python -m backend.api.server")
    assert command.index("alembic upgrade head") < command.index("backend.dev.launcher --register-sensors")
    assert (PROJECT_ROOT / "alembic.ini").is_file()


def test_commands_name_things_that_exist() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    for service in ("api", "worker", "flower", "frontend"):
        target = SERVICES[service]["build"]["target"]
        assert re.search(rf"^FROM \S+ AS {target}$", dockerfile, re.M), target
    assert "python -m backend.api.server" in " ".join(_command("api"))
    assert hasattr(importlib.import_module("backend.main"), "app") and callable(
        importlib.import_module("backend.api.server").main
    )
    assert re.search(r'^CMD \["python", "-m", "backend.api.server"', dockerfile, re.M)
    for service in ("worker", "beat", "flower"):
        command = _command(service)
        assert command[:3] == ["celery", "-A", "backend.tasks"]
        assert importlib.import_module("backend.tasks").app.main == "traffic"
    assert _command("feed")[:3] == ["python", "-m", "backend.services.feed"]
    assert callable(importlib.import_module("backend.services.feed").main)
    frontend_cmd = re.search(r'^CMD \["streamlit", "run", "([^"]+)"', dockerfile, re.M)
    assert frontend_cmd and (PROJECT_ROOT / frontend_cmd.group(1)).is_file()


def test_named_volumes_for_data() -> None:
    assert {"pgdata", "redisdata", "appdata", "keys"} <= set(COMPOSE["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]


def test_api_and_worker_share_the_datasets_folder() -> None:
    """Uploads are written by the API and read by the workers: one volume at DATA_DIR for both."""
    for service in ("api", "worker"):
        data_dir = _env(service)["DATA_DIR"]
        assert f"appdata:{data_dir}" in SERVICES[service]["volumes"], service


def test_images_run_as_non_root() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    for stage in stages:
        if " AS base" in stage.splitlines()[0]:
            continue
        assert "\nUSER app" in stage, stage.splitlines()[0]


def test_dependency_layer_comes_before_the_code() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    backend = dockerfile.split("AS backend", 1)[1].split("AS frontend", 1)[0]
    assert backend.index("COPY pyproject.toml") < backend.index("pip install -r") < backend.index("COPY backend")
    assert Path(PROJECT_ROOT / ".dockerignore").read_text().count(".venv") == 1


def test_the_dashboard_image_copies_no_backend_code() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    frontend = dockerfile.split("AS frontend", 1)[1]
    copies = [line for line in frontend.splitlines() if line.startswith("COPY")]
    assert "COPY frontend ./frontend" in copies and not any("backend" in line for line in copies)


@pytest.mark.parametrize("service", ["flower", "frontend"])
def test_consoles_are_published_on_the_loopback_only(service: str) -> None:
    """Flower (behind basic auth) and the dashboard (acting with its own API key) are not on every interface: an
    operator reaches them through a tunnel or a proxy."""
    assert all(str(port).startswith("127.0.0.1:") for port in SERVICES[service]["ports"])


def test_the_dashboard_reads_the_key_the_api_makes() -> None:
    """With the scopes predict and read only (backend.dev.launcher --dashboard-key replaces a kept key holding
    others, as older versions made it: tests/test_launcher.py)."""
    api_command = _command("api")
    ensure = api_command.index("--dashboard-key")
    assert api_command[ensure - 3 : ensure] == ["python", "-m", "backend.dev.launcher"]
    assert "backend.cli.keys" not in api_command  # its `ensure` keeps a key whatever its scopes
    key_file = api_command[ensure + 1]
    assert _env("frontend")["API_KEY_FILE"] == key_file
    folder = str(Path(key_file).parent)
    assert f"keys:{folder}" in SERVICES["api"]["volumes"] and f"keys:{folder}:ro" in SERVICES["frontend"]["volumes"]
    assert ensure < api_command.index("backend.api.server")
    assert f"mkdir -p {folder} && chown app:app {folder}" in (PROJECT_ROOT / "Dockerfile").read_text()
    assert DASHBOARD_SCOPES == ["predict", "read"]


def test_the_dashboard_is_served_behind_its_host_allow_list() -> None:
    """frontend/dashboard.py, not the Dockerfile's frontend/app.py: a foreign Host is refused (DNS rebinding)."""
    command = _command("frontend")
    assert command[:3] == ["streamlit", "run", "frontend/dashboard.py"] and (PROJECT_ROOT / command[2]).is_file()
    assert "--server.port=8501" in command and "--server.enableStaticServing=true" in command
    default = re.fullmatch(r"\$\{DASHBOARD_ALLOWED_HOSTS:-([^}]*)\}", _env("frontend")["DASHBOARD_ALLOWED_HOSTS"])
    assert default, _env("frontend")["DASHBOARD_ALLOWED_HOSTS"]
    hosts = default.group(1).split(",")
    health = " ".join(SERVICES["frontend"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8501/" in health and host_allowed("127.0.0.1:8501", hosts)  # the health check
    assert host_allowed("localhost:8501", hosts) and not host_allowed("evil.example", hosts)  # the browser
    assert all(str(port).startswith("127.0.0.1:") for port in SERVICES["frontend"]["ports"])
