"""A new congestion version trained from stored readings and compared with a champion on the same test windows."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backend.ml.artifacts import MODEL_FILE, file_version
from backend.ml.congestion.loaders import neighbours_from_edges
from backend.ml.congestion.model import CongestionModel
from backend.ml.congestion.network import Network, generate_network
from backend.ml.congestion.versions import compare, speeds_frame, train_congestion_version
from backend.ml.errors import DataFileError

MINUTES = ("15", "30", "60")
ROLES = ("new", "champion", "copy_last", "historical_average")


def _quiet(_: str) -> None:
    pass


@dataclass
class Trained:
    network: Network
    stored: pd.DataFrame  # the network's speeds through speeds_frame, as the version was trained on them
    neighbours: dict[str, list[str]]
    champion_dir: Path
    out: Path
    metadata: dict[str, Any]


def _readings(frame: pd.DataFrame) -> list[tuple[str, datetime, float]]:
    """The table's non-missing readings as stored ones: UTC times."""
    return [(sensor, moment.to_pydatetime().replace(tzinfo=UTC), float(speed))
            for sensor in frame.columns for moment, speed in frame[sensor].items() if speed > 0]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A champion trained on 3 days of 6 of 10 generated sensors, then a version on a week of all 10 compared with
    it."""
    network = generate_network(weeks=1, seed=3, sensors=10)
    frame = network.speeds.round(2)
    ids = list(frame.columns)
    neighbours = neighbours_from_edges(network.edges, ids)
    root = tmp_path_factory.mktemp("congestion-versions")
    champion_dir, out = root / "champion", root / "new"
    champion_dir.mkdir()
    out.mkdir()
    known = ids[:6]
    train_congestion_version(frame.iloc[: 3 * 288][known], network.sensors, neighbours_from_edges(network.edges, known),
                             champion=None, out=champion_dir, data_source="generated", training_data={},
                             log=_quiet)  # fmt: skip
    stored = speeds_frame(_readings(frame), frame.index[0].to_pydatetime().replace(tzinfo=UTC),
                          frame.index[-1].to_pydatetime().replace(tzinfo=UTC))  # fmt: skip
    champion = CongestionModel.load(champion_dir)
    since = {"since": "2012-03-05"}
    metadata = train_congestion_version(stored, network.sensors, neighbours, champion=champion, out=out,
                                        data_source="readings", training_data=since, log=_quiet)  # fmt: skip
    return Trained(network, stored, neighbours, champion_dir, out, metadata)


def test_stored_readings_make_the_speed_table_back() -> None:
    frame = generate_network(weeks=1, seed=3, sensors=4).speeds.round(2).iloc[:300]
    start, end = frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime()
    rebuilt = speeds_frame(_readings(frame), start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
    pd.testing.assert_frame_equal(rebuilt, frame[sorted(frame.columns)], check_freq=False, check_names=False)
    assert rebuilt.index.tz is None and rebuilt.index.name == "timestamp"


def test_the_grid_is_utc_with_each_reading_on_its_nearest_step() -> None:
    seoul = timezone(timedelta(hours=9))
    since = datetime(2026, 3, 1, 9, 1, tzinfo=seoul)  # 00:01 UTC: the grid starts at 00:05
    readings = [
        ("b", datetime(2026, 3, 1, 0, 5, 40), 50.0),  # naive: UTC already
        ("b", datetime(2026, 3, 1, 9, 4, 50, tzinfo=seoul), 54.0),  # the same step: the mean
        ("a", datetime(2026, 3, 1, 0, 14, 0, tzinfo=UTC), 40.0),  # nearest step 00:15
        ("a", datetime(2026, 3, 1, 0, 20, tzinfo=UTC), 0.0),  # 0 mph: missing
        ("c", datetime(2026, 3, 1, 0, 0, tzinfo=UTC), 30.0),  # before the grid: dropped, and so is the sensor
        ("a", datetime(2026, 3, 1, 0, 30, tzinfo=UTC), 45.0),  # after it
    ]
    frame = speeds_frame(readings, since, datetime(2026, 3, 1, 0, 29, tzinfo=UTC))
    assert list(frame.columns) == ["a", "b"]
    assert list(frame.index) == list(pd.date_range("2026-03-01 00:05", "2026-03-01 00:25", freq="5min"))
    assert frame["b"].tolist() == [52.0, 0.0, 0.0, 0.0, 0.0]
    assert frame["a"].tolist() == [0.0, 0.0, 40.0, 0.0, 0.0]
    with pytest.raises(DataFileError, match="no five-minute step"):
        speeds_frame(readings, datetime(2026, 3, 1, 0, 1), datetime(2026, 3, 1, 0, 4))


def test_the_comparison_names_both_versions_and_scores_them_on_the_same_windows(trained: Trained) -> None:
    metadata, comparison = trained.metadata, trained.metadata["comparison"]
    champion = json.loads((trained.champion_dir / "metadata.json").read_text(encoding="utf-8"))
    assert comparison["new"]["version"] == metadata["version"] == file_version(trained.out / MODEL_FILE)
    assert comparison["champion"]["version"] == champion["version"] != metadata["version"]
    assert json.loads((trained.out / "metadata.json").read_text(encoding="utf-8")) == json.loads(json.dumps(metadata))
    assert metadata["training_data"] == {"since": "2012-03-05", "time_range": ["2012-03-05 00:00:00",
                                         "2012-03-11 23:55:00"], "steps": 2016, "sensors": 10,
                                         "readings": int((trained.network.speeds.to_numpy() > 0).sum())}  # fmt: skip
    # The champion knows 6 of the 10 sensors: the windows of the other 4 are left out of every figure.
    ends = comparison["test_windows"]["ends"]
    assert ends == metadata["split_windows"]["test"] and comparison["test_windows"]["stride"] == 1
    assert comparison["sensors"] == {"in_readings": 10, "compared": 6, "unknown_to_champion": 4}
    assert comparison["windows"] == 6 * ends and comparison["left_out"]["of_sensors_unknown_to_champion"] == 4 * ends
    assert comparison["left_out"]["refused"] == 0
    assert any("the 4 sensors it does not know" in note for note in comparison["notes"])
    assert not any("flatter" in note for note in comparison["notes"])  # it was trained on the first 3 days
    for minutes in MINUTES:
        assert 0.9 * 6 * ends < comparison["scored"][minutes] <= 6 * ends  # a missing target is never scored
        assert all(math.isfinite(comparison[role]["mae"][minutes]) for role in ROLES)
    assert comparison["new"]["mae"]["15"] < comparison["historical_average"]["mae"]["15"]


def test_a_champion_equal_to_the_new_version_scores_the_same(trained: Trained) -> None:
    new = CongestionModel.load(trained.out)
    comparison = compare(trained.stored, new, CongestionModel.load(trained.out), log=_quiet)
    assert comparison["champion"] == comparison["new"] and comparison["sensors"]["compared"] == 10
    assert comparison["left_out"]["windows"] == 0 and comparison["windows"] == 10 * comparison["test_windows"]["ends"]
    assert all(math.isfinite(comparison["new"]["mae"][m]) for m in MINUTES)
    # Run again, the comparison stored at training is what it was (the same windows, the same answers).
    again = compare(trained.stored, new, CongestionModel.load(trained.champion_dir), log=_quiet)
    stored = trained.metadata["comparison"]
    assert {k: v for k, v in again.items() if k != "notes"} == {k: v for k, v in stored.items() if k != "notes"}
    # On the first 5 days, the test windows are readings the version learnt from: said.
    early = compare(trained.stored.iloc[: 5 * 288], new, new, log=_quiet)
    assert any("its figures on them flatter it" in note for note in early["notes"])


def test_the_windows_are_sampled_beyond_the_cap(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backend.ml.congestion.versions.MAX_COMPARED_WINDOWS", 1000)
    new = CongestionModel.load(trained.out)
    comparison = compare(trained.network.speeds.round(2), new, None, log=_quiet)
    stride = comparison["test_windows"]["stride"]
    assert "champion" not in comparison and stride == math.ceil(comparison["test_windows"]["ends"] * 10 / 1000)
    assert comparison["windows"] == 10 * comparison["test_windows"]["ends_compared"] <= 1000


def test_too_few_steps_or_sensors_are_refused_with_the_numbers(trained: Trained, tmp_path: Path) -> None:
    frame, sensors = trained.network.speeds, trained.network.sensors

    def train(table: pd.DataFrame) -> None:
        train_congestion_version(table, sensors, trained.neighbours, champion=None, out=tmp_path, data_source="x",
                                 training_data={}, log=_quiet)  # fmt: skip

    with pytest.raises(DataFileError, match=r"288 five-minute steps \(2012-03-05 00:00:00 to 2012-03-05 23:55:00\), "
                                            r"1.0 days; at least 576 \(2 days\)"):  # fmt: skip
        train(frame.iloc[:288])
    one = frame.copy()
    one.iloc[:, 1:] = 0.0
    with pytest.raises(DataFileError, match=r"1 with readings in the range \(10 columns\); at least 2"):
        train(one)
    with pytest.raises(DataFileError, match="absent from the sensor table: nowhere"):
        train(frame.rename(columns={frame.columns[0]: "nowhere"}))
    assert not any(tmp_path.iterdir())
