import json
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from backend.core.config import PROJECT_ROOT
from backend.ml.dacon import api_rows, read_text_csv
from backend.ml.errors import InvalidRow
from backend.ml.kinds import MODEL_KINDS
from backend.ml.predictor import RISK_LEVELS, EcloModel, risk_level
from backend.ml.registry import ModelRegistry

METADATA_FIELDS = {
    "version",
    "trained_at",
    "rows",
    "cv_rmsle",
    "baseline_constant_rmsle",
    "cv_to_baseline_ratio",
    "features",
    "vocabularies",
    "lightgbm_version",
    "data_source",
    "target_stats",
    "parse_report",
    "risk_levels",
}
DEFAULT_MODEL = PROJECT_ROOT / "model" / "eclo"


def test_metadata_fields(small_model_root: Path) -> None:
    metadata = json.loads((small_model_root / "eclo" / "metadata.json").read_text(encoding="utf-8"))
    assert METADATA_FIELDS <= set(metadata)
    assert metadata["rows"] == 6000 and metadata["lightgbm_version"] == lgb.__version__
    assert metadata["cv_rmsle"] < metadata["baseline_constant_rmsle"]
    assert set(metadata["vocabularies"]["gu"]) == {
        "남구",
        "달서구",
        "달성군",
        "동구",
        "북구",
        "서구",
        "수성구",
        "중구",
    }


def test_round_trip_predict_many_equals_predict_one(small_model_root: Path, small_csv: Path) -> None:
    model = ModelRegistry(small_model_root, MODEL_KINDS).get("eclo")
    rows = [row for row in api_rows(read_text_csv(small_csv).head(200)) if row is not None]
    assert len(rows) == 200
    many = model.predict_many(rows)
    for row, batch_prediction in zip(rows, many, strict=True):
        single = model.predict_one(row)
        assert single.eclo == batch_prediction.eclo
        assert single.risk_level == batch_prediction.risk_level
        assert single.model_version == batch_prediction.model_version == model.version
    assert len({round(p.eclo, 6) for p in many}) > 20  # the model discriminates between rows


def test_explanation_sums_to_prediction(small_model: EcloModel, classic_row: dict) -> None:
    prediction = small_model.predict_one(classic_row)
    assert prediction.explanation and len(prediction.explanation) == 5
    x = small_model.encode(classic_row)[None, :]
    contributions = small_model.booster.predict(x, pred_contrib=True)[0]
    assert math.isclose(math.expm1(contributions.sum()), prediction.eclo, rel_tol=1e-9)
    assert {c.feature for c in prediction.explanation} <= {
        "weather",
        "road_surface",
        "road_type",
        "accident_type",
        "time_period",
        "district",
        "day_of_week",
        "accident_hour",
        "accident_year",
        "accident_month",
        "accident_day",
    }


def test_classic_example_on_eclo_scale(small_model: EcloModel, classic_row: dict) -> None:
    prediction = small_model.predict_one(classic_row)
    assert 1.0 <= prediction.eclo <= 20.0
    assert prediction.risk_level == risk_level(prediction.eclo)


def test_predict_many_names_the_bad_row_and_keeps_the_others(small_model: EcloModel, classic_row: dict) -> None:
    rows = [classic_row, {**classic_row, "weather": "폭풍"}, {**classic_row, "accident_hour": 3}]
    first, bad, third = small_model.predict_many(rows)
    assert isinstance(bad, InvalidRow) and bad.index == 1 and bad.errors[0].field == "weather"
    assert first.eclo == small_model.predict_one(classic_row).eclo
    assert third.eclo == small_model.predict_one(rows[2]).eclo


def test_risk_levels_cover_the_scale() -> None:
    assert [risk_level(v) for v in (0.0, 3.9, 4.0, 5.6, 7.5, 80.0)] == [
        "low",
        "low",
        "moderate",
        "high",
        "severe",
        "severe",
    ]
    assert RISK_LEVELS[0]["min"] == 0.0 and RISK_LEVELS[-1]["max"] is None


def test_tampered_model_file_is_refused(small_model_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "eclo"
    copy.mkdir()
    for name in ("metadata.json", "model.txt"):
        (copy / name).write_bytes((small_model_root / "eclo" / name).read_bytes())
    with (copy / "model.txt").open("a") as f:
        f.write("\n")
    with pytest.raises(ValueError, match="does not match the version"):
        EcloModel.load(copy)


def test_default_model_has_signal_and_answers_the_classic_example(classic_row: dict) -> None:
    metadata = json.loads((DEFAULT_MODEL / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["cv_to_baseline_ratio"] < 0.9
    assert metadata["cv_rmsle"] / metadata["baseline_constant_rmsle"] == pytest.approx(
        metadata["cv_to_baseline_ratio"], abs=1e-4
    )
    prediction = EcloModel.load(DEFAULT_MODEL).predict_one(classic_row)
    assert np.isfinite(prediction.eclo) and prediction.eclo > 0


def test_no_pickle_anywhere_under_model() -> None:
    suspicious = [
        p
        for p in (PROJECT_ROOT / "model").rglob("*")
        if p.is_file() and (p.suffix in {".pkl", ".pickle", ".joblib", ".pt"} or p.read_bytes()[:1] == b"\x80")
    ]
    assert suspicious == []
    assert (DEFAULT_MODEL / "model.txt").read_text().startswith("tree")


def test_coarse_inputs_still_tell_districts_and_roads_apart(small_model: EcloModel, classic_row: dict) -> None:
    """Training blanks 동 and the road minor class on some rows, so a 구/군 alone still carries its signal."""
    rural = small_model.predict_one({**classic_row, "district": "달성군"}).eclo
    central = small_model.predict_one({**classic_row, "district": "중구"}).eclo
    assert rural > central * 1.03
    tunnel = small_model.predict_one({**classic_row, "road_type": "단일로 - 터널"}).eclo
    parking = small_model.predict_one({**classic_row, "road_type": "주차장"}).eclo
    assert tunnel > parking
