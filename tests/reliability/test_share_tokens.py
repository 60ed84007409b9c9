"""Share links against a client that makes tokens up: an unknown token costs one query, then none while it is
remembered; a client's burst of unknown tokens is refused (429, Retry-After) before the database, while live links
keep answering; a share created after its token was probed opens at once."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from backend.db import datasets as records
from backend.services import datasets as datasets_service
from backend.services.datasets import DatasetService, ShareLookups
from backend.wiring import Resources


@pytest.fixture
def service(app_client: TestClient) -> DatasetService:
    return app_client.app.state.services.datasets  # type: ignore[attr-defined]


@pytest.fixture
def now(service: DatasetService) -> list[float]:
    """The limits' clock, moved by hand: a bucket refills only when a test says so."""
    clock = [1000.0]
    service.share_lookups = ShareLookups(clock=lambda: clock[0])
    return clock


@pytest.fixture
def dataset_id(app_resources: Resources) -> str:
    """A dataset as the database knows it (no file, no job): what a share link opens first."""
    dataset_id = uuid.uuid4().hex
    with app_resources.sessions() as session:
        records.insert_dataset(session, id=dataset_id, name="shared", filename="shared.csv", kind="eclo",
                               model_name="eclo", layout="dacon", encoding="utf-8", columns=["ID"], rows=1,
                               valid_rows=1, problems=0, has_outcomes=False, size_bytes=10, checksum="0" * 64,
                               uploaded_at=datetime.now(UTC))  # fmt: skip
        session.commit()
    return dataset_id


@contextmanager
def queries(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` meanwhile."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def made_up() -> str:
    return secrets.token_urlsafe(32)


def test_an_unknown_token_costs_one_query_then_none_while_remembered(
    app_client: TestClient, app_resources: Resources, now: list[float]
) -> None:
    token = made_up()
    with queries(app_resources.engine) as first:
        assert app_client.get(f"/api/shared/{token}").status_code == 404
    assert any("share_tokens" in statement for statement in first)
    with queries(app_resources.engine) as again:
        assert app_client.get(f"/api/shared/{token}").status_code == 404
        assert app_client.get(f"/api/shared/{token}/predictions.csv").status_code == 404
        assert app_client.get(f"/api/shared/{token}/predictions.csv", params={"format": "parquet"}).status_code == 404
    assert again == []
    now[0] += 61  # forgotten after a minute: the database is asked again
    with queries(app_resources.engine) as later:
        assert app_client.get(f"/api/shared/{token}").status_code == 404
    assert later


def test_a_burst_of_unknown_tokens_is_refused_before_the_database_while_live_links_answer(
    app_client: TestClient, app_resources: Resources, now: list[float], dataset_id: str
) -> None:
    share = app_client.post(f"/api/datasets/{dataset_id}/share").json()
    statuses = [app_client.get(f"/api/shared/{made_up()}").status_code for _ in range(25)]
    assert statuses == [404] * 20 + [429] * 5  # the burst, then nothing until the bucket refills
    with queries(app_resources.engine) as refused_queries:
        refused = app_client.get(f"/api/shared/{made_up()}/predictions.csv")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1" and refused_queries == []
    assert refused.json()["error"]["code"] == "rate_limited"
    live = app_client.get(share["url"])  # the same client: a link known live here is never refused
    assert live.status_code == 200 and live.json()["dataset"]["id"] == dataset_id
    # Another client has a bucket of its own, and opens a link this process has not seen (made by another one).
    token, created = made_up(), datetime.now(UTC)
    with app_resources.sessions() as session:
        records.insert_share(session, token_hash=datasets_service._hash(token), dataset_id=dataset_id,
                             created_at=created, expires_at=created + timedelta(days=1))  # fmt: skip
        session.commit()
    other = TestClient(app_client.app, client=("192.0.2.7", 40000))
    assert other.get(f"/api/shared/{token}").status_code == 200
    assert other.get(f"/api/shared/{made_up()}").status_code == 404
    now[0] += 1.0  # ten unknown lookups a second
    assert [app_client.get(f"/api/shared/{made_up()}").status_code for _ in range(11)] == [404] * 10 + [429]
    assert app_client.get(f"/api/shared/{token}").status_code == 200  # seen live here now: past the limit


def test_a_share_created_after_its_token_was_probed_opens_at_once(
    app_client: TestClient, service: DatasetService, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = made_up()
    assert [app_client.get(f"/api/shared/{token}").status_code for _ in range(2)] == [404, 404]
    monkeypatch.setattr(datasets_service, "secrets", SimpleNamespace(token_urlsafe=lambda _: token))
    share = app_client.post(f"/api/datasets/{dataset_id}/share").json()
    assert share["token"] == token
    assert app_client.get(share["url"]).status_code == 200
    assert app_client.delete(f"/api/shares/{token}").status_code == 204
    assert app_client.get(share["url"]).status_code == 404  # revoked: answered at once, and remembered
    assert datasets_service._hash(token) in service.share_lookups.misses


def test_what_is_remembered_is_bounded() -> None:
    clock = [0.0]
    lookups = ShareLookups(size=3, ttl=60, rate=10, burst=2, clock=lambda: clock[0])
    for n in range(5):
        lookups.missed(f"hash-{n}", client=f"192.0.2.{n}")
    assert len(lookups.misses) == 3 and "hash-0" not in lookups.misses and "hash-4" in lookups.misses
    assert len(lookups.buckets._buckets) == 3  # the clients' buckets too: a forgotten client starts full again
    lookups.missed("hash-5", client="a")
    lookups.missed("hash-6", client="a")
    with pytest.raises(datasets_service.TooManyLookups) as refused:
        lookups.may_query("hash-7", client="a")
    assert refused.value.headers == {"Retry-After": "1"} and refused.value.status_code == 429
    lookups.found("hash-8")
    assert lookups.may_query("hash-8", client="a")  # a live hash is asked about whatever the client's rate
    assert not lookups.may_query("hash-6", client="b")  # a remembered miss is not asked about
    clock[0] += 60
    assert "hash-6" not in lookups.misses and lookups.may_query("hash-6", client="b")
