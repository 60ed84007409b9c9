"""Engine and sessions from the settings URL: `postgresql+psycopg2://...` or `sqlite:///...`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import DependencyUnavailable

CONNECT_TIMEOUT_SECONDS = 2


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str) -> Engine:
    """orjson serialises JSON columns: the prediction records are written in bulk, and stdlib json is slow."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, json_serializer=_json_dumps, connect_args={"check_same_thread": False, "timeout": 5}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:  # noqa: ANN001
            # WAL lets the API read while a worker writes, and with synchronous=NORMAL a commit does not wait
            # for fsync (a power cut may lose the last records, never corrupt the file). Foreign keys are off by
            # default in SQLite.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(
        url,
        json_serializer=_json_dumps,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work for workers and background writers: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("select 1"))


@contextmanager
def guarded_session(sessions: sessionmaker[Session], what: str) -> Iterator[Session]:
    """A session whose database errors are the 503 the routes answer: "cannot `what`"."""
    try:
        with sessions() as session:
            yield session
    except SQLAlchemyError as exc:
        raise DependencyUnavailable("database", f"cannot {what}") from exc
