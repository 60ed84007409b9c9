import json
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import backend.ml.eclo.training as train_module
from backend.core.config import PROJECT_ROOT
from backend.ml.eclo.dacon import LabelledRows, api_rows, eclo_from_injuries, parse_dacon_frame, read_text_csv
from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.eclo.features import FEATURE_INDEX, TARGET_ENCODINGS, learn_vocabularies
from backend.ml.eclo.model import RISK_LEVELS, EcloModel, risk_level
from backend.ml.eclo.training import train_eclo, training_matrix
from backend.ml.errors import DataFileError, InvalidRow
from backend.ml.kinds import MODEL_KINDS
from backend.ml.registry import ModelRegistry
from backend.ml.train import main as train_main

METADATA_FIELDS = {
    "cv",
    "temporal",
    "severe",
    "constants",
    "area_profile",
    "num_trees_severe",
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
    temporal = metadata["temporal"]
    assert temporal["train_years"] == [2019, 2020] and temporal["test_years"] == [2021, 2021]
    assert temporal["eclo"]["ratio_to_training_mean"] < 1 and temporal["severe"]["auc"] > 0.6
    assert temporal["severe"]["brier"] < temporal["severe"]["brier_constant"]
    assert metadata["severe"]["base_rate"] == temporal["severe"]["observed_rate"]
    cv = metadata["cv"]
    assert cv["ratio_to_last_year"] == pytest.approx(cv["rmsle"] / cv["constant_last_year_rmsle"], abs=1e-5)
    assert cv["constant_last_year_rmsle"] != cv["constant_rmsle"]
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
        assert single.p_severe == batch_prediction.p_severe
        assert single.relative_risk == batch_prediction.relative_risk
        assert single.risk_level == batch_prediction.risk_level
        assert single.model_version == batch_prediction.model_version == model.version
    assert len({round(p.eclo, 6) for p in many}) > 20  # the model discriminates between rows
    assert len({round(p.p_severe, 6) for p in many}) > 20
    assert all(0 <= p.p_severe <= 1 for p in many)


def test_explanation_sums_to_prediction(small_model: EcloModel, classic_row: dict) -> None:
    prediction = small_model.predict_one(classic_row)
    assert prediction.explanation and len(prediction.explanation) == 5
    x = small_model.encode(classic_row).features[None, :]
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
    assert 0 < prediction.p_severe < 1 and prediction.notes == ()
    assert prediction.relative_risk == prediction.p_severe / small_model.metadata["severe"]["base_rate"]
    assert prediction.risk_level == risk_level(prediction.relative_risk)


def test_unseen_dong_predicts_like_its_gu_with_a_note(small_model: EcloModel, classic_row: dict) -> None:
    """A 동 renamed or created after training: predicted at the 구/군 level, and the answer says so."""
    gu_only = small_model.predict_one({**classic_row, "district": "달성군"})
    unseen = {**classic_row, "district": "대구광역시 달성군 논공읍공단출장"}
    single = small_model.predict_one(unseen)
    (batch,) = small_model.predict_many([unseen])
    for prediction in (single, batch):
        assert (prediction.eclo, prediction.p_severe) == (gu_only.eclo, gu_only.p_severe)
        (note,) = prediction.notes
        assert "district" in note and "논공읍공단출장" in note and "구/군 level (달성군)" in note
    assert gu_only.notes == ()
    known = small_model.metadata["vocabularies"]["dong"][0]
    assert small_model.predict_one({**classic_row, "district": known}).notes == ()
    with pytest.raises(InvalidRow) as caught:
        small_model.predict_one({**classic_row, "district": "대구광역시 없는구 어느동"})
    assert [e.field for e in caught.value.errors] == ["district"]


def test_predict_many_names_the_bad_row_and_keeps_the_others(small_model: EcloModel, classic_row: dict) -> None:
    rows = [classic_row, {**classic_row, "weather": "폭풍"}, {**classic_row, "accident_hour": 3}]
    first, bad, third = small_model.predict_many(rows)
    assert isinstance(bad, InvalidRow) and bad.index == 1 and bad.errors[0].field == "weather"
    assert first.eclo == small_model.predict_one(classic_row).eclo
    assert third.eclo == small_model.predict_one(rows[2]).eclo


def test_risk_levels_cover_the_relative_risk_scale() -> None:
    assert [risk_level(v) for v in (0.0, 0.79, 0.8, 1.0, 1.2, 1.49, 1.5, 40.0)] == [
        "low",
        "low",
        "moderate",
        "moderate",
        "high",
        "high",
        "severe",
        "severe",
    ]
    assert RISK_LEVELS[0]["min"] == 0.0 and RISK_LEVELS[-1]["max"] is None


def test_tampered_model_file_is_refused(small_model_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "eclo"
    copy.mkdir()
    for name in ("metadata.json", "model.txt", "severe.txt"):
        (copy / name).write_bytes((small_model_root / "eclo" / name).read_bytes())
    EcloModel.load(copy)
    with (copy / "severe.txt").open("a") as f:
        f.write("\n")
    with pytest.raises(ValueError, match="not match the version"):
        EcloModel.load(copy)


def test_default_model_is_the_real_data_model_and_beats_its_constants(classic_row: dict) -> None:
    """The committed model: trained on the real Daegu accidents, evaluated on 2014-2015 after 2007-2013."""
    metadata = json.loads((DEFAULT_MODEL / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["years"] == [2007, 2015] and metadata["rows"] == 127_826
    temporal = metadata["temporal"]
    assert temporal["train_years"] == [2007, 2013] and temporal["test_years"] == [2014, 2015]
    assert temporal["eclo"]["ratio_to_training_mean"] <= 0.976
    assert temporal["severe"]["auc"] >= 0.60
    assert temporal["severe"]["brier"] < min(
        temporal["severe"]["brier_constant"], temporal["severe"]["brier_constant_last_year"]
    )
    assert metadata["cv_rmsle"] / metadata["baseline_constant_rmsle"] == pytest.approx(
        metadata["cv_to_baseline_ratio"], abs=1e-4
    )
    prediction = EcloModel.load(DEFAULT_MODEL).predict_one(classic_row)
    assert np.isfinite(prediction.eclo) and prediction.eclo > 0 and 0 < prediction.p_severe < 1


def test_no_pickle_anywhere_under_model() -> None:
    suspicious = [
        p
        for p in (PROJECT_ROOT / "model").rglob("*")
        if p.is_file() and (p.suffix in {".pkl", ".pickle", ".joblib", ".pt"} or p.read_bytes()[:1] == b"\x80")
    ]
    assert suspicious == []
    assert (DEFAULT_MODEL / "model.txt").read_text().startswith("tree")
    assert (DEFAULT_MODEL / "severe.txt").read_text().startswith("tree")


def test_coarse_inputs_still_tell_districts_and_roads_apart(small_model: EcloModel, classic_row: dict) -> None:
    """Training blanks 동 and the road minor class on some rows, so a 구/군 alone still carries its signal."""
    rural = small_model.predict_one({**classic_row, "district": "달성군"}).eclo
    central = small_model.predict_one({**classic_row, "district": "중구"}).eclo
    assert rural > central * 1.03
    tunnel = small_model.predict_one({**classic_row, "road_type": "단일로 - 터널"}).eclo
    parking = small_model.predict_one({**classic_row, "road_type": "주차장"}).eclo
    assert tunnel > parking


def _labelled(n: int, seed: int) -> LabelledRows:
    return parse_dacon_frame(generate_dacon_frame(n, seed=seed).astype(str))


def test_out_of_fold_statistics_never_include_the_row_itself() -> None:
    data = _labelled(1500, seed=4)
    vocabularies = learn_vocabularies(data.rows)
    y = np.log1p(data.eclo)
    X, _ = training_matrix(data.rows, y, vocabularies, seed=1)
    changed = y.copy()
    changed[10] += 50.0  # an absurd target on one row
    X2, _ = training_matrix(data.rows, changed, vocabularies, seed=1)
    encodings = [FEATURE_INDEX[e.feature] for e in TARGET_ENCODINGS]
    assert np.array_equal(X[10], X2[10], equal_nan=True)  # its own statistics did not see it
    moved = ~np.all(np.isclose(X[:, encodings], X2[:, encodings], equal_nan=True), axis=1)
    assert moved.sum() > 100  # the rows of the other folds did


def test_holdout_from_year_never_trains_on_a_held_out_year(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _labelled(3000, seed=5)
    seen: list[tuple[int, int]] = []
    real = train_module.training_matrix

    def spy(rows, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append((min(r.year for r in rows), max(r.year for r in rows)))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(train_module, "training_matrix", spy)
    fast = {"learning_rate": 0.3}  # what is checked is which rows each fit sees, not accuracy
    result = train_eclo(data, folds=3, seed=3, holdout_from_year=2021, params=fast, log=lambda _: None)
    temporal_calls = 3 + 1  # CV folds inside 2019-2020, then the fit on 2019-2020
    assert all(high < 2021 for _, high in seen[:temporal_calls])
    assert all(high == 2021 for _, high in seen[temporal_calls:])  # K-fold over all years, then the final fit
    temporal = result.metadata["temporal"]
    assert temporal["train_rows"] == int((data.years < 2021).sum())
    assert temporal["test_rows"] == int((data.years >= 2021).sum())
    # Relabelling the held-out year changes nothing learned from the years before it.
    relabelled = LabelledRows(data.rows, data.eclo.copy(), data.severe.copy(), data.report)
    later = data.years >= 2021
    relabelled.eclo[later] = relabelled.eclo[later][::-1]
    relabelled.severe[later] = 1.0 - relabelled.severe[later]
    again = train_eclo(relabelled, folds=3, seed=3, holdout_from_year=2021, params=fast, log=lambda _: None)
    assert again.metadata["temporal"]["cv_on_training_years"] == temporal["cv_on_training_years"]
    assert again.metadata["temporal"]["constants"] == temporal["constants"]


def test_holdout_year_outside_the_data_is_refused() -> None:
    with pytest.raises(DataFileError, match="--holdout-from-year 2030"):
        train_eclo(_labelled(600, seed=5), folds=3, holdout_from_year=2030, log=lambda _: None)


def test_p_severe_is_calibrated_on_a_well_separated_set() -> None:
    """Severity set by the hour and the accident type: the calibration table rises decile by decile."""
    frame = generate_dacon_frame(8000, seed=12)
    rng = np.random.default_rng(12)
    hour = pd.to_datetime(frame["사고일시"], format="%Y-%m-%d %H").dt.hour.to_numpy()
    logit = -3.0 + 0.22 * hour + 1.5 * (frame["사고유형"] == "차대사람").to_numpy()
    severe = rng.random(len(frame)) < 1 / (1 + np.exp(-logit))
    frame["사망자수"], frame["중상자수"] = 0, severe.astype(int)
    frame["ECLO"] = eclo_from_injuries(frame["사망자수"], frame["중상자수"], frame["경상자수"], frame["부상자수"])
    fast = {"learning_rate": 0.15}
    result = train_eclo(parse_dacon_frame(frame.astype(str)), folds=3, holdout_from_year=2021, params=fast,
                        log=lambda _: None)  # fmt: skip
    table = result.metadata["temporal"]["severe"]["calibration"]
    predicted, observed = [r["predicted"] for r in table], [r["observed"] for r in table]
    assert 0 <= predicted[0] and predicted[-1] <= 1
    assert predicted == sorted(predicted) and observed == sorted(observed)
    assert observed[-1] - observed[0] > 0.5
    assert all(abs(p - o) < 0.1 for p, o in zip(predicted, observed, strict=True))


def test_gzipped_csv_trains_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "train.csv.gz"
    generate_dacon_frame(800, seed=9).to_csv(path, index=False, compression="gzip")
    out = tmp_path / "eclo"
    assert train_main(["eclo", "--data", str(path), "--out", str(out), "--folds", "3",
                       "--holdout-from-year", "2021"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "held-out 2021-2021" in printed and "severe outcome: auc" in printed
    model = EcloModel.load(out)
    assert model.metadata["rows"] == 800 and model.metadata["data_source"] == "train.csv.gz"
