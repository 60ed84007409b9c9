import pytest
from pydantic import ValidationError

from backend.core.config import Settings


def test_defaults_work_on_a_laptop() -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("sqlite:///") and settings.broker_url == settings.redis_url


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/2")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker.example:6379/0")
    monkeypatch.setenv("CORS_ORIGINS", '["https://dash.example"]')
    settings = Settings(_env_file=None)
    assert settings.cache_redis_url == "redis://cache.example:6379/2"
    assert settings.broker_url == "redis://broker.example:6379/0"
    assert settings.cors_origins == ["https://dash.example"]


def test_unsafe_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="FLOWER_BASIC_AUTH"):
        Settings(_env_file=None, environment="production")
    strong = "x7Rq-2mVw-9LpZ"
    with pytest.raises(ValidationError, match="FLOWER_BASIC_AUTH holds a default"):
        Settings(_env_file=None, environment="production", flower_basic_auth="admin:change-me")
    with pytest.raises(ValidationError, match="DATABASE_URL holds a default"):
        Settings(_env_file=None, environment="production", flower_basic_auth=f"admin:{strong}",
                 database_url="postgresql+psycopg2://traffic:change-me@postgres:5432/traffic")  # fmt: skip
    with pytest.raises(ValidationError, match="REDIS_URL holds a default"):
        Settings(_env_file=None, environment="production", flower_basic_auth=f"admin:{strong}",
                 redis_url="redis://:secret@redis:6379/0")  # fmt: skip
    accepted = Settings(_env_file=None, environment="production", flower_basic_auth=f"admin:{strong}",
                        database_url=f"postgresql+psycopg2://traffic:{strong}@postgres:5432/traffic")  # fmt: skip
    assert accepted.environment == "production" and accepted.auth_enabled
    with pytest.raises(ValidationError, match="AUTH_ENABLED=false is refused"):
        Settings(_env_file=None, environment="production", flower_basic_auth=f"admin:{strong}", auth_enabled=False)
    assert not Settings(_env_file=None, auth_enabled=False).auth_enabled  # a laptop demo may run open
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT"):
        Settings(_env_file=None, celery_visibility_timeout_seconds=30, batch_time_limit_seconds=60)
