"""The congestion request: a sent reading's time must carry its zone (the answer's times are given in it); epoch
seconds are the UTC instant they are; anything else is left for the model runtime to name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.schemas.traffic import CongestionPredictRequest


def _request(*stamps: object, neighbour: object = None) -> CongestionPredictRequest:
    recent = [{"timestamp": stamp, "speed_mph": 50.0} for stamp in stamps]
    extra = {} if neighbour is None else {"neighbour_readings": {"717510": [{"timestamp": neighbour}]}}
    return CongestionPredictRequest.model_validate({"sensor_id": "773869", "recent": recent, **extra})


@pytest.mark.parametrize("stamp", ["2012-03-07T08:00:00-08:00", "2012-03-07T16:00:00Z", "2012-03-07T17:00+01:00"])
def test_a_time_with_a_zone_is_kept_as_sent(stamp: str) -> None:
    assert _request(stamp).recent == [{"timestamp": stamp, "speed_mph": 50.0}]


def test_a_time_without_a_zone_is_refused_naming_the_reading() -> None:
    with pytest.raises(ValidationError) as refused:
        _request("2012-03-07T08:00:00-08:00", "2012-03-07T08:05:00", neighbour="2012-03-07")
    errors = [(e["loc"], e["msg"]) for e in refused.value.errors()]
    assert errors == [
        (("recent", 1), "timestamp has no time zone: '2012-03-07T08:05:00'; add Z (UTC) or an offset such as +09:00"),
        (("neighbour_readings", "717510", 0), "timestamp has no time zone: '2012-03-07'; add Z (UTC) or an offset "
                                              "such as +09:00"),
    ]  # fmt: skip


def test_epoch_seconds_are_read_as_utc() -> None:
    request = _request(1331136000, 1331136300.5, neighbour=1331136000)
    assert [r["timestamp"] for r in request.recent or []] == [
        "2012-03-07T16:00:00+00:00",
        "2012-03-07T16:05:00.500000+00:00",
    ]
    assert request.neighbour_readings == {"717510": [{"timestamp": "2012-03-07T16:00:00+00:00"}]}


@pytest.mark.parametrize("stamp", ["soon", True, -1, 1e20, float("nan"), ["2012"], "2" * 41])
def test_what_is_no_time_is_left_for_the_model_runtime_to_name(stamp: object) -> None:
    assert (_request(stamp).recent or [])[0]["timestamp"] is stamp
