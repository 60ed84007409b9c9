"""The tests' fixtures live in `tests/fixtures/` by concern; tests import helpers from there, never from here."""

import pytest

pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.redis",
    "tests.fixtures.database",
    "tests.fixtures.fake_llm",
    "tests.fixtures.object_store",
    "tests.fixtures.stack",
    "tests.fixtures.app",
    "tests.fixtures.traffic",
    "tests.fixtures.dashboard",
    "tests.fixtures.datasets",
    "tests.fixtures.auth",
]

# Test tiers (markers registered in pyproject.toml). A module may set its own with `pytestmark`; otherwise a test's
# tier follows from what it uses: `make test-fast` runs unit and app, `make test` runs them all.
TIERS = ("unit", "app", "stack", "drill")
STACK_FIXTURES = frozenset({"stack", "api", "own_stack", "live_api", "secured", "registered_sensors"})
APP_FIXTURES = frozenset({"app_client", "app_resources", "app_settings", "redis_url", "db_session", "database_url",
                          "empty_database_url", "stack_database_url"})  # fmt: skip


def tier_of(path_parts: tuple[str, ...], fixtures: set[str]) -> str:
    if "reliability" in path_parts:
        return "drill"
    if fixtures & STACK_FIXTURES:
        return "stack"
    if fixtures & APP_FIXTURES:
        return "app"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(tier_of(item.path.parts, set(getattr(item, "fixturenames", ()))))
