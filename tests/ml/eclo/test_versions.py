"""A new ECLO version trained from stored rows and compared with a champion on the very same held-out rows."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backend.ml.artifacts import MODEL_FILE, file_version
from backend.ml.eclo.dacon import LabelledRows, api_rows, parse_dacon_frame
from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.eclo.measures import Constants, auc, brier, eclo_measures
from backend.ml.eclo.model import SEVERE_MODEL_FILE, EcloModel
from backend.ml.eclo.versions import compare, held_out_model, load_dataset_rows, train_eclo_version
from backend.ml.errors import DataFileError, InvalidRow

HOLDOUT = 2021  # the generated rows span 2019-2021
FIGURES = ("rmsle", "constant_rmsle", "last_year_rmsle", "severe_auc", "severe_brier")


@dataclass
class Version:
    frame: pd.DataFrame
    data: LabelledRows
    out: Path
    metadata: dict[str, Any]


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Version:
    """A version trained on 1,600 generated accidents (about 1,080 before 2021), with no champion."""
    frame = generate_dacon_frame(1600, seed=5)
    data = parse_dacon_frame(frame.astype(str))
    out = tmp_path_factory.mktemp("versions") / "first"
    out.mkdir()
    metadata = train_eclo_version(data, holdout_from_year=HOLDOUT, champion=None, out=out, data_source="generated",
                                  training_data={"dataset_ids": [7]}, log=_quiet, folds=2, seed=7)  # fmt: skip
    return Version(frame, data, out, metadata)


def test_without_a_champion_the_comparison_is_the_held_out_evaluation(first: Version) -> None:
    metadata, comparison = first.metadata, first.metadata["comparison"]
    assert "champion" not in comparison and comparison["new"]["version"] == metadata["version"]
    # The version is still the hash of the model files, and the metadata on disk is the one returned.
    assert metadata["version"] == file_version(first.out / MODEL_FILE, first.out / SEVERE_MODEL_FILE)
    assert json.loads((first.out / "metadata.json").read_text(encoding="utf-8")) == json.loads(json.dumps(metadata))
    assert metadata["training_data"] == {"dataset_ids": [7], "rows": 1600, "years": [2019, 2021],
                                         "rows_by_year": {"2019": 535, "2020": 549, "2021": 516}}  # fmt: skip
    # The new version is judged by the fit on the years before 2021: its figures are the temporal report's.
    temporal, new = metadata["temporal"], comparison["new"]
    assert comparison["rows"] == new["rows"] == temporal["test_rows"] == comparison["held_out_rows"] == 516
    assert new["trained_years"] == temporal["train_years"] == [2019, 2020]
    assert new["rmsle"] == temporal["eclo"]["rmsle"]
    assert new["constant_rmsle"] == temporal["eclo"]["constant_training_mean_rmsle"]
    assert new["last_year_rmsle"] == temporal["eclo"]["constant_last_year_rmsle"]
    # Brier of the same cross-fitted probabilities; AUC of the margin (the cross-fitting shifts the halves' ranks).
    assert new["severe_brier"] == temporal["severe"]["brier"]
    assert abs(new["severe_auc"] - temporal["severe"]["auc"]) < 0.03 and new["severe_auc"] > 0.55
    assert new["rmsle"] < new["constant_rmsle"] and all(math.isfinite(new[k]) for k in FIGURES)


def test_a_champion_equal_to_the_held_out_fit_scores_the_same_on_the_same_rows(first: Version) -> None:
    champion = held_out_model(first.data, first.metadata)
    comparison = compare(first.data, first.metadata, champion, log=_quiet)
    new, same = comparison["new"], comparison["champion"]
    assert new["rows"] == same["rows"] == comparison["rows"] == 516 and comparison["left_out"]["rows"] == 0
    for key in ("rmsle", "constant_rmsle", "last_year_rmsle", "severe_auc", "trained_years"):
        assert new[key] == same[key], key
    # The champion's calibration was fitted on these rows, the new one's across their halves: close, not equal.
    assert abs(new["severe_brier"] - same["severe_brier"]) < 0.01


def test_a_served_champion_is_scored_as_serving_answers_it(first: Version, tmp_path: Path) -> None:
    champion = EcloModel.load(first.out)
    out = tmp_path / "second"
    out.mkdir()
    metadata = train_eclo_version(first.data, holdout_from_year=HOLDOUT, champion=champion, out=out,
                                  data_source="generated", training_data={}, log=_quiet, folds=2, seed=7)  # fmt: skip
    comparison = metadata["comparison"]
    new, served = comparison["new"], comparison["champion"]
    assert new["version"] == metadata["version"] and served["version"] == first.metadata["version"]
    assert new["rows"] == served["rows"] == 516 and all(math.isfinite(served[k]) for k in FIGURES)
    # The same data and seed give the same held-out fit: the new figures are the first version's.
    assert {k: new[k] for k in FIGURES} == {k: first.metadata["comparison"]["new"][k] for k in FIGURES}
    # The served champion saw 2021 when it was refitted on every row: said, and visible in its figures.
    assert served["trained_years"] == [2019, 2021] and served["rmsle"] < new["rmsle"]
    assert any("in-sample" in note for note in comparison["notes"])
    # Its figures are those of its own predict_many on the raw rows of 2021.
    held_out = first.frame[first.frame["사고일시"].str[:4].astype(int) >= HOLDOUT]
    answers = champion.predict_many(api_rows(held_out.astype(str)))
    assert not any(isinstance(a, InvalidRow) for a in answers)
    measured = eclo_measures(np.log1p([a.eclo for a in answers]), np.log1p(held_out["ECLO"].to_numpy(float)),
                             Constants.from_dict(champion.metadata["constants"]))  # fmt: skip
    p_severe = np.array([a.p_severe for a in answers])
    severe = ((held_out["사망자수"] + held_out["중상자수"]) > 0).to_numpy(float)
    assert served["rmsle"] == measured["rmsle"]
    assert served["constant_rmsle"] == measured["constant_training_mean_rmsle"]
    assert served["severe_auc"] == round(auc(p_severe, severe), 6)  # its calibration keeps the margin's order
    assert served["severe_brier"] == pytest.approx(brier(p_severe, severe), abs=1e-6)


def test_rows_a_champion_refuses_are_left_out_of_both_models(first: Version) -> None:
    served = EcloModel.load(first.out)
    metadata = json.loads(json.dumps(served.metadata))
    metadata["vocabularies"]["weather"].remove("흐림")  # a champion that never saw cloudy weather
    champion = EcloModel(served.booster, served.severe_booster, metadata)
    cloudy = sum(r.weather == "흐림" and r.year >= HOLDOUT for r in first.data.rows)
    assert cloudy > 0
    comparison = compare(first.data, first.metadata, champion, log=_quiet)
    assert comparison["left_out"]["rows"] == cloudy
    assert comparison["left_out"]["refused_by_champion"] == {"rows": cloudy, "fields": {"weather": cloudy}}
    assert comparison["left_out"]["refused_by_new"] == {"rows": 0, "fields": {}}
    assert comparison["new"]["rows"] == comparison["champion"]["rows"] == comparison["rows"] == 516 - cloudy


def test_too_few_rows_are_refused_with_the_numbers(tmp_path: Path) -> None:
    data = parse_dacon_frame(generate_dacon_frame(300, seed=3).astype(str))
    with pytest.raises(DataFileError, match=r"300 usable rows \(2019-2021\), \d+ before 2021 \(at least 1,000"):
        train_eclo_version(data, holdout_from_year=HOLDOUT, champion=None, out=tmp_path, data_source="x",
                           training_data={}, log=_quiet)  # fmt: skip
    with pytest.raises(DataFileError, match=r"300 before 2025 .* and 0 from 2025 on \(at least 100\)"):
        train_eclo_version(data, holdout_from_year=2025, champion=None, out=tmp_path, data_source="x",
                           training_data={}, log=_quiet)  # fmt: skip
    assert not any(tmp_path.iterdir())


def test_an_uploaded_file_is_read_in_its_encoding_and_either_layout(tmp_path: Path) -> None:
    frame = generate_dacon_frame(60, seed=4)
    expected = parse_dacon_frame(frame.astype(str))
    for encoding in ("cp949", "utf-8-sig"):
        path = tmp_path / f"dacon-{encoding}.csv"
        frame.to_csv(path, index=False, encoding=encoding)
        # "utf-8" for a file with a BOM: the BOM is not part of the first column's name.
        data = load_dataset_rows(path, "utf-8" if encoding == "utf-8-sig" else encoding)
        assert data.rows == expected.rows and list(data.eclo) == list(expected.eclo)
        assert list(data.severe) == list(expected.severe)
    api = pd.DataFrame(api_rows(frame.astype(str)))
    for column in ("사망자수", "중상자수", "경상자수", "부상자수", "ECLO"):
        api[column] = frame[column]
    api.loc[3, "accident_hour"] = 25
    path = tmp_path / "api.csv"
    api.to_csv(path, index=False, encoding="utf-8")
    data = load_dataset_rows(path, "utf-8")
    assert data.rows == expected.rows[:3] + expected.rows[4:] and data.report.skipped == 1
    assert "accident_hour" in data.report.summary() and list(data.severe) == list(np.delete(expected.severe, 3))


def test_a_file_without_outcomes_or_in_another_encoding_is_refused(tmp_path: Path) -> None:
    frame = generate_dacon_frame(20, seed=4)
    path = tmp_path / "inputs.csv"
    frame.drop(columns=["ECLO", "사망자수", "중상자수", "경상자수", "부상자수"]).to_csv(path, index=False)
    with pytest.raises(
        DataFileError, match="no outcome columns.*ECLO, 사망자수, 중상자수, 경상자수, 부상자수"
    ) as caught:
        load_dataset_rows(path, "utf-8")
    assert caught.value.missing_columns == ["ECLO", "사망자수", "중상자수", "경상자수", "부상자수"]
    frame.drop(columns=["사망자수", "경상자수", "부상자수"]).to_csv(path, index=False)
    with pytest.raises(DataFileError, match="it lacks 사망자수 .*death and serious-injury counts"):
        load_dataset_rows(path, "utf-8")
    frame.to_csv(path, index=False, encoding="cp949")
    with pytest.raises(DataFileError, match="not utf-8 text"):
        load_dataset_rows(path, "utf-8")
