"""Replay speeds into the live feed, as road-side sensors would publish them: one 5-minute step of every sensor
at a time, `--rate` times faster than real time.

    python -m backend.cli.replay [--speeds FILE] [--rate 60] [--utc-offset -08:00] [--start ISO] [--steps N]
                                 [--shift-to-now]

Without `--speeds`, the generator's network (the default model's 207 sensors) is replayed. Zeros (missing) are
not published. Timestamps are the file's, in the zone `--utc-offset` names, or with `--shift-to-now` moved so that
the last step replayed falls on the current 5-minute mark (`--steps 12 --shift-to-now`: the last hour, ending now).
The sensors must be registered (`make run` registers the congestion model's). For a network that keeps running in
real time, see the demo feed (backend.services.demo_feed).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from backend.core.config import get_settings
from backend.core.redis import sync_redis
from backend.ml.congestion.loaders import read_speeds
from backend.ml.congestion.network import generate_network
from backend.services.feed import publish, stream_key


def _rate(text: str) -> float:
    value = float(text.lower().removesuffix("x"))
    if not 0 < value <= 1_000_000:
        raise argparse.ArgumentTypeError("a speed-up from above 0 to 1,000,000 (e.g. 60 or 60x)")
    return value


def _offset(text: str) -> timezone:
    try:
        moment = datetime.fromisoformat(f"2000-01-01T00:00:00{text}")
    except ValueError as exc:
        raise argparse.ArgumentTypeError("an offset such as +09:00, -08:00 or Z") from exc
    assert moment.utcoffset() is not None
    return timezone(moment.utcoffset())  # type: ignore[arg-type]


def readings_of_step(speeds: pd.DataFrame, row: int, zone: timezone) -> list[dict]:
    stamp = speeds.index[row].to_pydatetime().replace(tzinfo=zone).isoformat()
    values = speeds.iloc[row].to_numpy()
    return [{"sensor_id": str(sensor), "timestamp": stamp, "speed_mph": round(float(v), 2)}
            for sensor, v in zip(speeds.columns, values, strict=True) if np.isfinite(v) and v > 0]  # fmt: skip


def shifted_to_now(speeds: pd.DataFrame, zone: timezone, now: datetime) -> pd.DataFrame:
    """The same steps, the last one on the 5-minute mark at or before `now` (local times of `zone`)."""
    mark = now.astimezone(zone).replace(tzinfo=None)
    mark = pd.Timestamp(mark).floor("5min")
    return speeds.set_axis(speeds.index + (mark - speeds.index[-1]), axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.cli.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--speeds", type=Path, help="wide CSV (.csv or .csv.gz) or .h5; default: generated")
    parser.add_argument("--rate", type=_rate, default=60.0, help="speed-up over real time (default 60x)")
    parser.add_argument("--utc-offset", type=_offset, default=UTC, help="zone of the file's times")
    parser.add_argument("--start", help="first timestamp to publish (ISO, the file's local time)")
    parser.add_argument("--steps", type=int, help="stop after this many 5-minute steps")
    parser.add_argument(
        "--shift-to-now", action="store_true", help="move the timestamps: the last step on the current 5-minute mark"
    )
    args = parser.parse_args(argv)
    speeds = read_speeds(args.speeds) if args.speeds else generate_network(weeks=1, seed=2024).speeds
    if args.start:
        speeds = speeds[speeds.index >= pd.Timestamp(args.start)]
    if args.steps:
        speeds = speeds.iloc[: args.steps]
    if speeds.empty:
        parser.error("no step to replay (check --start and --steps)")
    if args.shift_to_now:
        speeds = shifted_to_now(speeds, args.utc_offset, datetime.now(UTC))
    settings = get_settings()
    client = sync_redis(settings.redis_url, settings)
    stream = stream_key(settings)
    interval = timedelta(minutes=5).total_seconds() / args.rate
    print(f"replaying {len(speeds)} steps of {speeds.shape[1]} sensors into {stream} at {args.rate:g}x "
          f"(a step every {interval:.2f} s)", flush=True)  # fmt: skip
    started = time.monotonic()
    published = 0
    for row in range(len(speeds)):
        published += publish(client, stream, readings_of_step(speeds, row, args.utc_offset))
        if row % 12 == 11 or row == len(speeds) - 1:
            print(f"{speeds.index[row]}: {published:,} readings published", flush=True)
        delay = started + (row + 1) * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
