"""All settings of the service in one class; every field has a laptop-safe default, env vars override."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# s3://bucket[/prefix]: a bucket name as S3 allows it (3-63 of a-z 0-9 . -), a prefix of path segments.
STORAGE_URL_PATTERN = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>[^?#]*))?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", protected_namespaces=("settings_",)
    )

    environment: str = "local"
    log_level: str = "INFO"
    # One log line per request; off: only requests that fail (status >= 400) are logged.
    access_log: bool = False

    # Storage and models
    model_dir: Path = PROJECT_ROOT / "model"
    # Extra model kinds, as a JSON object kind -> "package.module:loader" (a test double's kind, a plug-in).
    model_plugins: dict[str, str] = {}
    data_dir: Path = PROJECT_ROOT / "var"
    # Where uploaded datasets and their results live: empty, the DATA_DIR folder; `s3://bucket/prefix`, an
    # S3-compatible object store (S3_ENDPOINT_URL for one not on AWS, e.g. MinIO; no keys: boto3's own chain).
    storage_url: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None

    # Model lifecycle: trained versions under `models/<name>/<version>` of the file storage; every process serves the
    # `champion` alias's version within MODEL_RELOAD_SECONDS of a move.
    model_reload_seconds: float = Field(default=5.0, gt=0, le=3600)
    model_keep_versions: int = Field(default=5, ge=1, le=1000)
    training_time_limit_seconds: int = Field(default=3600, ge=10, le=7 * 24 * 3600)
    # A running training job whose process has not beaten for this long is failed (its worker was killed).
    training_stale_seconds: float = Field(default=60.0, ge=2, le=3600)
    # Single predictions waiting to be scored by the challenger; beyond it they are skipped (counted), never
    # slowing an answer.
    shadow_queue_size: int = Field(default=10_000, ge=1, le=1_000_000)
    # The share of single predictions scored by the challenger (every k-th one): 1 scores them all.
    shadow_sample_rate: float = Field(default=0.2, gt=0, le=1)
    drift_max_rows: int = Field(default=50_000, ge=100, le=5_000_000)
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'traffic.db'}"

    # Redis: broker, result backend and cache unless overridden
    redis_url: str = "redis://127.0.0.1:6379/0"
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    cache_url: str | None = None

    redis_socket_timeout_seconds: float = Field(default=1.0, gt=0)
    key_prefix: str = "traffic:"

    # Batches and workers
    batch_max_rows: int = Field(default=100, ge=1)
    max_pending_batches: int = Field(default=100, ge=1)
    batch_result_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    batch_chunk_rows: int = Field(default=10, ge=1)
    # Pause between chunks of a batch: caps a worker's CPU share (and slows batches down for fault drills).
    batch_throttle_seconds: float = Field(default=0.0, ge=0)
    batch_max_deliveries: int = Field(default=3, ge=1)
    batch_soft_time_limit_seconds: int = Field(default=60, ge=1)
    batch_time_limit_seconds: int = Field(default=90, ge=1)
    # A message taken by a worker that dies unacknowledged returns to the queue after this long; must exceed
    # the longest batch (the time limit above).
    celery_visibility_timeout_seconds: int = Field(default=300, ge=1)
    celery_unacked_restore_interval_seconds: int = Field(default=10, ge=1)
    worker_concurrency: int = Field(default=2, ge=1)
    # How often Celery beat runs the reconciliation of stuck batches and lost dataset jobs.
    reconcile_interval_seconds: int = Field(default=60, ge=1)
    # How often Celery beat keeps the stores: partitions made ahead, readings rolled up, retention applied.
    maintenance_interval_seconds: int = Field(default=60, ge=1, le=24 * 3600)
    # Days of raw readings and of prediction records kept (0: for ever). Readings are rolled up hourly before they
    # go: the usual-speed profile reads the roll-ups.
    readings_retention_days: int = Field(default=0, ge=0, le=100 * 366)
    records_retention_days: int = Field(default=0, ge=0, le=100 * 366)
    # The queue batches go through: stacks sharing one Redis stay apart by their queue (and KEY_PREFIX).
    celery_queue: str = "batches"

    # Sensor readings: the live feed (a Redis Stream read by one consumer group) and congestion predictions
    # The feed consumer (`python -m backend.services.feed`) runs beside the API: /health reports it down when it is
    # silent.
    feed_enabled: bool = True
    feed_group: str = "readings-store"
    # A consumer's name: a restarted consumer of the same name takes back the messages it had not acknowledged.
    feed_consumer: str | None = None
    feed_batch: int = Field(default=1000, ge=1, le=10_000)
    # Messages another consumer left unacknowledged this long are claimed (that consumer is presumed dead).
    feed_claim_idle_seconds: float = Field(default=60.0, gt=0)
    # Readings with a speed a sensor needs for a prediction: stored ones in the hour up to its newest, or those sent
    # in `recent`.
    congestion_min_readings: int = Field(default=3, ge=1, le=12)
    # The demo feed (backend.services.demo_feed): the congestion model's network replayed into the live feed at the
    # time of now. auto: in ENVIRONMENT=local, on a database holding no readings but the demo's; on; off.
    demo_feed: Literal["auto", "on", "off"] = "auto"

    # Uploaded datasets: files under `<data_dir>/datasets`, scored in chunks spread over every worker
    dataset_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    dataset_max_columns: int = Field(default=200, ge=1, le=10_000)
    # A longer cell is reported as an invalid row (it is no value any model knows).
    dataset_max_cell_chars: int = Field(default=500, ge=1)
    dataset_chunk_rows: int = Field(default=1000, ge=1, le=100_000)
    dataset_share_days: float = Field(default=7.0, gt=0, le=365)
    # Explore: the most rows a query answers, how long it may run, the most points a map gets, the widest radius.
    explore_max_rows: int = Field(default=1000, ge=1, le=100_000)
    explore_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    explore_points_cap: int = Field(default=5000, ge=1, le=100_000)
    explore_max_radius_m: float = Field(default=50_000.0, gt=0)

    # Records the database refused wait in DATA_DIR/spill/records.jsonl until it takes them; past this size
    # they are dropped (and counted in /metrics).
    spill_max_bytes: int = Field(default=1024**3, ge=1024)

    # Single-prediction caches: ECLO answers in an in-process LRU of CACHE_LOCAL_ENTRIES per API process (a
    # prediction costs less than a Redis round trip); congestion answers (read from the database) in Redis, for
    # CACHE_TTL_SECONDS.
    cache_enabled: bool = True
    cache_local_entries: int = Field(default=20_000, ge=0, le=10_000_000)
    cache_ttl_seconds: int = Field(default=3600, ge=1)

    # HTTP. A request body over REQUEST_MAX_BYTES is refused (413) before it is read whole; 8 MB holds 10,000
    # readings of ~200 bytes. Dataset uploads have their own limit (DATASET_MAX_BYTES).
    request_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # A JSON body's ',' characters are counted as it arrives (N object members or array items need N-1 of them,
    # however the body is spaced): past this, 413 before it is parsed, since parsing a body of 700,000 tiny members
    # alone takes a third of a second. The largest accepted bodies (10,000 nested readings; 100 congestion items of
    # 288 readings) hold about 60,000 and 120,000.
    request_max_json_members: int = Field(default=200_000, ge=100)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # The API server (`python -m backend.api.server`): a request head's most bytes (431 past it) and seconds to
    # arrive, the slowest a body may come (over a window), idle keep-alive seconds, and connections per process
    # (503 past it). See backend/api/server.py.
    server_head_max_bytes: int = Field(default=64 * 1024, ge=4096, le=1024 * 1024)
    server_head_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    server_body_min_bytes_per_second: float = Field(default=1024.0, ge=0)
    server_body_window_seconds: float = Field(default=10.0, gt=0, le=300)
    server_keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    server_max_connections: int = Field(default=2000, ge=10)
    # How long the API's background threads (the record writer, key and upload reads) may hold the GIL while a
    # request waits on the event loop (Python's default is 5 ms): a shorter interval than the default improves a
    # single prediction's p99 and throughput.
    gil_switch_interval_ms: float = Field(default=0.5, ge=0.05, le=50)
    # Browser origins allowed to call the API; none by default (the dashboard calls it from its server), and then
    # no CORS middleware runs at all.
    cors_origins: list[str] = []

    # API keys (`python -m backend.cli.keys create`): every route but health, docs and share links needs one, sent
    # as `Authorization: Bearer <key>`. False keeps a laptop demo open; refused outside ENVIRONMENT=local.
    auth_enabled: bool = True
    # How long the API trusts what it read of the keys table (a revoked key stops working within this).
    auth_cache_seconds: float = Field(default=5.0, gt=0, le=300)
    # Each key's requests, counted in Redis across API processes: RATE_LIMIT_PER_SECOND on average, bursts of
    # RATE_LIMIT_BURST, the same for every key; over it a 429 with Retry-After. No limit without keys
    # (AUTH_ENABLED=false); while Redis is down requests pass unchecked.
    rate_limit_enabled: bool = True
    rate_limit_per_second: float = Field(default=200.0, gt=0)
    rate_limit_burst: int = Field(default=400, ge=1)

    # The MCP server (streamable HTTP at /mcp, stdio via `python -m backend.mcp`): the most rows a tool answers
    # (it says how many it left out), and the Host headers it accepts (DNS-rebinding protection; empty: any).
    mcp_max_rows: int = Field(default=50, ge=1, le=1000)
    mcp_allowed_hosts: list[str] = ["127.0.0.1:*", "localhost:*", "[::1]:*", "api:*"]

    # The assistant (/api/assistant): the LLM behind it. Each request may bring the user's own key in
    # X-Anthropic-API-Key (never stored); else this one. LLM_PROVIDER "openai" talks to an OpenAI-compatible
    # endpoint at LLM_BASE_URL (a model server on a closed network) with LLM_API_KEY.
    anthropic_api_key: SecretStr | None = None
    llm_provider: Literal["anthropic", "openai"] = "anthropic"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = Field(default="claude-sonnet-4-5", min_length=1, max_length=100)
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_max_tokens: int = Field(default=2048, ge=64, le=32_000)
    # Steps of one answer (LLM turns with tool calls) and the characters of one tool output the model is shown.
    assistant_max_steps: int = Field(default=8, ge=1, le=50)
    assistant_tool_output_chars: int = Field(default=20_000, ge=500, le=500_000)
    # A repeated first question (same model versions, same dataset) is answered from Redis for this long.
    assistant_cache_enabled: bool = True
    assistant_cache_ttl_seconds: int = Field(default=3600, ge=1)

    # Flower (monitoring of the workers); basic auth as "user:password", none by default
    flower_port: int = 5555
    flower_basic_auth: str | None = None

    # Where `make run` serves the dashboard (whose own settings are frontend/settings.py)
    streamlit_port: int = 8501

    @field_validator("storage_url")
    @classmethod
    def _storage_url_is_a_bucket(cls, value: str) -> str:
        match = STORAGE_URL_PATTERN.fullmatch(value)
        if value and (match is None or ".." in (match["prefix"] or "").split("/")):
            raise ValueError(f"STORAGE_URL must be empty (files in DATA_DIR) or s3://bucket[/prefix], not {value!r}")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.environment != "local":
            _refuse_weak_secrets(self)
        if self.celery_visibility_timeout_seconds <= self.batch_time_limit_seconds:
            raise ValueError("CELERY_VISIBILITY_TIMEOUT_SECONDS must exceed BATCH_TIME_LIMIT_SECONDS")
        return self

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def result_backend_url(self) -> str:
        return self.celery_result_backend or self.redis_url

    @property
    def storage_location(self) -> tuple[str, str] | None:
        """STORAGE_URL's bucket and prefix; None for the DATA_DIR folder."""
        match = STORAGE_URL_PATTERN.fullmatch(self.storage_url)
        return (match["bucket"], (match["prefix"] or "").strip("/")) if match else None

    @property
    def versions_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_redis_url(self) -> str:
        return self.cache_url or self.redis_url


