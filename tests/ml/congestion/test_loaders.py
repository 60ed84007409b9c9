"""The METR-LA layouts read from small files the tests write, and each kind of bad file named."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.ml.congestion.loaders import (
    check_sensors,
    neighbours_by_distance,
    neighbours_from_edges,
    read_edges,
    read_sensors,
    read_speeds,
)
from backend.ml.errors import DataFileError

HEADER = "timestamp,773869,767541\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_wide_layout_plain_and_gzipped(small_network: dict[str, Path]) -> None:
    plain, gz = read_speeds(small_network["speeds"]), read_speeds(small_network["speeds_gz"])
    assert plain.shape == gz.shape == (2 * 7 * 288, 24)
    assert list(plain.columns) == list(gz.columns) and plain.columns[0] == "773869"
    assert (plain.to_numpy() == 0).any()  # outages stay 0 = missing
    assert str(plain.index[1] - plain.index[0]) == "0 days 00:05:00"


def test_the_sensor_table_with_and_without_a_header(small_network: dict[str, Path]) -> None:
    with_header = read_sensors(small_network["sensors"])
    without = read_sensors(small_network["sensors_headerless"])
    assert list(without.columns) == ["sensor_id", "latitude", "longitude"]
    assert without.equals(with_header) and without.sensor_id[0] == "773869"


def test_neighbours_from_edges_or_coordinates(small_network: dict[str, Path]) -> None:
    sensors = read_sensors(small_network["sensors"])
    ids = list(sensors.sensor_id)
    from_edges = neighbours_from_edges(read_edges(small_network["edges"]), ids)
    nearest = neighbours_by_distance(sensors, k=3)
    assert all(s not in from_edges[s] and 0 < len(from_edges[s]) <= 4 for s in ids)
    assert all(len(nearest[s]) == 3 and s not in nearest[s] for s in ids)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sensor,773869\nnorth,61.0\n", "the first column must hold timestamps; line 2 has 'north'"),
        (HEADER + "2012-03-01 00:00:00,61,fast\n", "speeds must be numbers; column '767541', line 2 has 'fast'"),
        (HEADER + "2012-03-01 00:00:00,61,60\n2012-03-01 00:10:00,61,60\n", "readings must be every 5 minutes"),
    ],
)
def test_a_speed_file_that_does_not_fit_says_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataFileError, match=message.replace("(", r"\(")):
        read_speeds(_write(tmp_path / "speeds.csv", text))


def test_sensors_absent_from_the_sensor_table_are_named(tmp_path: Path) -> None:
    speeds = read_speeds(_write(tmp_path / "s.csv", HEADER + "2012-03-01 00:00:00,61,60\n"))
    sensors = read_sensors(_write(tmp_path / "t.csv", "0,773869,34.1,-118.3\n"))
    with pytest.raises(DataFileError, match="absent from the sensor table: 767541"):
        check_sensors(speeds, sensors)


def test_a_sensor_table_with_a_bad_coordinate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="latitude must be a number; line 2"):
        read_sensors(_write(tmp_path / "t.csv", "0,773869,34.1,-118.3\n1,767541,north,-118.2\n"))
