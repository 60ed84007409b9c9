"""Readings CSVs, long and wide, as the API's readings."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

import pandas as pd

from frontend.readings_csv import readings_of, template_csv

LA = ZoneInfo("America/Los_Angeles")


def _table(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])


def test_the_wide_layout_gives_one_reading_per_filled_cell_with_the_chosen_zone() -> None:
    table = _table("timestamp,773869,A-7\n2012-03-01 00:00:00,64.4,\n2012-03-01 00:05:00,0,abc\n")
    readings, lines, problems = readings_of(table, LA, {"773869", "A-7"})
    assert readings == [
        {"sensor_id": "773869", "timestamp": "2012-03-01T00:00:00-08:00", "speed_mph": 64.4},
        {"sensor_id": "773869", "timestamp": "2012-03-01T00:05:00-08:00", "speed_mph": 0.0},
        {"sensor_id": "A-7", "timestamp": "2012-03-01T00:05:00-08:00", "speed_mph": "abc"},
    ]
    assert lines == [2, 3, 3] and problems[:2] == [None, None] and "abc" in problems[2]


def test_the_long_layout_keeps_zones_written_and_names_each_rows_problem() -> None:
    table = _table(
        "Sensor_ID,timestamp,speed_mph,volume\n"
        "s1,2024-05-01T08:00:00+09:00,50,900\n"
        "s2,2024-05-01T08:00:00,50,\n"
        "s1,later,50,\n"
        "s1,2024-05-01T08:05:00Z,fast,\n"
    )
    readings, lines, problems = readings_of(table, LA, {"s1"})
    assert readings[0] == {"sensor_id": "s1", "timestamp": "2024-05-01T08:00:00+09:00", "speed_mph": 50.0,
                           "volume": 900.0}  # fmt: skip
    assert readings[1]["timestamp"] == "2024-05-01T08:00:00-07:00" and "volume" not in readings[1]
    assert lines == [2, 3, 4, 5]
    assert problems[0] is None and "not registered" in problems[1]
    assert "not an ISO-8601 time" in problems[2] and "speed_mph 'fast'" in problems[3]


def test_the_template_reads_back_as_three_valid_readings_of_registered_sensors() -> None:
    sensors = ["773869", "767541", "767542", "717447"]
    table = pd.read_csv(io.BytesIO(template_csv(sensors)), dtype=str, keep_default_na=False, na_values=[""])
    readings, _, problems = readings_of(table, ZoneInfo("UTC"), set(sensors))
    assert [r["sensor_id"] for r in readings] == sensors[:3] and problems == [None, None, None]
    assert all(r["timestamp"].endswith("-08:00") for r in readings)
