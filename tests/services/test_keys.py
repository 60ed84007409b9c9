"""The keys the API knows: read from the database at most every `ttl_seconds`, kept while it is down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import DependencyUnavailable, Unauthorized
from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory
from backend.services.keys import KeyDirectory, Principal, create_key, is_active, parse_scopes, revoke_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    return session_factory(make_engine(url))


def _broken() -> Session:
    raise OperationalError("SELECT", {}, Exception("connection refused"))


def test_a_revoked_key_is_refused_once_the_cache_time_has_passed(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        row, key = create_key(session, "analyst", ["predict", "read"])
    clock = Clock()
    keys = KeyDirectory(sessions, ttl_seconds=5, clock=clock)
    principal = asyncio.run(keys.authenticate(key))
    assert principal.key_id == row.id and principal.scopes == {"predict", "read"}
    with sessions() as session:
        assert revoke_key(session, row.id) and not revoke_key(session, row.id)
        assert not is_active(session, key)
    clock.now += 4
    assert asyncio.run(keys.authenticate(key)).key_id == row.id  # within the cache time
    clock.now += 1
    with pytest.raises(Unauthorized):
        asyncio.run(keys.authenticate(key))


def test_keys_made_or_revoked_through_the_directory_count_at_once(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        gone, gone_key = create_key(session, "a", ["read"])
    keys = KeyDirectory(sessions, ttl_seconds=3600, clock=Clock(), unknown_reread_seconds=0.01)
    assert asyncio.run(keys.authenticate(gone_key)).key_id == gone.id
    with sessions() as session:
        kept, kept_key = create_key(session, "b", ["read"])
        keys.remember(kept)
        assert revoke_key(session, gone.id)  # as DELETE /api/keys/{id} does before it tells the directory
    keys.forget(gone.id)
    with pytest.raises(Unauthorized):
        asyncio.run(keys.authenticate(gone_key))
    assert asyncio.run(keys.authenticate(kept_key)).key_id == kept.id


class CountedSessions:
    """A session factory counting the reads of the keys table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.reads = 0

    def __call__(self) -> Session:
        self.reads += 1
        return self.sessions()


def test_a_key_made_by_another_process_works_once_the_reread_interval_has_passed(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        _, old_key = create_key(session, "old", ["read"])
    counted, clock = CountedSessions(sessions), Clock()
    keys = KeyDirectory(counted, ttl_seconds=3600, clock=clock, unknown_reread_seconds=1.0)  # type: ignore[arg-type]
    asyncio.run(keys.authenticate(old_key))
    with sessions() as session:
        new, new_key = create_key(session, "new", ["read"])  # as the CLI does: this directory was not told
    clock.now += 0.5
    with pytest.raises(Unauthorized):  # read half a second ago: refused at once, no read
        asyncio.run(keys.authenticate(new_key))
    assert counted.reads == 1
    clock.now += 0.5
    assert asyncio.run(keys.authenticate(new_key)).key_id == new.id
    assert counted.reads == 2


def test_made_up_ids_are_refused_at_once_and_read_the_table_once_per_interval(
    sessions: sessionmaker[Session],
) -> None:
    """An unknown id costs what a wrong secret costs: no request waits out the re-read interval."""
    with sessions() as session:
        _, key = create_key(session, "old", ["read"])
    counted = CountedSessions(sessions)
    keys = KeyDirectory(counted, ttl_seconds=3600)  # type: ignore[arg-type]  # the API's 1 s re-read interval
    asyncio.run(keys.authenticate(key))
    forged = [f"tpk_{i:012x}_{'x' * 43}" for i in range(50)]

    async def one_by_one() -> list[float]:
        took = []
        for made_up in forged:
            started = time.perf_counter()
            with pytest.raises(Unauthorized):
                await keys.authenticate(made_up)
            took.append(time.perf_counter() - started)
        return took

    took = asyncio.run(one_by_one())
    assert max(took) < 0.05 and sum(took) < 0.25, took
    assert counted.reads == 1  # all within the interval of the first read

    async def at_once() -> list[BaseException | Principal]:
        return await asyncio.gather(*(keys.authenticate(made_up) for made_up in forged), return_exceptions=True)

    time.sleep(1.0)
    started = time.perf_counter()
    outcomes = asyncio.run(at_once())
    assert time.perf_counter() - started < 0.25
    assert all(isinstance(outcome, Unauthorized) for outcome in outcomes)
    assert counted.reads == 2  # fifty unknown ids at once, once the interval has passed: one read


def test_a_wrong_secret_of_a_known_id_is_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        _, key = create_key(session, "analyst", ["predict"])
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(Unauthorized):
        asyncio.run(KeyDirectory(sessions, ttl_seconds=5).authenticate(forged))


def test_keys_read_before_keep_working_while_the_database_is_down(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        _, key = create_key(session, "analyst", ["predict"])
    clock = Clock()
    keys = KeyDirectory(sessions, ttl_seconds=5, clock=clock)
    asyncio.run(keys.authenticate(key))
    keys.sessions = _broken  # type: ignore[assignment]
    clock.now += 60
    assert asyncio.run(keys.authenticate(key)).name == "analyst"


def test_without_any_read_keys_a_database_outage_is_a_503(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        _, key = create_key(session, "analyst", ["predict"])
    with pytest.raises(DependencyUnavailable):
        asyncio.run(KeyDirectory(_broken, ttl_seconds=5).authenticate(key))  # type: ignore[arg-type]


def test_scopes_are_checked_and_ordered() -> None:
    assert parse_scopes("read, predict") == ["predict", "read"]
    for bad in ("", "write", "predict,root"):
        with pytest.raises(ValueError, match="predict, read, admin"):
            parse_scopes(bad)
