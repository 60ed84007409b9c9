"""What the pages show of a value: every category the model knows has its English hint, counts read as words."""

from __future__ import annotations

import pytest

from backend.ml.eclo.model import EcloModel
from frontend.labels import ENGLISH, label, plural
from frontend.tables import utc

pytestmark = pytest.mark.unit


def test_every_category_of_the_model_has_an_english_hint(default_model: EcloModel) -> None:
    for field, values in default_model.allowed_values().items():
        if field == "district":  # the 구/군 have one; a 동 ("중구 동인동1가") is a name, shown as it is
            values = [v for v in values if " " not in v]
        missing = [v for v in values if any(p.strip() not in ENGLISH for p in v.replace(" - ", "|").split("|"))]
        assert not missing, (field, missing)
    assert label("단일로 - 횡단보도부근") == "단일로 - 횡단보도부근 (road segment - near a crosswalk)"
    assert label("저녁") == "저녁 (evening)"


def test_counts_read_as_words() -> None:
    assert [plural(n, "row") for n in (0, 1, 2, 1000)] == ["0 rows", "1 row", "2 rows", "1,000 rows"]


def test_times_show_as_the_clock_in_utc() -> None:
    assert utc("2026-12-02T08:30:38.312754Z") == "2026-12-02 08:30 UTC"
    assert utc("2026-12-02T08:30:38.312754Z", seconds=True) == "2026-12-02 08:30:38 UTC"
    assert utc("2026-12-02T00:30:38-08:00") == "2026-12-02 08:30 UTC"
    assert utc(None) == "" and utc("") == ""