# Passwords that are examples or defaults, never secrets (compared lower-case).
PLACEHOLDER_PASSWORDS = frozenset(
    {"", "change-me", "changeme", "change_me", "password", "admin", "secret", "traffic", "postgres", "flower"}
)
MIN_PASSWORD_LENGTH = 12


def _refuse_weak_secrets(settings: Settings) -> None:
    """Outside ENVIRONMENT=local: API keys on, Flower behind basic auth, and no password a reader of this repo
    could guess."""
    if not settings.auth_enabled:
        raise ValueError("AUTH_ENABLED=false is refused outside ENVIRONMENT=local: create API keys instead")
    if not settings.flower_basic_auth or ":" not in settings.flower_basic_auth:
        raise ValueError("FLOWER_BASIC_AUTH (user:password) must be set outside ENVIRONMENT=local")
    passwords = {"FLOWER_BASIC_AUTH": settings.flower_basic_auth.split(":", 1)[1]}
    for name, url in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url)):
        if "@" in url.split("://", 1)[-1]:
            credentials = url.split("://", 1)[1].rsplit("@", 1)[0]
            passwords[name] = credentials.split(":", 1)[1] if ":" in credentials else ""
    for name, password in passwords.items():
        if password.lower() in PLACEHOLDER_PASSWORDS or len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(
                f"{name} holds a default, example or short password: use at least {MIN_PASSWORD_LENGTH} characters "
                "of your own outside ENVIRONMENT=local"
            )


@lru_cache
def get_settings() -> Settings:
    return Settings()
