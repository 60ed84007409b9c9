import csv
from pathlib import Path

import numpy as np
import pytest

from backend.ml.eclo.dacon import api_rows, read_text_csv
from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.eclo.evaluate import OUTPUT_COLUMNS, main
from backend.ml.eclo.measures import Constants, eclo_measures
from backend.ml.eclo.model import EcloModel
from backend.ml.errors import InvalidRow


@pytest.fixture
def labelled_file(tmp_path: Path) -> Path:
    """300 generated accidents: one in a 동 the model never saw, one with a weather it does not know."""
    frame = generate_dacon_frame(300, seed=21)
    frame.loc[5, "시군구"] = "대구광역시 달성군 논공읍공단출장"
    frame.loc[9, "기상상태"] = "폭풍"
    path = tmp_path / "labelled.csv.gz"
    frame.to_csv(path, index=False, compression="gzip", encoding="utf-8")
    return path


def test_evaluate_equals_predict_many_and_writes_every_row(
    small_model_root: Path, small_model: EcloModel, labelled_file: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "predictions.csv"
    assert main(["--model", str(small_model_root / "eclo"), "--data", str(labelled_file), "--out", str(out)]) == 0
    frame = read_text_csv(labelled_file)
    expected = small_model.predict_many(api_rows(frame))
    with out.open(encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert tuple(written[0]) == OUTPUT_COLUMNS and len(written) == 300
    assert [w["ID"] for w in written] == frame["ID"].tolist()
    for line, prediction in zip(written, expected, strict=True):
        if isinstance(prediction, InvalidRow):
            assert line["predicted_eclo"] == "" and "weather" in line["error"]
            continue
        assert float(line["predicted_eclo"]) == prediction.eclo
        assert float(line["p_severe"]) == prediction.p_severe
        assert line["risk_level"] == prediction.risk_level and line["error"] == ""
    assert "구/군 level (달성군)" in written[5]["notes"] and written[9]["error"].startswith("weather:")

    printed = capsys.readouterr().out
    noted = sum(not isinstance(p, InvalidRow) and bool(p.notes) for p in expected)
    assert noted >= 1 and f"300 rows, 299 scored ({noted} with a note), 1 refused" in printed
    # The printed RMSLE is the one of the model's own constants over the scored rows.
    scored = [i for i, p in enumerate(expected) if not isinstance(p, InvalidRow)]
    actual = np.log1p(frame["ECLO"].astype(float).to_numpy()[scored])
    predicted = np.log1p([expected[i].eclo for i in scored])
    measured = eclo_measures(predicted, actual, Constants.from_dict(small_model.metadata["constants"]))
    assert f"ECLO rmsle {measured['rmsle']:.4f}" in printed
    assert f"ratio {measured['ratio_to_training_mean']:.4f}" in printed
    assert "severe outcome: auc" in printed and "decile 10" in printed


def test_evaluate_without_outcomes_predicts_only(small_model_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    path = tmp_path / "inputs.csv"
    frame = generate_dacon_frame(20, seed=22)
    inputs = ["ID", "사고일시", "요일", "기상상태", "시군구", "도로형태", "노면상태", "사고유형"]
    frame[inputs].to_csv(path, index=False)
    assert main(["--model", str(small_model_root / "eclo"), "--data", str(path)]) == 0
    assert "predictions only" in capsys.readouterr().out


def test_evaluate_names_missing_input_columns(small_model_root: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    path = tmp_path / "partial.csv"
    generate_dacon_frame(20, seed=22).drop(columns=["기상상태"]).to_csv(path, index=False)
    assert main(["--model", str(small_model_root / "eclo"), "--data", str(path)]) == 2
    assert "기상상태" in capsys.readouterr().err
