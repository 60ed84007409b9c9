"""The network's sensors answered whole from plain rows: the same fields and JSON the schema gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from backend.db import readings
from backend.db.models import Sensor
from backend.schemas.traffic import SensorOut
from backend.services import traffic

SENSORS = TypeAdapter(list[SensorOut])


def test_sensors_and_current_are_what_the_schema_writes(db_session: Session) -> None:
    db_session.add_all([
        Sensor(sensor_id="a", latitude=34.1, longitude=-118.2, name="A st", free_flow_mph=65.0),
        Sensor(sensor_id="b", latitude=34.2, longitude=-118.3),
        Sensor(sensor_id="c", latitude=34.3, longitude=-118.4, free_flow_mph=60.0),
    ])  # fmt: skip
    db_session.flush()  # stored readings must name registered sensors
    now = datetime.now(UTC).replace(microsecond=0)
    readings.insert_new(db_session, [("a", now - timedelta(minutes=5), 30.5, None, None, -420),
                                     ("b", now - timedelta(minutes=10), 0.0, None, None, 0),
                                     ("a", now - timedelta(minutes=10), 64.0, None, None, -420)])  # fmt: skip
    db_session.commit()
    every = traffic.list_sensors(db_session)
    current = traffic.current(db_session)
    assert [s["sensor_id"] for s in every] == ["a", "b", "c"] and [s["sensor_id"] for s in current] == ["a", "b"]
    checked = SENSORS.validate_python(every)
    assert SENSORS.dump_json(checked) == orjson.dumps(every, option=orjson.OPT_UTC_Z)  # as FastAPI would write
    a, b, c = checked
    assert a.latest is not None and a.latest.speed_mph == 30.5 and a.latest.level is not None
    assert a.latest.timestamp == now - timedelta(minutes=5) and a.latest.timestamp.utcoffset() == timedelta(hours=-7)
    assert 290 <= a.latest.age_seconds < 600
    assert b.latest is not None and b.latest.level is None  # no free-flow speed, and 0 is a missing reading
    assert c.latest is None
