"""Reference facts about the Dacon Daegu data (vocabularies, frequencies) used by the data generator.

A trained model's own vocabularies come from its training data, never from here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

REFERENCE_FILE = Path(__file__).with_name("reference_data") / "eclo_vocabulary.json"

DAYS: Final = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")  # Monday first

# Approximate shares of 도로형태 in the Dacon train set (the reference file gives no counts for it).
ROAD_TYPE_SHARES: Final = {
    "단일로 - 기타": 0.46,
    "교차로 - 교차로안": 0.20,
    "교차로 - 교차로부근": 0.15,
    "기타 - 기타": 0.09,
    "교차로 - 교차로횡단보도내": 0.04,
    "주차장 - 주차장": 0.02,
    "단일로 - 교량": 0.01,
    "단일로 - 고가도로위": 0.008,
    "단일로 - 터널": 0.006,
    "단일로 - 지하차도(도로)내": 0.004,
    "미분류 - 미분류": 0.002,
}


@lru_cache(maxsize=1)
def reference() -> dict[str, Any]:
    return json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))


def train_columns() -> list[str]:
    return list(reference()["columns_train"])


def counts(name: str) -> dict[str, int]:
    return dict(reference()["train_counts"][name])


def dongs_by_gu() -> dict[str, list[str]]:
    """구/군 -> its 동/읍/면 names, from the reference 시군구 vocabulary."""
    result: dict[str, list[str]] = {}
    for value in reference()["vocabulary"]["시군구"]:
        _, gu, dong = value.split(" ", 2)
        result.setdefault(gu, []).append(dong)
    return result
