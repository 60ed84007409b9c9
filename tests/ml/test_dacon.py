from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.ml.eclo.dacon import load_dacon_csv, parse_dacon_frame
from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.errors import DataFileError
from backend.ml.train import main as train_main


def test_dacon_date_and_district_parsing() -> None:
    frame = generate_dacon_frame(5, seed=1).astype(str)
    frame.loc[0, ["사고일시", "시군구", "도로형태", "ECLO"]] = [
        "2021-07-04 23",
        "대구광역시 달성군 화원읍",
        "단일로 - 터널",
        "8",
    ]
    data = parse_dacon_frame(frame)
    first = data.rows[0]
    assert (first.year, first.month, first.day, first.hour) == (2021, 7, 4, 23)
    assert (first.gu, first.dong) == ("달성군", "달성군 화원읍")
    assert (first.road_major, first.road_minor) == ("단일로", "단일로 - 터널")
    assert first.time_period == "심야"
    assert data.eclo[0] == 8.0 and data.report.skipped == 0


def test_missing_columns_are_all_named(tmp_path: Path) -> None:
    frame = generate_dacon_frame(20, seed=1).drop(columns=["기상상태", "노면상태", "ECLO", "사망자수"])
    path = tmp_path / "partial.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataFileError) as caught:
        load_dacon_csv(path)
    assert caught.value.missing_columns == ["기상상태", "노면상태", "ECLO", "사망자수"]
    for column in ("기상상태", "노면상태", "ECLO", "사망자수"):
        assert column in str(caught.value)


def test_train_command_reports_missing_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "partial.csv"
    generate_dacon_frame(20, seed=1).drop(columns=["시군구", "요일"]).to_csv(path, index=False)
    assert train_main(["eclo", "--data", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "시군구" in err and "요일" in err
    assert not (tmp_path / "out").exists()


def test_eclo_from_injury_counts_when_column_absent() -> None:
    frame = generate_dacon_frame(50, seed=3)
    data = parse_dacon_frame(frame.drop(columns=["ECLO"]).astype(str))
    assert list(data.eclo) == list(frame["ECLO"].astype(float))


def test_severe_outcome_from_deaths_and_serious_injuries() -> None:
    frame = generate_dacon_frame(200, seed=3)
    data = parse_dacon_frame(frame.astype(str))
    expected = ((frame["사망자수"] + frame["중상자수"]) > 0).astype(float)
    assert list(data.severe) == list(expected) and 0 < expected.sum() < 200
    only_eclo = parse_dacon_frame(frame.drop(columns=["사망자수", "중상자수"]).astype(str))
    assert np.isnan(only_eclo.severe).all() and len(only_eclo.rows) == 200


def test_unparseable_rows_are_counted_and_located() -> None:
    frame = generate_dacon_frame(30, seed=2).astype(str)
    frame.loc[3, "사고일시"] = "yesterday"
    frame.loc[7, "ECLO"] = ""
    frame.loc[9, "시군구"] = ""
    data = parse_dacon_frame(frame)
    report = data.report
    assert len(data.rows) == len(data.eclo) == len(data.severe) == 27
    assert list(data.eclo) == [float(v) for i, v in enumerate(frame["ECLO"]) if i not in (3, 7, 9)]
    assert report.skipped == 3 and report.first_lines == [5, 9, 11]
    assert report.reasons["사고일시 is not 'YYYY-MM-DD HH'"] == 1
    assert "3 of 30 rows skipped" in report.summary()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949"])
def test_reads_korean_encodings(tmp_path: Path, encoding: str) -> None:
    frame = generate_dacon_frame(40, seed=5)
    path = tmp_path / f"train-{encoding}.csv"
    frame.to_csv(path, index=False, encoding=encoding)
    data = load_dacon_csv(path)
    assert data.report.skipped == 0 and len(data.rows) == 40
    assert data.rows[0].weather == frame.loc[0, "기상상태"]
    assert pd.Series(data.eclo).equals(frame["ECLO"].astype(float))


def test_reads_gzipped_csv_and_refuses_a_damaged_one(tmp_path: Path) -> None:
    frame = generate_dacon_frame(40, seed=5)
    path = tmp_path / "train.csv.gz"
    frame.to_csv(path, index=False, compression="gzip")
    data = load_dacon_csv(path)
    assert len(data.rows) == 40 and pd.Series(data.eclo).equals(frame["ECLO"].astype(float))
    damaged = tmp_path / "damaged.csv.gz"
    damaged.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataFileError, match="damaged gzip"):
        load_dacon_csv(damaged)
