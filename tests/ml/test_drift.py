import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.ml.artifacts import METADATA_FILE, file_version, read_metadata
from backend.ml.congestion.model import CongestionModel
from backend.ml.drift import (
    FIELD_KINDS,
    MIN_ROWS,
    OTHER,
    PREDICTION_FIELDS,
    UNSEEN,
    build_reference,
    compare,
    drift_of,
    input_columns,
    prediction_columns,
    reference_for_congestion,
    reference_for_eclo,
)
from backend.ml.drift_defaults import MAX_REFERENCE_BYTES, REFERENCE_KEY
from backend.ml.eclo.model import EcloModel

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"speed": "numeric", "weather": "categorical"}
WEATHER = ["맑음", "비", "흐림", "눈"]
WEATHER_SHARES = [0.7, 0.2, 0.08, 0.02]


def sample(rng: np.random.Generator, n: int, mean: float = 60.0, shares: list[float] = WEATHER_SHARES) -> dict:
    return {"speed": rng.normal(mean, 8.0, n).tolist(), "weather": rng.choice(WEATHER, n, p=shares).tolist()}


def by_field(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["field"]: f for f in result["fields"] + result["predictions"]}


@pytest.fixture
def reference() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    return build_reference(sample(rng, 5000), KINDS, {"score": rng.gamma(2.0, 1.5, 5000).tolist()})


def test_reference_is_json_with_deciles_and_shares(reference: dict[str, Any]) -> None:
    json.dumps(reference, allow_nan=False)
    speed, weather = reference["fields"]["speed"], reference["fields"]["weather"]
    assert len(speed["edges"]) == 9 and len(speed["shares"]) == 10
    assert all(s == pytest.approx(0.1, abs=0.002) for s in speed["shares"])
    assert speed["mean"] == pytest.approx(60.0, abs=0.5)
    assert list(weather["shares"]) == WEATHER
    assert sum(weather["shares"].values()) == pytest.approx(1.0)
    assert reference["predictions"]["score"]["n"] == 5000


def test_missing_values_are_skipped_and_counted() -> None:
    reference = build_reference(
        {"speed": [1.0, None, float("nan"), "", 2.0, "3"], "weather": ["비", None, "", " ", "맑음", float("nan")]},
        KINDS,
        {},
    )
    assert reference["fields"]["speed"]["n"] == 3 and reference["fields"]["speed"]["missing_share"] == 0.5
    assert reference["fields"]["weather"]["n"] == 2 and reference["fields"]["weather"]["missing_share"] == 0.666667


def test_few_distinct_values_deduplicate_the_edges() -> None:
    field = build_reference({"hour": [8] * 50 + [18] * 50}, {"hour": "numeric"}, {})["fields"]["hour"]
    assert field["edges"] == [8.0, 18.0]
    assert field["shares"] == [0.5, 0.5, 0.0]


def test_categories_past_the_limit_are_pooled() -> None:
    values = [f"s{i:03}" for i in range(150) for _ in range(2 if i < 100 else 1)]
    shares = build_reference({"sensor": values}, {"sensor": "categorical"}, {})["fields"]["sensor"]["shares"]
    assert len(shares) == 101 and shares[OTHER] == pytest.approx(50 / 250)
    # A recorded value among the pooled ones falls in the pooled share, not in a bucket of its own.
    result = by_field(compare({"fields": {"sensor": {"kind": "categorical", "n": 250, "shares": shares}}},
                              {"sensor": values}, {}))["sensor"]  # fmt: skip
    assert result["psi"] == pytest.approx(0.0, abs=1e-6) and not result["drifted"]
    assert result["bins"][-1]["label"] == OTHER


def test_a_sample_of_the_reference_distribution_is_not_flagged(reference: dict[str, Any]) -> None:
    rng = np.random.default_rng(2)
    result = compare(reference, sample(rng, 2000), {"score": rng.gamma(2.0, 1.5, 2000).tolist()})
    fields = by_field(result)
    for name in ("speed", "weather", "score"):
        assert not fields[name]["drifted"] and fields[name]["psi"] < 0.05, fields[name]
        assert fields[name]["n"] == 2000 and fields[name]["note"] is None
    assert fields["weather"]["unseen_share"] == 0.0
    assert result["drifted_share"] == 0.0 and result["rows"] == 2000 and result["threshold"] == 0.2
    json.dumps(result, allow_nan=False)


