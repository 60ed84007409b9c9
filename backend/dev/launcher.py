"""`make run`: the embedded stack on one machine — Redis (started when none answers), the database schema
(`alembic upgrade head`) with the congestion model's sensors registered, the API, one Celery worker, the readings
feed consumer, the demo feed (on a database holding no readings but its own: DEMO_FEED), Flower and the dashboard —
with the URLs printed; Ctrl-C stops everything it started.

With AUTH_ENABLED (the default) it keeps an API key for the dashboard (scopes predict and read: its admin actions
ask for an admin key) and one for the user (every scope), and a Flower password, under DATA_DIR/keys (mode 0600),
made on the first run and reused while they stay valid; it prints the user's."""

from __future__ import annotations

import argparse
import secrets
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlparse

import httpx
from sqlalchemy.engine import make_url

from backend.cli.keys import ensure_key, write_secret
from backend.core.config import Settings, get_settings
from backend.db.migrate import upgrade
from backend.db.models import ApiKey
from backend.db.session import make_engine, session_factory
from backend.dev.processes import ProcessGroup, port_in_use, redis_answers, redis_port, start_redis, stop, wait_until
from backend.services.demo_feed import decide_for
from backend.services.feed import stream_key
from backend.services.keys import SCOPES, is_active, key_id_of, revoke_key
from backend.services.traffic import register_model_sensors
from backend.tasks.celery_app import training_queue
from backend.wiring import open_registry

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# The dashboard's own key: whoever reaches the dashboard reads and predicts with it; admin actions ask for an admin key.
DASHBOARD_SCOPES = ["predict", "read"]


class RestartBudget:
    """Restarts allowed per process: at most `limit` deaths within any `window_seconds`. A process that dies
    now and then over weeks keeps being restarted; one that dies in a loop stops the stack."""

    def __init__(self, limit: int = 5, window_seconds: float = 300.0) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.deaths: dict[str, deque[float]] = {}

    def allow(self, name: str, now: float) -> bool:
        """Count a death of `name` at `now`; whether it may be restarted."""
        recent = self.deaths.setdefault(name, deque())
        while recent and recent[0] <= now - self.window_seconds:
            recent.popleft()
        recent.append(now)
        return len(recent) <= self.limit


def describe_models(settings: Settings) -> list[str]:
    registry = open_registry(settings)
    lines = []
    for name in registry.names():
        info = registry.get(name).info()
        summary = info.get("summary") or ", ".join(f"{k} {v}" for k, v in info["metrics"].items() if v is not None)
        lines.append(
            f"model {name} ({info['kind']}): version {info['version']}, trained {info['trained_at']} on "
            f"{info['rows']} rows ({info['data_source']}); {summary}"
        )
    return lines


def register_default_sensors(settings: Settings) -> str:
    """The congestion model's sensors, registered (or updated) so that their readings are accepted."""
    registry = open_registry(settings)
    if "congestion" not in registry.names():
        return "no congestion model: no sensors registered"
    engine = make_engine(settings.database_url)
    try:
        model = registry.get("congestion")
        result = register_model_sensors(session_factory(engine), model)  # type: ignore[arg-type]
    finally:
        engine.dispose()
    return f"{result.created + result.updated} sensors of the congestion model registered"


def ensure_dashboard_key(settings: Settings, path: Path, name: str = "dashboard") -> tuple[str, bool]:
    """The dashboard's key kept in `path`, with exactly DASHBOARD_SCOPES: a kept key holding other scopes (an older
    dashboard key held every scope) is revoked and replaced, which `ensure_key` alone would keep."""
    kept = path.read_text().strip() if path.exists() else ""
    key_id = key_id_of(kept)
    if key_id is not None:
        engine = make_engine(settings.database_url)
        try:
            with session_factory(engine)() as session:
                row = session.get(ApiKey, key_id)
                if row is not None and is_active(session, kept) and set(row.scopes.split(",")) != set(DASHBOARD_SCOPES):
                    revoke_key(session, key_id)
        finally:
            engine.dispose()
    return ensure_key(settings, name, DASHBOARD_SCOPES, path)


