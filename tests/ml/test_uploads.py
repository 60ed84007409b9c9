"""Reading uploaded files: encodings, layouts, and each row's problems named by the file's own column."""

from __future__ import annotations

import codecs
import gzip
import io

import pytest

from backend.ml.eclo.features import INPUT_FIELDS
from backend.ml.eclo.model import EcloModel
from backend.ml.eclo.uploads import API, DACON, check_rows, encoding_of, file_format
from backend.ml.errors import DataFileError

DACON_HEADER = "ID,사고일시,요일,기상상태,시군구,도로형태,노면상태,사고유형,ECLO"
GOOD = "A1,2021-03-02 14,화요일,맑음,대구광역시 중구 동인동1가,교차로 - 교차로안,건조,차대차,3"


def _file(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"{DACON_HEADER}\n{GOOD}\n".encode(), "utf-8"),
        (codecs.BOM_UTF8 + f"{DACON_HEADER}\n{GOOD}\n".encode(), "utf-8-sig"),
        (f"{DACON_HEADER}\n{GOOD}\n".encode("cp949"), "cp949"),
    ],
)
def test_the_encoding_is_detected(raw: bytes, expected: str) -> None:
    assert encoding_of(io.BytesIO(raw)) == expected


@pytest.mark.parametrize(
    ("raw", "declared", "message"),
    [
        (b"", None, "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None, "a binary file"),
        (gzip.compress(b"a,b\n1,2\n", mtime=0), None, "a gzip file"),
        (f"{DACON_HEADER}\n{GOOD}\n".encode("cp949"), "utf-8", "declared utf-8 but is not UTF-8"),
        (b"a,b\n\xff\xfe\xfa\xfb\xff\n", None, "neither UTF-8 nor CP949"),
        (b"a,b\n1,2\n", "latin-9", "encoding 'latin-9' is not supported"),
    ],
)
def test_unusable_files_say_why(raw: bytes, declared: str | None, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        encoding_of(io.BytesIO(raw), declared)


def test_an_invalid_byte_past_the_first_megabyte_is_found() -> None:
    body = (GOOD + "\n") * 20_000
    raw = f"{DACON_HEADER}\n{body}".encode() + b"\xff\n"
    assert len(raw) > 2 << 20
    with pytest.raises(DataFileError, match=f"not UTF-8 \\(undecodable bytes at offset {len(raw) - 2}\\)"):
        encoding_of(io.BytesIO(raw))


def test_layouts_are_detected_and_unknown_headers_refused() -> None:
    assert file_format(_file(f"{DACON_HEADER}\n{GOOD}\n")).layout == DACON
    api = ",".join(f.name for f in INPUT_FIELDS) + "\n"
    fmt = file_format(_file(api))
    assert fmt.layout == API and not fmt.has_outcomes
    with pytest.raises(DataFileError, match="no header naming the columns"):
        file_format(_file(f"{GOOD}\n{GOOD}\n"))
    with pytest.raises(DataFileError, match="at most 3 are accepted"):
        file_format(_file(f"{DACON_HEADER}\n"), max_columns=3)


def test_rows_are_checked_against_the_model_and_problems_name_the_file_column(small_model: EcloModel) -> None:
    rows = [
        GOOD,
        "A2,2021-03-02 99,화요일,맑음,대구광역시 중구 동인동1가,교차로 - 교차로안,건조,차대차,3",
        "A3,어제,화요일,맑음,대구광역시 중구 동인동1가,교차로 - 교차로안,건조,차대차,3",
        "A4,2021-03-02 14,화요일,황사,대구광역시 중구 동인동1가,교차로 - 교차로안,건조,차대차,x",
        "A5,2021-03-02 14,화요일",
        "",
        "A7,2021-03-02 14,화요일,맑음,대구광역시 중구 동인동1가,교차로 - 교차로안,건조,차대차," + "9" * 600,
    ]
    handle = _file(DACON_HEADER + "\n" + "\n".join(rows) + "\n", "cp949")
    fmt = file_format(handle)
    checked = list(check_rows(handle, fmt, small_model, max_cell_chars=500))
    assert [c.index for c in checked] == [0, 1, 2, 3, 4, 5]  # the blank line is no row to csv
    assert checked[0].row is not None and checked[0].problems == [] and checked[0].target == 3.0
    assert checked[0].row["accident_hour"] == 14 and checked[0].row["weather"] == "맑음"
    assert [(p.column, p.value) for p in checked[1].problems] == [("사고일시", "2021-03-02 99")]
    assert "between 0 and 23" in checked[1].problems[0].problem
    assert [(p.column, p.problem) for p in checked[2].problems] == [("사고일시", "must be 'YYYY-MM-DD HH'")]
    assert [(p.row, p.column, p.value) for p in checked[3].problems] == [(4, "기상상태", "황사")]
    assert checked[3].target is None  # an unreadable ECLO is no outcome
    assert checked[4].problems[0].problem == "has 3 cells; the header names 9 columns"
    assert checked[5].problems[0].column == "ECLO" and "longer than 500" in checked[5].problems[0].problem
    for bad in checked[1:]:
        assert bad.row is None


def test_api_layout_rows_keep_their_fields(small_model: EcloModel, classic_row: dict) -> None:
    header = ",".join(classic_row)
    line = ",".join(str(v) for v in classic_row.values())
    odd = line.replace(",14,", ",²,")
    handle = _file(f"{header}\n{line}\n{odd}\n")
    checked = list(check_rows(handle, file_format(handle), small_model))
    assert checked[0].row == {k: str(v) for k, v in classic_row.items()}
    assert small_model.predict_one(checked[0].row).eclo == small_model.predict_one(classic_row).eclo
    assert [(p.column, p.value) for p in checked[1].problems] == [("accident_hour", "²")]
