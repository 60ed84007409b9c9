"""`python -m backend.cli.replay --shift-to-now`: the steps keep their spacing, the last one lands on now's mark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd

from backend.cli.replay import readings_of_step, shifted_to_now

LA_WINTER = timezone(timedelta(hours=-8))


def test_the_last_step_lands_on_the_current_five_minute_mark() -> None:
    index = pd.date_range("2012-03-01 00:00", periods=12, freq="5min")
    speeds = pd.DataFrame({"773869": range(40, 52), "767541": 0.0}, index=index)
    now = datetime(2026, 12, 7, 10, 13, 42, tzinfo=UTC)
    moved = shifted_to_now(speeds, LA_WINTER, now)
    assert list(moved["773869"]) == list(speeds["773869"])
    assert moved.index[-1] == pd.Timestamp("2026-12-07 02:10")  # 10:13 UTC is 02:13 at -08:00
    assert (moved.index[1:] - moved.index[:-1] == pd.Timedelta(minutes=5)).all()
    last = readings_of_step(moved, 11, LA_WINTER)
    assert last == [{"sensor_id": "773869", "timestamp": "2026-12-07T02:10:00-08:00", "speed_mph": 51.0}]  # 0: missing
