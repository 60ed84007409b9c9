"""The spill file: records the database refused wait on disk, in order, and are replayed once it takes them; the
recorder puts them there and writes them once the database takes them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.db.migrate import upgrade
from backend.db.models import Prediction
from backend.db.recorder import Recorder, SpillFile
from backend.db.session import make_engine, session_factory


def test_entries_come_back_in_order_with_their_times(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill" / "records.jsonl", max_bytes=10_000)
    when = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    assert spill.append([("predictions", [{"eclo": 1.5, "created_at": when}]), ("batch_job", {"batch_id": "a"})])
    assert spill.append([("batch_state", {"batch_id": "a", "fields": {"finished_at": when}, "rows": None})])
    seen: list = []
    assert spill.replay(seen.extend) == 3  # one prediction row, one job, one state
    assert [kind for kind, _ in seen] == ["predictions", "batch_job", "batch_state"]
    assert seen[0][1][0]["created_at"] == when and seen[2][1]["fields"]["finished_at"] == when
    assert spill.size() == 0 and spill.replay(seen.extend) == 0


def test_a_failed_replay_keeps_the_file_and_a_full_file_refuses(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "records.jsonl", max_bytes=200)
    assert spill.append([("batch_job", {"batch_id": "b" * 50})])
    size = spill.size()

    def database_away(_: list) -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        spill.replay(database_away)
    assert spill.size() == size
    assert not spill.append([("batch_job", {"batch_id": "c" * 200})])  # over max_bytes: refused, counted by the caller
    assert spill.size() == size


def test_appends_do_not_wait_for_a_replay_and_are_kept_for_the_next(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "records.jsonl", max_bytes=100_000)
    spill.append([("batch_job", {"batch_id": "old"})])
    appended = threading.Event()

    def slow_database(entries: list) -> None:  # a long replay: the database takes its time
        writer = threading.Thread(target=lambda: (spill.append([("batch_job", {"batch_id": "new"})]), appended.set()))
        writer.start()
        assert appended.wait(2), "an append waited for the replay"
        writer.join()
        assert [payload["batch_id"] for _, payload in entries] == ["old"]

    assert spill.replay(slow_database) == 1
    later: list = []
    assert spill.replay(later.extend) == 1 and later[0][1]["batch_id"] == "new"


def test_the_recorder_spills_what_the_database_refuses_and_writes_it_once_it_takes_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'late.db'}"  # no tables yet: every write is refused
    engine = make_engine(url)
    sessions = session_factory(engine)
    recorder = Recorder(sessions, SpillFile(tmp_path / "spill" / "records.jsonl", 10**8))
    row = {"model_name": "eclo", "model_version": "v1", "inputs": {}, "eclo": 1.0, "risk_level": "low",
           "latency_ms": 0.5, "cached": False, "request_id": None}  # fmt: skip
    try:
        for _ in range(30):
            recorder.record_prediction({**row, "created_at": datetime.now(UTC)})
        recorder.flush()
        assert recorder.stats()["spilled"] == 30 and recorder.stats()["spill_bytes"] > 0
        upgrade(url)
        recorder.record_prediction({**row, "created_at": datetime.now(UTC)})
        recorder.flush()
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(Prediction)) == 31
        assert recorder.stats()["written"] == 31 and recorder.stats()["spill_bytes"] == 0
    finally:
        engine.dispose()
