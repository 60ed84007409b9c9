"""API keys on a real uvicorn with AUTH_ENABLED=true: keys made by the CLI, 401 without one, 403 without the
route's scope, batches readable by their own key, records naming the key, revocation. Then the keys' rate limits
on the app in-process (TestClient), with limits small enough to reach."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.core.config import Settings
from backend.core.redis import async_redis
from backend.db.session import make_engine, session_factory
from backend.dev.processes import free_port
from backend.main import create_app
from backend.services.keys import SCOPES, create_key
from backend.services.rate_limit import RateLimiter
from tests.fixtures.auth import UNKNOWN_KEY, Secured, cli

BATCH_ID = "0" * 32


def test_without_a_key_predictions_listings_and_results_answer_401(secured: Secured, classic_row: dict) -> None:
    with secured.client() as anonymous:
        answers = [
            anonymous.post("/api/predict/eclo", json=classic_row),
            anonymous.post("/api/predict/eclo/batch", json={"items": [classic_row]}),
            anonymous.get("/api/predictions"),
            anonymous.get("/api/predict/batch"),
            anonymous.get(f"/api/predict/batch/{BATCH_ID}/results"),
            anonymous.get("/api/datasets"),
            anonymous.get("/api/traffic/sensors"),
            anonymous.get("/api/models"),
            anonymous.get("/metrics"),
        ]
        for response in answers:
            assert response.status_code == 401, (response.request.url, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in answers[0].json()["error"]["message"]
        # Health, the OpenAPI document and share links need no key.
        assert anonymous.get("/health/live").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/api/shared/unknown-token").status_code == 404


PUBLIC = ("/health", "/api/shared/")  # share links: their token is the credential


def test_every_route_of_the_openapi_document_but_the_public_ones_needs_a_key(secured: Secured) -> None:
    """A route added without a scope shows here: each operation is called without a key, its path filled in."""
    with secured.client() as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
        called = 0
        for path, operations in paths.items():
            if path.startswith(PUBLIC):
                continue
            url = re.sub(r"\{[^}]+\}", "0123456789ab", path)
            for method in operations:
                answer = anonymous.request(method.upper(), url)
                assert answer.status_code == 401, (method, path, answer.status_code)
                called += 1
    assert called >= 30


@pytest.mark.parametrize(
    "header",
    ["Bearer tpk_000000000000_" + "A" * 43, "Bearer not-a-key", "Basic dXNlcjpwYXNz", "Bearer"],
)
def test_unknown_or_malformed_keys_answer_401(secured: Secured, header: str) -> None:
    response = httpx.get(f"{secured.url}/api/predictions", headers={"Authorization": header})
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_a_predict_key_predicts_but_cannot_list(secured: Secured, classic_row: dict) -> None:
    with secured.client(secured.keys["predictor"]) as predictor:
        assert predictor.post("/api/predict/eclo", json=classic_row).status_code == 200
        assert predictor.get("/api/models").status_code == 200
        for path in ("/api/predictions", "/api/predict/batch", "/api/datasets", "/api/traffic/current", "/metrics"):
            response = predictor.get(path)
            assert response.status_code == 403, (path, response.text)
            error = response.json()["error"]
            assert error["code"] == "forbidden" and "'read'" in error["message"]
            assert error["details"] == [{"scope": "read", "key_scopes": ["predict"]}]
        upload = predictor.post("/api/datasets", files={"file": ("a.csv", b"x\n1\n", "text/csv")})
        assert upload.status_code == 403 and "'admin'" in upload.json()["error"]["message"]


def test_a_read_key_lists_but_cannot_predict(secured: Secured, classic_row: dict) -> None:
    with secured.client(secured.keys["reader"]) as reader:
        assert reader.get("/api/predictions").status_code == 200
        assert reader.get("/metrics").status_code == 200
        assert reader.post("/api/predict/eclo", json=classic_row).status_code == 403


def test_a_batch_is_read_by_its_own_key_and_by_read_keys_only(secured: Secured, classic_row: dict) -> None:
    with secured.client(secured.keys["predictor"]) as owner:
        accepted = owner.post("/api/predict/eclo/batch", json={"items": [classic_row]})
        assert accepted.status_code == 202, accepted.text
        poll = accepted.json()["poll_url"]
        assert owner.get(poll).status_code == 200
    with secured.client(secured.keys["other"]) as other:
        refused = other.get(poll)
        assert refused.status_code == 403 and "another API key" in refused.json()["error"]["message"]
    with secured.client(secured.keys["reader"]) as reader:
        assert reader.get(poll).status_code == 200
    engine = make_engine(secured.env["DATABASE_URL"])
    try:
        deadline = time.monotonic() + 10
        owner_id = secured.keys["predictor"].split("_")[1]
        batch_id = poll.split("/")[-2]
        while time.monotonic() < deadline:  # the batch's row is written by the recorder thread, shortly after
            with engine.connect() as connection:
                row = connection.execute(text("SELECT owner FROM batch_jobs WHERE id = :id"), {"id": batch_id}).first()
            if row is not None:
                break
            time.sleep(0.1)
        assert row is not None and row.owner == owner_id
    finally:
        engine.dispose()


def test_a_prediction_is_recorded_with_the_key_that_asked_and_listed_by_it(secured: Secured, classic_row: dict) -> None:
    asked = {}
    for name in ("predictor", "other"):
        with secured.client(secured.keys[name]) as client:
            answer = client.post("/api/predict/eclo", json=classic_row)
            assert answer.status_code == 200, answer.text
            asked[name] = (secured.keys[name].split("_")[1], answer.headers["x-request-id"])
    with secured.client(secured.keys["reader"]) as reader:
        for key_id, request_id in asked.values():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the recorder thread writes the record shortly after the answer
                listed = reader.get("/api/predictions", params={"key_id": key_id, "size": 200})
                assert listed.status_code == 200, listed.text
                if request_id in {r["request_id"] for r in listed.json()["items"]}:
                    break
                time.sleep(0.1)
            records = listed.json()["items"]
            assert request_id in {r["request_id"] for r in records}
            assert {r["key_id"] for r in records} == {key_id}
        refused = reader.get("/api/predictions", params={"key_id": "tpk_not-an-id"})
        assert refused.status_code == 422 and "key_id" in refused.text


def test_keys_are_stored_hashed(secured: Secured) -> None:
    engine = make_engine(secured.env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            stored = " ".join(str(v) for row in connection.execute(text("SELECT * FROM api_keys")) for v in row)
    finally:
        engine.dispose()
    for key in secured.keys.values():
        _, key_id, secret = key.split("_", 2)  # the secret itself may hold "_"
        assert key_id in stored and secret not in stored


def test_a_new_key_works_within_a_second_and_a_revoked_one_stops_within_the_cache_time(
    secured: Secured, classic_row: dict
) -> None:
    made = cli(secured.env, "create", "short-lived", "--scopes", "predict")
    key = made.stdout.strip()
    with secured.client(key) as client:
        # Made by another process: the API reads it once an unknown id comes in a second after its last read.
        deadline = time.monotonic() + 3
        while (status := client.post("/api/predict/eclo", json=classic_row).status_code) == 401:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status == 200
        revoked = cli(secured.env, "revoke", key.split("_")[1])
        assert revoked.returncode == 0, revoked.stderr
        time.sleep(1.2)  # AUTH_CACHE_SECONDS=1
        assert client.post("/api/predict/eclo", json=classic_row).status_code == 401
    listing = cli(secured.env, "list").stdout
    assert "short-lived" in listing and "revoked" in listing and key not in listing


def test_the_cli_refuses_unknown_scopes(secured: Secured) -> None:
    made = cli(secured.env, "create", "bad", "--scopes", "predict,write")
    assert made.returncode == 2 and "predict, read, admin" in made.stderr


def test_an_unknown_key_id_is_refused_as_fast_as_a_wrong_secret(secured: Secured) -> None:
    known = secured.keys["reader"]
    wrong_secret = known[:-1] + ("A" if known[-1] != "A" else "B")
    took: dict[str, list[float]] = {"unknown": [], "wrong secret": []}
    with secured.client() as client:
        for i in range(50):
            for kind, key in (
                ("unknown", f"{UNKNOWN_KEY[:4]}{i:012x}{UNKNOWN_KEY[16:]}"),
                ("wrong secret", wrong_secret),
            ):
                started = time.perf_counter()
                refused = client.get("/api/keys/me", headers={"Authorization": f"Bearer {key}"})
                took[kind].append(time.perf_counter() - started)
                assert refused.status_code == 401
    assert sum(took["unknown"]) < 1.0 and max(took["unknown"]) < 0.25, took  # was ~1 s each
    assert sorted(took["unknown"])[25] < 0.05, took  # the median


@dataclass
class Limited:
    client: TestClient
    keys: dict[str, str]  # name -> key

    def call(self, name: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[name]}"}
        return self.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]


def limited_app(settings: Settings) -> Iterator[Limited]:
    keys = {}
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            for name in ("fast", "calm"):
                keys[name] = create_key(session, name, list(SCOPES))[1]
    finally:
        engine.dispose()
    with TestClient(create_app(settings)) as client:
        yield Limited(client, keys)


@pytest.fixture
def limited(app_settings: Settings) -> Iterator[Limited]:
    """The app in-process with keys on, each key allowed bursts of 3 and a request every 2 seconds.

    The slow refill keeps the test's counts true on a loaded machine: a token comes back only 2 s after the last."""
    settings = app_settings.model_copy(
        update={"auth_enabled": True, "rate_limit_per_second": 0.5, "rate_limit_burst": 3}
    )
    yield from limited_app(settings)