def test_a_mean_shifted_by_one_sd_is_flagged(reference: dict[str, Any]) -> None:
    result = compare(reference, sample(np.random.default_rng(3), 2000, mean=68.0), {})
    speed = by_field(result)["speed"]
    assert speed["drifted"] and speed["psi"] >= 0.2
    assert speed["p_value"] < 1e-6
    assert speed["mean"] == pytest.approx(68.0, abs=0.5) and speed["reference_mean"] == pytest.approx(60.0, abs=0.5)
    assert [b["label"] for b in speed["bins"]][0].startswith("<= ") and speed["bins"][-1]["label"].startswith("> ")
    assert sum(b["recorded_share"] for b in speed["bins"]) == pytest.approx(1.0)
    assert result["drifted_share"] == 0.5  # speed of speed and weather


def test_moved_category_shares_are_flagged(reference: dict[str, Any]) -> None:
    result = compare(reference, sample(np.random.default_rng(4), 2000, shares=[0.3, 0.5, 0.1, 0.1]), {})
    weather = by_field(result)["weather"]
    assert weather["drifted"] and weather["psi"] >= 0.2 and weather["unseen_share"] == 0.0


def test_new_categories_are_flagged_in_the_unseen_bucket(reference: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    recorded = sample(rng, 2000)
    recorded["weather"] = [w if rng.random() < 0.7 else "황사" for w in recorded["weather"]]
    weather = by_field(compare(reference, recorded, {}))["weather"]
    assert weather["drifted"] and weather["psi"] >= 0.2
    assert weather["unseen_share"] == pytest.approx(0.3, abs=0.03)
    assert weather["bins"][-1]["label"] == UNSEEN
    assert weather["bins"][-1]["reference_share"] == 0.0
    assert weather["bins"][-1]["recorded_share"] == weather["unseen_share"]


def test_values_beyond_the_reference_fall_in_the_open_outer_bins(reference: dict[str, Any]) -> None:
    speed = by_field(compare(reference, {"speed": [-1000.0] * 40 + [1000.0] * 60}, {}))["speed"]
    assert speed["bins"][0]["recorded_share"] == 0.4 and speed["bins"][-1]["recorded_share"] == 0.6


def test_too_few_rows_are_not_flagged(reference: dict[str, Any]) -> None:
    speed = by_field(compare(reference, {"speed": [200.0] * (MIN_ROWS - 1)}, {}))["speed"]
    assert speed["psi"] >= 0.2 and not speed["drifted"]
    assert "too few" in speed["note"]


def test_fields_absent_from_the_recorded_data_have_n_0(reference: dict[str, Any]) -> None:
    result = compare(reference, {"speed": np.random.default_rng(6).normal(60, 8, 500).tolist()}, {})
    fields = by_field(result)
    for name in ("weather", "score"):
        assert fields[name]["n"] == 0 and fields[name]["psi"] is None and not fields[name]["drifted"]
        assert fields[name]["note"]
    assert result["rows"] == 500
    empty = compare(reference, {}, {})
    assert empty["rows"] == 0 and empty["drifted_share"] == 0.0


def test_unknown_kinds_have_no_drift_columns() -> None:
    assert input_columns("echo", [{"x": 1}]) == {}
    assert prediction_columns("echo", [{"y": 1}]) == {}


# Realistic request bodies of each kind.

DISTRICTS = ["달서구", "북구", "수성구", "동구", "중구"]
ROADS = ["단일로 - 기타", "교차로 - 교차로안", "교차로 - 교차로부근", "기타 - 기타"]


def eclo_bodies(rng: np.random.Generator, n: int, night: bool = False, coarse: bool = False) -> list[dict]:
    hours = rng.integers(0, 6, n) if night else np.clip(rng.normal(14, 4, n).round(), 0, 23).astype(int)
    bodies = []
    for i in range(n):
        district, road = DISTRICTS[rng.integers(len(DISTRICTS))], ROADS[rng.integers(len(ROADS))]
        bodies.append({
            "weather": str(rng.choice(WEATHER, p=WEATHER_SHARES)),
            "road_surface": "건조" if rng.random() < 0.9 else "젖음/습기",
            "road_type": road.split(" - ")[0] if coarse else road,
            "accident_type": str(rng.choice(["차대차", "차대사람", "차량단독"], p=[0.75, 0.2, 0.05])),
            "district": district if coarse else f"대구광역시 {district} 어느동{rng.integers(20)}",
            "day_of_week": str(rng.choice(["월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"])),
            "accident_hour": int(hours[i]),
            "accident_year": 2024,
            "accident_month": int(rng.integers(1, 13)),
            "accident_day": int(rng.integers(1, 29)),
        })  # fmt: skip
    return bodies


def eclo_outputs(rng: np.random.Generator, n: int) -> list[dict]:
    return [{"eclo": float(e), "p_severe": float(p), "risk_level": "low"}
            for e, p in zip(rng.gamma(2.0, 2.5, n), rng.beta(2, 8, n), strict=True)]  # fmt: skip


def test_eclo_columns_of_request_bodies() -> None:
    columns = input_columns("eclo", [
        {"district": "대구광역시 중구 동성로1가", "road_type": "교차로 - 교차로안", "accident_hour": "7",
         "weather": ""},
        {"district": "중구", "road_type": "교차로", "accident_hour": True, "accident_month": 12},
        "not an object",
    ])  # fmt: skip
    assert list(columns) == list(FIELD_KINDS["eclo"])
    assert columns["district"] == ["중구", "중구", None] and columns["road_type"] == ["교차로", "교차로", None]
    assert columns["accident_hour"] == [7.0, None, None] and "accident_month" not in columns
    assert columns["weather"] == [None, None, None]
    assert prediction_columns("eclo", [{"eclo": 3.5, "p_severe": 0.2}, {"error": "x"}]) == {"eclo": [3.5, None]}


def test_eclo_bodies_of_the_reference_distribution_are_not_flagged() -> None:
    rng = np.random.default_rng(10)
    reference = reference_for_eclo(eclo_bodies(rng, 4000), eclo_outputs(rng, 4000))
    assert set(reference["fields"]) == set(FIELD_KINDS["eclo"])
    assert set(reference["predictions"]) == set(PREDICTION_FIELDS["eclo"])
    # The same accidents sent with the coarse district and road type: no drift.
    result = drift_of("eclo", reference, eclo_bodies(rng, 1500, coarse=True), eclo_outputs(rng, 1500))
    assert [f["field"] for f in result["fields"] if f["drifted"]] == []
    assert all(f["n"] == 1500 for f in result["fields"] + result["predictions"])
    assert result["drifted_share"] == 0.0


def test_eclo_bodies_at_night_are_flagged() -> None:
    rng = np.random.default_rng(11)
    reference = reference_for_eclo(eclo_bodies(rng, 4000), eclo_outputs(rng, 4000))
    fields = by_field(drift_of("eclo", reference, eclo_bodies(rng, 1500, night=True), eclo_outputs(rng, 1500)))
    assert fields["accident_hour"]["drifted"] and fields["accident_hour"]["psi"] >= 0.2
    assert not fields["weather"]["drifted"]


SENSORS = [f"7{i:05}" for i in range(20)]
START = datetime(2012, 3, 1)


def congestion_bodies(rng: np.random.Generator, n: int, mean: float = 60.0) -> list[dict]:
    """Request bodies as clients send them: zoned ISO times or epoch seconds, flat or nested speeds, in any
    order; some without readings (the server read the stored ones)."""
    bodies = []
    for _ in range(n):
        sensor = SENSORS[min(int(rng.exponential(5)), len(SENSORS) - 1)]
        if rng.random() < 0.1:
            bodies.append({"sensor_id": sensor})
            continue
        end = START + timedelta(minutes=5 * int(rng.integers(12, 2016)))
        speeds = np.clip(rng.normal(mean, 8, 12), 1, 120)
        readings = []
        for k, speed in enumerate(speeds):
            moment = end - timedelta(minutes=5 * (11 - k))
            stamp = moment.isoformat() + "-08:00"
            readings.append({"timestamp": stamp, "traffic_data": {"speed_mph": float(speed)}} if k % 2
                            else {"timestamp": stamp, "speed_mph": float(speed)})  # fmt: skip
        order = rng.permutation(12)
        bodies.append({"sensor_id": sensor, "recent": [readings[i] for i in order], "neighbour_readings": {}})
    return bodies


def congestion_outputs(rng: np.random.Generator, n: int, mean: float = 60.0) -> list[dict]:
    return [{"sensor_id": "x", "forecasts": [{"horizon_minutes": 15, "speed_mph": float(s)},
                                              {"horizon_minutes": 30, "speed_mph": 0.0}]}
            for s in rng.normal(mean, 8, n)]  # fmt: skip


def test_congestion_columns_of_request_bodies() -> None:
    columns = input_columns("congestion", [
        {"sensor_id": "773869", "recent": [
            {"timestamp": "2012-03-01T08:05:00-08:00", "speed_mph": 0},  # the newest: missing speed
            {"timestamp": "2012-03-01T08:00:00-08:00", "traffic_data": {"speed_mph": 58.0}},
            {"timestamp": "2012-03-01T07:55:00-08:00", "speed_mph": 61.5},
        ]},
        {"sensor_id": 773869, "readings": [{"timestamp": 1330617600, "speed_mph": 40}]},  # epoch seconds, UTC
        {"sensor_id": "773869"},  # read from the database: no readings recorded
        {"sensor_id": None, "recent": [{"timestamp": "not a time", "speed_mph": 50}]},
    ])  # fmt: skip
    assert columns == {
        "sensor_id": ["773869", "773869", "773869", None],
        "speed_now": [58.0, 40.0, None, None],
        "hour": [8.0, 16.0, None, None],
    }
    outputs = [{"forecasts": [{"horizon_minutes": 15, "speed_mph": 55.5}]}, {"forecasts": []}, {}]
    assert prediction_columns("congestion", outputs) == {"speed_mph_15": [55.5, None, None]}


def test_congestion_bodies_of_the_reference_distribution_are_not_flagged() -> None:
    rng = np.random.default_rng(20)
    reference = reference_for_congestion(congestion_bodies(rng, 4000), congestion_outputs(rng, 4000))
    assert reference["fields"]["speed_now"]["missing_share"] == pytest.approx(0.1, abs=0.02)
    result = drift_of("congestion", reference, congestion_bodies(rng, 1500), congestion_outputs(rng, 1500))
    assert [f["field"] for f in result["fields"] + result["predictions"] if f["drifted"]] == []
    assert by_field(result)["speed_now"]["n"] == pytest.approx(1350, abs=60)


def test_slow_congestion_bodies_are_flagged() -> None:
    rng = np.random.default_rng(21)
    reference = reference_for_congestion(congestion_bodies(rng, 4000), congestion_outputs(rng, 4000))
    result = by_field(drift_of("congestion", reference, congestion_bodies(rng, 1500, mean=40.0),
                               congestion_outputs(rng, 1500, mean=40.0)))  # fmt: skip
    assert result["speed_now"]["drifted"] and result["speed_now"]["psi"] >= 0.2
    assert result["speed_mph_15"]["drifted"]
    assert not result["sensor_id"]["drifted"] and not result["hour"]["drifted"]


# The committed default models.


@pytest.mark.parametrize(
    ("kind", "load", "files"),
    [("eclo", EcloModel.load, ("model.txt", "severe.txt")), ("congestion", CongestionModel.load, ("model.txt",))],
)
def test_default_models_hold_a_reference_and_keep_their_version(kind: str, load: Any, files: tuple[str, ...]) -> None:
    folder = ROOT / "model" / kind
    metadata = read_metadata(folder)
    reference = metadata[REFERENCE_KEY]
    assert set(reference["fields"]) == set(FIELD_KINDS[kind])
    assert set(reference["predictions"]) == set(PREDICTION_FIELDS[kind])
    for name, field in (reference["fields"] | reference["predictions"]).items():
        assert field["kind"] == FIELD_KINDS[kind].get(name, "numeric") and field["n"] >= 1000, name
    assert len(json.dumps(reference, ensure_ascii=False, indent=1).encode()) < MAX_REFERENCE_BYTES
    assert list(metadata)[-1] == REFERENCE_KEY  # added after every key the training wrote
    assert (folder / METADATA_FILE).read_text(encoding="utf-8") == json.dumps(metadata, ensure_ascii=False, indent=1)
    version = file_version(*(folder / name for name in files))
    assert metadata["version"] == version
    assert load(folder).version == version
