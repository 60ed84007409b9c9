"""The in-process congestion predictor: single and many, with and without neighbours, bad rows named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backend.ml.congestion.loaders import read_speeds
from backend.ml.congestion.model import (
    LEVELS,
    CongestionModel,
    _align_checked,
    _align_plain,
    align,
    congestion_level,
)
from backend.ml.errors import FieldError, InvalidRow
from backend.ml.kinds import MODEL_KINDS
from backend.ml.registry import ModelRegistry


@pytest.fixture(scope="module")
def model(congestion_model_dir: Path) -> CongestionModel:
    return CongestionModel.load(congestion_model_dir)


@pytest.fixture(scope="module")
def speeds(small_network: dict[str, Path]) -> pd.DataFrame:
    return read_speeds(small_network["speeds"])


def _readings(speeds: pd.DataFrame, sensor: str, end: int) -> list[dict]:
    return [{"timestamp": speeds.index[i].isoformat(), "speed_mph": float(speeds[sensor].iloc[i])}
            for i in range(end - 11, end + 1)]  # fmt: skip


def _row(model: CongestionModel, speeds: pd.DataFrame, sensor: str, end: int, neighbours: bool = True) -> dict:
    row = {"sensor_id": sensor, "readings": _readings(speeds, sensor, end)}
    if neighbours:
        row["neighbour_readings"] = {m: _readings(speeds, m, end) for m in model.neighbours[sensor]}
    return row


def test_predict_many_equals_predict_one(model: CongestionModel, speeds: pd.DataFrame) -> None:
    rows = [_row(model, speeds, s, 500 + 7 * i) for i, s in enumerate(list(speeds.columns) * 2)]
    many = model.predict_many(rows)
    assert [m.to_dict() for m in many] == [model.predict_one(r).to_dict() for r in rows]
    answer = many[0].to_dict()
    assert set(answer) == {"sensor_id", "model_version", "as_of", "readings_used", "forecasts"}
    assert [f["horizon_minutes"] for f in answer["forecasts"]] == [15, 30, 60]
    assert answer["model_version"] == model.version and answer["forecasts"][0]["level"] in {b["level"] for b in LEVELS}
    assert answer["readings_used"] == len(rows[0]["readings"])


def test_it_answers_without_neighbours(model: CongestionModel, speeds: pd.DataFrame) -> None:
    sensor = speeds.columns[3]
    alone = model.predict_one(_row(model, speeds, sensor, 2000, neighbours=False))
    together = model.predict_one(_row(model, speeds, sensor, 2000))
    assert all(0 < v < 120 for v in alone.speeds) and alone.as_of == together.as_of
    assert alone.speeds != together.speeds  # the neighbours' readings are used when given


def test_a_jammed_sensor_is_forecast_slow(model: CongestionModel) -> None:
    row = {"sensor_id": model.sensor_ids[0], "readings": [
        {"timestamp": f"2012-03-20T08:{m:02d}:00", "speed_mph": 12.0} for m in range(0, 60, 5)]}  # fmt: skip
    forecast = model.predict_one(row)
    assert forecast.speeds[0] < 30 and forecast.levels[0] in ("heavy", "severe")


def test_nested_readings_and_gaps(model: CongestionModel, speeds: pd.DataFrame) -> None:
    sensor = speeds.columns[0]
    flat = _row(model, speeds, sensor, 900, neighbours=False)
    readings = [{"timestamp": r["timestamp"], "traffic_data": {"speed_mph": r["speed_mph"]}} for r in flat["readings"]]
    nested = {"sensor_id": sensor, "readings": readings}
    assert model.predict_one(nested) == model.predict_one(flat)
    gappy = {**flat, "readings": flat["readings"][::3] + [{**flat["readings"][-1], "speed_mph": 0}]}
    assert model.predict_one(gappy).sensor_id == sensor  # missing slots and 0 = missing are allowed


def test_bad_rows_name_their_fields(model: CongestionModel) -> None:
    outcomes = model.predict_many([
        {"sensor_id": "nope", "readings": [{"timestamp": "2012-03-01T00:00:00", "speed_mph": 50}]},
        {"sensor_id": model.sensor_ids[0], "readings": [{"timestamp": "yesterday", "speed_mph": 50}]},
        {"sensor_id": model.sensor_ids[0], "readings": [{"timestamp": "2012-03-01T00:00:00", "speed_mph": 500}]},
        {"sensor_id": model.sensor_ids[0], "readings": []},
    ])  # fmt: skip
    assert all(isinstance(o, InvalidRow) for o in outcomes)
    fields = [[e.field for e in o.errors] for o in outcomes]  # type: ignore[union-attr]
    assert fields == [["sensor_id"], ["readings[0].timestamp"], ["readings[0].speed_mph"], ["readings"]]
    assert [o.index for o in outcomes] == [0, 1, 2, 3]  # type: ignore[union-attr]


def test_levels_follow_the_free_flow_ratio() -> None:
    assert [congestion_level(v, 60.0) for v in (60, 51, 36, 24, 5)] == ["free", "free", "moderate", "heavy", "severe"]


def test_the_registry_serves_both_kinds(congestion_model_dir: Path, small_model_root: Path, tmp_path: Path) -> None:
    (tmp_path / "eclo").symlink_to(small_model_root / "eclo", target_is_directory=True)
    (tmp_path / "congestion").symlink_to(congestion_model_dir, target_is_directory=True)
    registry = ModelRegistry(tmp_path, MODEL_KINDS)
    assert registry.names() == ["congestion", "eclo"]
    info = registry.get("congestion").info()
    assert info["kind"] == "congestion" and info["sensors"] == 24 and info["levels"] == LEVELS
    assert info["metrics"]["mae_15"] < info["metrics"]["baseline_last_mae_15"]


ALIGN_CASES = [
    [{"timestamp": f"2024-03-04T08:{m:02d}:00", "speed_mph": 40.0 + m} for m in range(0, 60, 5)],
    [{"timestamp": f"2024-03-04T08:{m:02d}:00", "speed_mph": m} for m in (55, 0, 10, 20, 5)],  # ints, a 0, gaps
    [{"timestamp": f"2024-03-04T08:{m:02d}:00+09:00", "speed_mph": 30.5} for m in (50, 40, 45)],  # out of order
    [{"timestamp": f"2024-03-04T08:{m:02d}:00", "speed_mph": 33.0} for m in (0, 2, 3, 7, 58)],  # off the grid
    [{"timestamp": "2024-03-04T07:00:00", "speed_mph": 20.0}, {"timestamp": "2024-03-04T08:00:00", "speed_mph": 21.0}],
]


@pytest.mark.parametrize("readings", ALIGN_CASES)
@pytest.mark.parametrize("end", [None, 1709540100.0])
def test_the_quick_alignment_equals_the_checked_one(readings: list[dict], end: float | None) -> None:
    quick = _align_plain(readings, end, {})
    assert quick is not None
    assert quick == _align_checked(readings, "readings", [], end, {})
    assert quick == align(readings, "readings", [], end)


def test_what_the_quick_alignment_declines_the_checked_one_reads_or_names() -> None:
    nested = [{"timestamp": "2024-03-04T08:00:00", "traffic_data": {"speed_mph": 41.0}}]
    assert _align_plain(nested, None, {}) is None and align(nested, "readings", [])[0][-1] == 41.0
    for bad, field in (
        ([{"timestamp": "2024-03-04T08:00:00", "speed_mph": 41.0}, {"timestamp": "soon", "speed_mph": 1.0}],
         "readings[1].timestamp"),
        ([{"timestamp": "2024-03-04T08:00:00", "speed_mph": True}], "readings[0].speed_mph"),
        ([{"timestamp": "2024-03-04T08:00:00", "speed_mph": 41.0}, ["2024-03-04T08:05:00", 40.0]], "readings[1]"),
        ([{"timestamp": ["2024"], "speed_mph": 41.0}], "readings[0].timestamp"),
        ({"timestamp": "2024-03-04T08:00:00"}, "readings"),
    ):  # fmt: skip
        errors: list[FieldError] = []
        assert _align_plain(bad, None, {}) is None
        align(bad, "readings", errors)
        assert [e.field for e in errors] == [field]