def test_a_key_over_its_rate_limit_gets_429_with_retry_after_and_other_keys_do_not(
    limited: Limited, classic_row: dict
) -> None:
    # The single-prediction route (checked without FastAPI's dependencies) and a dependency-checked route share
    # the key's one bucket.
    answers = [limited.call("fast", "POST", "/api/predict/eclo", json=classic_row) for _ in range(2)]
    answers.append(limited.call("fast", "GET", "/api/models"))
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    for refused in (limited.call("fast", "POST", "/api/predict/eclo", json=classic_row),
                    limited.call("fast", "GET", "/api/keys/me")):  # fmt: skip
        assert refused.status_code == 429, refused.text
        retry_after = int(refused.headers["Retry-After"])
        assert retry_after in (1, 2)  # the seconds until the next token, rounded up
        error = refused.json()["error"]
        key_id = limited.keys["fast"].split("_")[1]
        assert error["code"] == "rate_limited" and key_id in error["message"]
        assert error["details"] == [{"key_id": key_id, "retry_after_seconds": retry_after}]
    assert limited.call("calm", "POST", "/api/predict/eclo", json=classic_row).status_code == 200
    assert limited.call("calm", "GET", "/api/keys/me").status_code == 200
    time.sleep(2.2)  # one token back at one every 2 seconds
    assert limited.call("fast", "POST", "/api/predict/eclo", json=classic_row).status_code == 200
    assert limited.call("fast", "POST", "/api/predict/eclo", json=classic_row).status_code == 429
    assert limited.client.get("/api/keys/me").status_code == 401  # no key: refused before any limit


