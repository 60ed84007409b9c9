"""The tests' fixtures live in `tests/fixtures/` by concern; tests import helpers from there, never from here."""

pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.redis",
    "tests.fixtures.database",
    "tests.fixtures.stack",
    "tests.fixtures.app",
    "tests.fixtures.traffic",
    "tests.fixtures.dashboard",
    "tests.fixtures.datasets",
    "tests.fixtures.auth",
]
