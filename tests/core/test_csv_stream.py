"""Every CSV the service writes is safe to open in a spreadsheet: formulas are neutralised, numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from backend.core.csv_stream import csv_chunks, safe_cell

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-3.5", "-3.5"),
        ("+12", "+12"),
        ("-1e5", "-1e5"),
        ("맑음", "맑음"),
        ("", ""),
        (-3.5, -3.5),
        (None, None),
    ],
)
def test_formulas_are_neutralised_and_numbers_kept(cell: object, written: object) -> None:
    assert safe_cell(cell) == written


def test_every_cell_of_a_written_csv_is_safe() -> None:
    rows = [["=1+1", -2, "-2", "@x"], ["ok", 1.5, None, "+-"]]
    text = b"".join(csv_chunks(["a", "=b", "c", "d"], rows, chunk_rows=1)).decode("utf-8-sig")
    read = list(csv.reader(io.StringIO(text)))
    assert read == [["a", "'=b", "c", "d"], ["'=1+1", "-2", "-2", "'@x"], ["ok", "1.5", "", "'+-"]]