def test_with_the_rate_limits_redis_down_requests_pass(limited: Limited, app_settings: Settings) -> None:
    directory = limited.client.app.state.services.api_keys  # type: ignore[attr-defined]
    closed = async_redis(f"redis://127.0.0.1:{free_port()}/0", app_settings)
    directory.limiter = RateLimiter(closed, app_settings.key_prefix, per_second=2.0, burst=3)
    answers = [limited.call("fast", "GET", "/api/keys/me").status_code for _ in range(10)]
    assert answers == [200] * 10


def test_with_keys_off_no_rate_limit_applies(app_settings: Settings, classic_row: dict) -> None:
    settings = app_settings.model_copy(update={"rate_limit_per_second": 0.01, "rate_limit_burst": 1})
    with TestClient(create_app(settings)) as client:
        answers = [client.post("/api/predict/eclo", json=classic_row).status_code for _ in range(5)]
    assert answers == [200] * 5


def test_with_rate_limits_off_a_key_is_not_limited(app_settings: Settings) -> None:
    settings = app_settings.model_copy(
        update={"auth_enabled": True, "rate_limit_enabled": False, "rate_limit_per_second": 0.01, "rate_limit_burst": 1}
    )
    for limited in limited_app(settings):
        assert limited.client.app.state.services.api_keys.limiter is None  # type: ignore[attr-defined]
        assert [limited.call("fast", "GET", "/api/keys/me").status_code for _ in range(5)] == [200] * 5
