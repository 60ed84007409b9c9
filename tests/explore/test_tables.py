import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backend.explore.tables import TableFile, profile_table, read_csv_table, write_parquet
from backend.ml.errors import DataFileError
from tests.explore.generated import side_frame, write_csv

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return side_frame(400, seed=3)


@pytest.mark.parametrize(
    ("encoding", "sep", "codec"),
    [("cp949", ",", "cp949"), ("utf-8-sig", ",", "utf-8-sig"), ("utf-8", ";", "utf-8"), ("cp949", "\t", "cp949")],
)
def test_side_layouts_read_back_typed(tmp_path: Path, frame: pd.DataFrame, encoding: str, sep: str, codec: str) -> None:
    table = read_csv_table(write_csv(frame, tmp_path / "t.csv", encoding=encoding, sep=sep))
    assert (table.encoding, table.delimiter, table.has_header) == (codec, sep, True)
    assert table.columns == list(frame.columns)
    assert table.kinds == {
        "관리번호": "text",
        "시군구명": "text",
        "소재지지번주소": "text",
        "위도": "number",
        "경도": "number",
        "제한속도": "integer",
        "설치연도": "integer",
        "점수": "number",
        "단속구분": "text",
        "설치일자": "date",
        "사고일시": "datetime",
        "비고": "text",
    }
    got = table.frame
    assert got["관리번호"].tolist() == frame["관리번호"].tolist()  # leading zeros kept
    np.testing.assert_allclose(got["위도"].to_numpy(float), frame["위도"].to_numpy(float), equal_nan=True)
    assert got["제한속도"].astype("Float64").equals(frame["제한속도"].astype("Float64"))
    assert (got["설치일자"] == frame["설치일자"]).all()
    assert got["사고일시"].isna().equals(frame["사고일시"].isna())
    assert (got["사고일시"].dropna() == frame["사고일시"].dropna()).all()
    assert got["단속구분"].isna().equals(frame["단속구분"].isna())  # quoted ";" values survive any delimiter
    assert got["비고"].tolist() == frame["비고"].tolist()


def test_declared_encoding_gzip_and_no_header(tmp_path: Path) -> None:
    text = "위도,경도,이름\n35.8,128.6,가\n35.9,128.5,나\n"
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(text.encode("cp949")))
    table = read_csv_table(tmp_path / "a.csv.gz", encoding="euc-kr")
    assert table.encoding == "cp949" and table.columns == ["위도", "경도", "이름"] and len(table.frame) == 2
    (tmp_path / "b.csv").write_text("1|2.5|x\n3|4.5|y\n", encoding="utf-8")
    table = read_csv_table(tmp_path / "b.csv")
    assert table.delimiter == "|" and not table.has_header
    assert table.columns == ["column_1", "column_2", "column_3"] and table.frame["column_1"].tolist() == [1, 3]
    (tmp_path / "c.csv").write_text('금액,코드\n"1,234",007\n"12,000.5",010\n', encoding="utf-8")
    table = read_csv_table(tmp_path / "c.csv")
    assert table.frame["금액"].tolist() == [1234.0, 12000.5] and table.frame["코드"].tolist() == ["007", "010"]
    (tmp_path / "d.csv").write_text("a,a,\n1,2,3\n", encoding="utf-8")
    assert read_csv_table(tmp_path / "d.csv").columns == ["a", "a_2", "column_3"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"PK\x03\x04\x00\x00binary", "binary"),
        ("이름\n가\n".encode("cp949") + b"\xff\xfe", "neither UTF-8 nor CP949"),
        (b"a,b\n", "no data rows"),
        (b"a,b\n1,2\n3,4,5\n", "not a readable CSV"),
        (b"\x1f\x8b\x08broken", "gzip"),
    ],
)
def test_unusable_files_are_refused_clearly(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "x.csv").write_bytes(content)
    with pytest.raises(DataFileError, match=expected):
        read_csv_table(tmp_path / "x.csv")


def test_limits_and_declared_encoding_mismatch(tmp_path: Path) -> None:
    (tmp_path / "wide.csv").write_text(",".join(f"c{i}" for i in range(5)) + "\n" + ",".join("1" * 5) + "\n")
    with pytest.raises(DataFileError, match="5 columns; at most 3"):
        read_csv_table(tmp_path / "wide.csv", max_columns=3)
    (tmp_path / "long.csv").write_text("a,b\n1," + "x" * 50 + "\n")
    with pytest.raises(DataFileError, match="column 'b' .* 50 characters"):
        read_csv_table(tmp_path / "long.csv", max_cell_chars=20)
    (tmp_path / "k.csv").write_bytes("위도\n35.1\n".encode("cp949"))
    with pytest.raises(DataFileError, match="declared utf-8"):
        read_csv_table(tmp_path / "k.csv", encoding="utf-8")
    with pytest.raises(DataFileError, match="not supported"):
        read_csv_table(tmp_path / "k.csv", encoding="latin-1")
    with pytest.raises(DataFileError, match="cannot be read"):
        read_csv_table(tmp_path / "missing.csv")


