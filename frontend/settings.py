"""The dashboard's own settings (env vars or `.env`); it needs nothing of the backend but its URL and a key."""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    # Where the dashboard reaches the API, and the addresses it shows to the browser.
    api_url: str = "http://127.0.0.1:8000"
    api_public_url: str | None = None
    flower_url: str = "http://127.0.0.1:5555"
    # The dashboard's API key (scopes predict and read; admin actions ask each visitor for an admin key): given, or
    # read from a file (`make run` and compose make one); none when the API runs with AUTH_ENABLED=false.
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    # The host names the dashboard answers to (comma-separated; `*.example.com` for subdomains, `*` for any): a
    # request naming another Host is refused (DNS rebinding; frontend/hosts.py).
    dashboard_allowed_hosts: str = "127.0.0.1,localhost"
    # Each API call: a timeout, and attempts with exponential backoff (connection errors, 5xx, 429).
    api_timeout_seconds: float = Field(default=10.0, gt=0)
    api_attempts: int = Field(default=3, ge=1)
    # How often the batch page polls a running batch.
    batch_poll_seconds: float = Field(default=0.3, gt=0)
    # Map tiles: a {z}/{x}/{y} URL template, or "none" (markers on a blank background: no request leaves).
    map_tiles_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    map_tiles_attribution: str = "&copy; OpenStreetMap contributors"
    # Where the browser finds Leaflet and jQuery, relative to the map's frame (/component/<name>/index.html)
    # unless absolute: the dashboard serves them from frontend/static/map, so maps need no CDN.
    map_assets_url: str = "../../app/static/map"
    # How often the network page refreshes while the feed runs; readings per upload call.
    network_refresh_seconds: float = Field(default=30.0, ge=5)
    upload_chunk_readings: int = Field(default=2000, ge=1, le=10_000)
    # The System page's records export passes through the dashboard's memory: past this many records it points
    # at the API's own streamed CSV instead (~300 bytes a record).
    records_export_max_rows: int = Field(default=100_000, ge=1)

    @cached_property
    def bearer_key(self) -> str | None:
        """The dashboard's own key, its file read once (every API call of every session sends it)."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_file is not None:
            return self.api_key_file.read_text().strip() or None
        return None

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        return tuple(h.strip() for h in self.dashboard_allowed_hosts.split(",") if h.strip())

    @property
    def browser_api_url(self) -> str:
        return self.api_public_url or self.api_url


@lru_cache
def get_settings() -> DashboardSettings:
    return DashboardSettings()
