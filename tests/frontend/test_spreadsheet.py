"""The dashboard's CSV downloads are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from frontend.spreadsheet import csv_bytes

pytestmark = pytest.mark.unit


def test_formula_cells_are_neutralised_and_numbers_kept() -> None:
    frame = pd.DataFrame({"=name": ["=HYPERLINK(1)", "-3.5", "@x", "맑음"], "speed": [-1.5, 2.0, 3.0, 4.0]})
    rows = list(csv.reader(io.StringIO(csv_bytes(frame).decode("utf-8"))))
    assert rows == [["'=name", "speed"], ["'=HYPERLINK(1)", "-1.5"], ["-3.5", "2.0"], ["'@x", "3.0"], ["맑음", "4.0"]]