def test_write_parquet_replaces_atomically(tmp_path: Path, frame: pd.DataFrame) -> None:
    table = read_csv_table(write_csv(frame, tmp_path / "t.csv"))
    target = tmp_path / "store" / "t.parquet"
    write_parquet(table, target)
    write_parquet(TableFile(table.frame.head(5), "utf-8", ",", table.columns, kinds=table.kinds), target)
    assert pq.read_metadata(target).num_rows == 5
    assert [p.name for p in target.parent.iterdir()] == ["t.parquet"]  # no scratch file left
    schema = pq.read_schema(target)
    assert [str(schema.field(n).type) for n in ("관리번호", "위도", "제한속도", "설치일자", "사고일시")] == [
        "string",
        "double",
        "int64",
        "date32[day]",
        "timestamp[us]",
    ]


def test_profile_types_coordinates_and_numbers(tmp_path: Path, frame: pd.DataFrame) -> None:
    table = read_csv_table(write_csv(frame, tmp_path / "t.csv"))
    write_parquet(table, tmp_path / "t.parquet")
    profile = profile_table(tmp_path / "t.parquet")
    assert profile.rows == len(frame)
    assert profile.coordinates is not None
    assert (profile.coordinates.latitude, profile.coordinates.longitude) == ("위도", "경도")
    by_name = {c.name: c for c in profile.columns}
    assert {n: c.type for n, c in by_name.items()} == {
        "관리번호": "text",
        "시군구명": "category",
        "소재지지번주소": "text",
        "위도": "coordinate",
        "경도": "coordinate",
        "제한속도": "number",
        "설치연도": "number",
        "점수": "number",
        "단속구분": "category",
        "설치일자": "date",
        "사고일시": "date",
        "비고": "text",
    }
    for name, column in by_name.items():
        assert column.missing_share == pytest.approx(frame[name].isna().mean()), name
        assert column.distinct == frame[name].nunique(), name
    score = by_name["점수"]
    expected = frame["점수"].dropna()
    assert score.min == pytest.approx(expected.min()) and score.max == pytest.approx(expected.max())
    assert (score.q1, score.median, score.q3) == pytest.approx(tuple(expected.quantile([0.25, 0.5, 0.75])))
    assert (score.mean, score.std) == pytest.approx((expected.mean(), expected.std()))
    tops = frame["시군구명"].value_counts()
    assert [(t.value, t.count) for t in by_name["시군구명"].top] == sorted(tops.items(), key=lambda kv: (-kv[1], kv[0]))
    assert by_name["관리번호"].top == []  # all distinct: no telling top values
    assert by_name["설치일자"].min == frame["설치일자"].min().date().isoformat()
    assert by_name["사고일시"].max == frame["사고일시"].max().isoformat()


def test_coordinates_need_names_and_ranges(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = {"lat": rng.uniform(35, 36, 50), "lng": rng.uniform(128, 129, 50)}
    cases = [
        ({**base}, ("lat", "lng")),
        ({"y": base["lat"], "x": base["lng"]}, ("y", "x")),
        ({"y": rng.integers(0, 50, 50), "x": rng.integers(0, 50, 50)}, None),  # a grid of integers
        ({"위도": base["lat"] * 3, "경도": base["lng"]}, None),  # latitudes beyond 90
        ({"시설위도": base["lat"], "시설경도": base["lng"]}, ("시설위도", "시설경도")),
        ({"height": base["lat"], "width": base["lng"]}, None),
        ({"lat": np.where(np.arange(50) < 30, np.nan, base["lat"]), "lon": base["lng"]}, None),  # mostly missing
    ]
    for i, (columns, expected) in enumerate(cases):
        path = tmp_path / f"{i}.csv"
        pd.DataFrame(columns).to_csv(path, index=False)
        write_parquet(read_csv_table(path), tmp_path / f"{i}.parquet")
        found = profile_table(tmp_path / f"{i}.parquet").coordinates
        assert (found and (found.latitude, found.longitude)) == (expected or None), columns.keys()
