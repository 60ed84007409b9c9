"""Input fields read from a request schema: the shape of ECLO's (name, description, kind, required, bounds), nested
objects' fields under `items`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from backend.ml.congestion.model import MAX_READINGS
from backend.schemas.models import REQUEST_INPUT_FIELDS, ModelInfo, input_fields
from backend.schemas.traffic import MAX_NEIGHBOURS


class Point(BaseModel):
    x: int = Field(ge=0, le=9, description="across")
    label: str | None = None


class Body(BaseModel):
    name: str = Field(min_length=1, max_length=5, description="what it is")
    points: list[Point] | None = Field(default=None, max_length=3, description="where")
    by_key: dict[str, list[Point]] = Field(max_length=2, description="points by key")


def test_fields_are_read_from_the_json_schema_with_nested_objects() -> None:
    point = [
        {"name": "x", "description": "across", "kind": "integer", "required": True, "low": 0, "high": 9},
        {"name": "label", "kind": "string", "required": False},
    ]
    assert input_fields(Body) == [
        {"name": "name", "description": "what it is", "kind": "string", "required": True, "min_length": 1,
         "max_length": 5},
        {"name": "points", "description": "where", "kind": "list", "required": False, "max_items": 3, "items": point},
        {"name": "by_key", "description": "points by key", "kind": "map of lists", "required": True, "max_items": 2,
         "items": point},
    ]  # fmt: skip


def test_the_congestion_request_is_described_whole() -> None:
    fields = {f["name"]: f for f in REQUEST_INPUT_FIELDS["congestion"]}
    assert list(fields) == ["sensor_id", "recent", "neighbour_readings"]
    assert {k: fields["sensor_id"][k] for k in ("kind", "required", "min_length", "max_length")} == {
        "kind": "string", "required": True, "min_length": 1, "max_length": 64}  # fmt: skip
    recent = fields["recent"]
    assert (recent["kind"], recent["required"], recent["min_items"], recent["max_items"]) == (
        "list", False, 1, MAX_READINGS)  # fmt: skip
    reading = {f["name"]: f for f in recent["items"]}
    assert list(reading) == ["sensor_id", "timestamp", "speed_mph", "volume", "occupancy", "traffic_data"]
    assert reading["timestamp"]["required"] and "zone" in reading["timestamp"]["description"]
    assert (reading["speed_mph"]["low"], reading["speed_mph"]["high"]) == (0, 120)
    assert [f["name"] for f in reading["traffic_data"]["items"]] == [
        "speed_mph", "volume_vehicles_per_hour", "occupancy_percent"]  # fmt: skip
    neighbours = fields["neighbour_readings"]
    assert (neighbours["kind"], neighbours["max_items"], neighbours["items"]) == (
        "map of lists", MAX_NEIGHBOURS, recent["items"])  # fmt: skip
    assert all(f.get("description") for f in [*fields.values(), *reading.values()])


def test_a_kind_that_lists_its_own_input_fields_keeps_them() -> None:
    info = {"name": "m", "kind": "congestion", "version": "1", "trained_at": None, "rows": None, "data_source": None,
            "lightgbm_version": None, "num_trees": None, "metrics": {}, "features": []}  # fmt: skip
    assert ModelInfo.of(info).input_fields == REQUEST_INPUT_FIELDS["congestion"]
    own = [{"name": "x", "kind": "integer", "required": True}]
    assert ModelInfo.of({**info, "input_fields": own}).input_fields == own
    assert ModelInfo.of({**info, "kind": "echo"}).input_fields == []