def flower_auth(path: Path) -> str:
    """`flower:<random password>`, kept in `path` (mode 0600) across runs."""
    if path.exists():
        return path.read_text().strip()
    auth = f"flower:{secrets.token_urlsafe(18)}"
    write_secret(path, auth)
    return auth


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class Launcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.logs = settings.data_dir / "logs"
        self.group = ProcessGroup(self.logs)
        self.restarts = RestartBudget()
        self.redis: subprocess.Popen[bytes] | None = None

    def ensure_redis(self) -> str:
        url = self.settings.redis_url
        if redis_answers(url):
            return f"{url} (already running)"
        host = urlparse(url).hostname or "127.0.0.1"
        if host not in LOCAL_HOSTS:
            raise SystemExit(f"error: no Redis answers at {url}, and it is not local, so it cannot be started here")
        self.redis = start_redis(
            redis_port(url), self.settings.data_dir / "redis", self.logs / "redis.log", persist=True
        )
        return f"{url} (started by make run)"

    def check_ports(self) -> None:
        s = self.settings
        for name, port in (
            ("API_PORT", s.api_port),
            ("FLOWER_PORT", s.flower_port),
            ("STREAMLIT_PORT", s.streamlit_port),
        ):
            if port_in_use(s.api_host, port):
                raise SystemExit(f"error: port {port} ({name}) is in use on {s.api_host}: is a stack already running? "
                                 f"Stop it, or set {name} to a free port.")  # fmt: skip

    def start(self) -> list[str]:
        s = self.settings
        self.check_ports()
        self.logs.mkdir(parents=True, exist_ok=True)
        redis_line = self.ensure_redis()
        upgrade(s.database_url)
        sensors_line = register_default_sensors(s)
        keys = s.data_dir / "keys"
        dashboard_env: dict[str, str] = {}
        user_key = flower_basic_auth = None
        if s.auth_enabled:
            ensure_dashboard_key(s, keys / "dashboard.key", "dashboard (make run)")
            dashboard_env["API_KEY_FILE"] = str(keys / "dashboard.key")
            user_key, _ = ensure_key(s, "user (make run)", list(SCOPES), keys / "user.key")
            flower_basic_auth = s.flower_basic_auth or flower_auth(keys / "flower.auth")
        else:
            flower_basic_auth = s.flower_basic_auth
        python = sys.executable
        api = f"http://{s.api_host}:{s.api_port}"
        self.group.spawn("api", [python, "-m", "backend.api.server", "--host", s.api_host, "--port", str(s.api_port)])
        # Training on a worker of its own: a long training never takes a batch's place.
        self.group.spawn(
            "worker",
            [python, "-m", "celery", "-A", "backend.tasks", "worker", "-c", str(s.worker_concurrency),
             "--loglevel", "INFO", "-n", "embedded@%h", "-X", training_queue(s)],
        )  # fmt: skip
        self.group.spawn(
            "trainer",
            [python, "-m", "celery", "-A", "backend.tasks", "worker", "-c", "1", "--loglevel", "INFO",
             "-n", "trainer@%h", "-Q", training_queue(s)],
        )  # fmt: skip
        self.group.spawn("feed", [python, "-m", "backend.services.feed"])
        demo, _ = decide_for(s)
        if demo.run:  # decided here once: the process is told `on`, so a restart never finds a different answer
            self.group.spawn("demo-feed", [python, "-m", "backend.services.demo_feed"], DEMO_FEED="on")
        self.group.spawn("beat", [python, "-m", "celery", "-A", "backend.tasks", "beat", "--loglevel", "INFO"])
        flower = [python, "-m", "celery", "-A", "backend.tasks", "flower", f"--port={s.flower_port}",
                  f"--address={s.api_host}"]  # fmt: skip
        if flower_basic_auth:
            flower.append(f"--basic_auth={flower_basic_auth}")
        self.group.spawn("flower", flower)
        self.group.spawn(
            "streamlit",
            [python, "-m", "streamlit", "run", "frontend/dashboard.py", f"--server.port={s.streamlit_port}",
             f"--server.address={s.api_host}", "--server.headless=true", "--browser.gatherUsageStats=false",
             "--server.enableStaticServing=true"],
            API_URL=api, FLOWER_URL=f"http://{s.api_host}:{s.flower_port}", **dashboard_env,
        )  # fmt: skip
        if not wait_until(lambda: self._answers(f"{api}/health/live"), timeout=60, interval=0.25):
            self.stop()
            raise SystemExit(f"error: the API did not start; see {self.logs / 'api.log'}")
        # "Up" means every component healthy, the worker included (it answers a second or two after the API).
        if not wait_until(lambda: self._answers(f"{api}/health"), timeout=60, interval=0.5):
            print(f"warning: {api}/health does not report every component healthy yet", flush=True)
        if user_key is None:
            access = ["API key: none needed (AUTH_ENABLED=false: the API is open to anyone who reaches its port)"]
        else:
            access = [
                f"API key: {user_key}",
                f"           (send `Authorization: Bearer <key>`; scopes {', '.join(SCOPES)}; kept in "
                f"{keys / 'user.key'}; more keys: python -m backend.cli.keys create <name> --scopes ...;",
                "            the dashboard's own key reads and predicts only: its admin pages ask for this one)",
            ]
        flower_note = f"   (basic auth {flower_basic_auth})" if flower_basic_auth else ""
        return [
            f"API        {api}   (OpenAPI docs: {api}/docs, health: {api}/health)",
            *access,
            f"Dashboard  http://{s.api_host}:{s.streamlit_port}",
            f"Flower     http://{s.api_host}:{s.flower_port}{flower_note}",
            f"Redis      {redis_line}",
            f"database   {_safe_url(s.database_url)} (migrated to the latest schema; {sensors_line})",
            f"live feed  Redis stream {stream_key(s)} -> database (replay: python -m backend.cli.replay --rate 60)",
            f"demo feed  {demo.reason}" + ("; the congestion model's network, timestamped now" if demo.run else ""),
            f"logs       {self.logs}",
        ]

    def _answers(self, url: str) -> bool:
        if any(p.poll() is not None for p in self.group.processes.values()):
            return False
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait(self) -> str:
        """Until Ctrl-C (or SIGTERM); a process that dies is restarted (a Celery worker can die when Redis
        drops mid-acknowledgement), within the restart budget. Returns why it stopped."""
        stopping: list[str] = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
        # Ctrl-C stops the stack even when this process was started with SIGINT ignored (a background job of a
        # shell without job control), where Python installs no KeyboardInterrupt of its own.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            while not stopping:
                for name, process in list(self.group.processes.items()):
                    if process.poll() is None:
                        continue
                    log = self.logs / f"{name}.log"
                    if not self.restarts.allow(name, time.monotonic()):
                        budget = self.restarts
                        return (f"{name} exited with {process.returncode}, its {budget.limit + 1}th death within "
                                f"{budget.window_seconds:.0f} s; see {log}")  # fmt: skip
                    print(f"{name} exited with {process.returncode}; restarting it (see {log})", flush=True)
                    self.group.respawn(name)
                time.sleep(0.5)
        except KeyboardInterrupt:
            return "Ctrl-C"
        return stopping[0]

    def stop(self) -> None:
        self.group.stop_all()
        if self.redis is not None:
            stop(self.redis)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.dev.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("--describe", action="store_true", help="print the models it would serve, and exit")
    parser.add_argument(
        "--register-sensors", action="store_true", help="register the congestion model's sensors, and exit"
    )
    parser.add_argument(
        "--dashboard-key",
        type=Path,
        metavar="FILE",
        help=f"keep the dashboard's key (scopes {','.join(DASHBOARD_SCOPES)}) in FILE, replacing one with other "
        "scopes, and exit (compose's api service)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.register_sensors:
        print(register_default_sensors(settings), flush=True)
        return 0
    if args.dashboard_key:
        upgrade(settings.database_url)
        _, created = ensure_dashboard_key(settings, args.dashboard_key)
        print(f"{'created' if created else 'kept'} the dashboard's key in {args.dashboard_key}", file=sys.stderr)
        return 0
    lines = describe_models(settings)
    if not lines:
        print(f"error: no models under {settings.model_dir}; run `make model`", file=sys.stderr)
        return 1
    print("\n".join(lines), flush=True)
    if args.describe:
        return 0
    launcher = Launcher(settings)
    try:
        print("\n".join(launcher.start()), flush=True)
        print("stack is up; press Ctrl-C to stop it", flush=True)
        reason = launcher.wait()
        print(f"stopping ({reason})", flush=True)
    finally:
        launcher.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
