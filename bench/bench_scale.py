"""The service at scale (issue 37): networks of many sensors with weeks of readings, and millions of records.

Per sensor count (default 207, 2,000 and 10,000), a PostgreSQL database of its own (`bench_scale_<sensors>`, made
and dropped by the script) and a real API process (`python -m backend.api.server`, as `make run` starts it) with the
default settings except DATABASE_URL, DEMO_FEED=off, no feed consumer (FEED_ENABLED=false) and the per-key rate
limit raised out of the way (still checked); auth on, with an admin key made for the run. The sensors are registered
through `PUT /api/traffic/sensors`: the first 207 are the congestion model's own (its ids, coordinates and free-flow
speeds), the others generated around Los Angeles, each following one model sensor's usual speeds. Then, for each
history length (default 1, 7 and 30 days, extended backwards so the newest reading stays put), 5-minute readings
are COPYed into `traffic_readings` (binary COPY, daily partitions made first when the table is partitioned),
`latest_readings` is filled, the loaded hours are marked and rolled up (`backend.db.rollups.roll_up`), and the
database is vacuumed and analysed (the server runs with autovacuum off). Measured through HTTP (httpx, one
keep-alive connection, requests one after another), medians of --rounds rounds:

- `GET /api/traffic/current` and `GET /api/traffic/forecast` (the forecast covers the congestion model's sensors);
- one sensor's last 24 h of readings (`GET /api/traffic/sensors/{id}/readings?since=&until=&size=288`) and its
  profile (`GET /api/traffic/sensors/{id}/profile`), a different sensor each round;
- readings ingest: --ingest-readings distinct new readings a round, every sensor over the 5-minute steps right
  after the history, in calls of 10,000 to `POST /api/traffic/readings`, bodies encoded before the clock starts,
  sent by --clients processes (httpx, one keep-alive connection each, taking every n-th body); after each round the
  ingested readings are removed (their daily partitions truncated) and `latest_readings` put back, untimed, so every
  round meets the same history. Baseline in the same run: the same ingest into the empty database.
- the readings' size on disk (`pg_total_relation_size` of the table and its partitions) per sensor-day;
- `GET /health/live` beside each set, the floor of an HTTP request on this machine.

Records: a database of their own (`bench_scale_records`), --records ECLO prediction records COPYed in (inputs of
generated Dacon rows scored by the served ECLO model, spread over the last 30 days), then the listing
`GET /api/predictions`: its first page and its 1,000th (the cursor `next` followed 999 times, untimed, then the
1,000th page fetched by its cursor and timed); each round lists the records before a different time (`until`), so
no round reads another's pages.

The growth between sizes is computed per measure from the ratio of its figures (log-log slope): flat, sub-linear,
linear or super-linear in sensors, in history and in records. The issue's targets are printed beside the figures.

Usage: python bench/bench_scale.py [--sizes 207,2000,10000] [--days 1,7,30] [--records 1000000,10000000]
       [--rounds 7] [--clients 4] [--ingest-readings 200000] [--keep] [--quick]
--quick: 207 sensors, 1 day, 100,000 records. PostgreSQL at TEST_POSTGRES_URL's server (or --postgres), Redis
database 14 of REDIS_URL's server under a key prefix of its own.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import multiprocessing
import os
import shutil
import statistics
import struct
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import orjson
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from backend.db.session import make_engine, session_factory
from backend.dev.processes import ProcessGroup, free_port
from backend.ml.congestion.model import CongestionModel
from backend.schemas.traffic import MAX_READINGS_PER_CALL, MAX_SENSORS_PER_CALL
from backend.services.keys import key_id_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import bench_env, make_key, start_server  # noqa: E402
from results import run_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
STEP_SECONDS = 300
STEPS_PER_DAY = 288
PG_EPOCH = 946_684_800  # 2000-01-01 in Unix seconds: PostgreSQL's binary timestamps count microseconds from it
CHUNK_STEPS = 12  # steps generated and sent to COPY at a time (an hour of readings)
DEEP_PAGE = 1000
PAGE_SIZE = 20  # the records listing's default page size
RECORD_DAYS = 30
QUICK = {"sizes": [207], "days": [1], "records": [100_000]}

# (measure, what, better, target, unit) at 10,000 sensors x 30 days, and at 10 M records (issue 37, "Done when").
TARGETS = [
    ("current", "`GET /api/traffic/current`", "<", 100.0, "ms"),
    ("forecast", "`GET /api/traffic/forecast`", "<", 2000.0, "ms"),
    ("readings", "one sensor's 24 h readings", "<", 100.0, "ms"),
    ("profile", "one sensor's profile", "<", 100.0, "ms"),
    ("ingest", "readings ingest over REST", ">=", 50_000.0, "readings/s"),
]
TARGET_SIZE = (10_000, 30)
RECORD_TARGETS = [("first_page", "records listing, first page"), ("deep_page", "records listing, 1,000th page")]
TARGET_RECORDS = 10_000_000
RECORD_TARGET_MS = 100.0

STARTED = time.monotonic()


def say(message: str) -> None:
    elapsed = time.monotonic() - STARTED
    print(f"[{int(elapsed // 60):3d}:{int(elapsed % 60):02d}] {message}", flush=True)


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def ints(text_: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text_.split(",") if part.strip()]


# --- what exists of the work on issue 37 (each part is used only when present) ---------------------------------


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def table_exists(engine: Engine, table: str) -> bool:
    with engine.connect() as connection:
        return connection.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar() is True


def is_partitioned(engine: Engine, table: str) -> bool:
    with engine.connect() as connection:
        kind = connection.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table})
        return kind.scalar() == "p"


def ensure_days(engine: Engine, table: str, first: date, last: date) -> int:
    """Daily partitions of `table` from `first` to `last` (inclusive) through `ensure_partitions`, when it exists."""
    if not module_exists("backend.db.partitions"):
        return 0
    partitions = importlib.import_module("backend.db.partitions")
    with engine.begin() as connection:
        return len(partitions.ensure_partitions(connection, table, first, last) or [])


@dataclass
class Found:
    """The parts of issue 37 this run found, said in the output."""

    parts: dict[str, str] = field(default_factory=dict)

    def note(self, part: str, what: str) -> None:
        if self.parts.get(part) != what:
            self.parts[part] = what
            say(f"{part}: {what}")


# --- the generated network and its readings --------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    ids: list[str]
    latitude: np.ndarray
    longitude: np.ndarray
    free_flow: np.ndarray
    follows: np.ndarray  # the model sensor whose usual speeds each sensor follows
    scale: np.ndarray  # its free flow over that model sensor's
    model_sensors: int

    def __len__(self) -> int:
        return len(self.ids)


def make_network(count: int, model: CongestionModel) -> Network:
    """The model's sensors first (as many as `count` takes), then generated ones around Los Angeles."""
    own = min(count, len(model.sensor_ids))
    sensors = model.metadata["sensors"][:own]
    rng = np.random.default_rng(37)
    extra = count - own
    follows = np.concatenate([np.arange(own), rng.integers(0, len(model.sensor_ids), extra)])
    free_flow = np.concatenate([
        model.free_flow[:own], np.round(model.free_flow[follows[own:]] * rng.uniform(0.95, 1.05, extra), 1)
    ])  # fmt: skip
    ids = [s["sensor_id"] for s in sensors] + [f"G{i:05d}" for i in range(own, count)]
    widths = {len(i) for i in ids}
    assert widths == {6}, f"the binary COPY below writes 6-byte sensor ids; got widths {widths}"
    return Network(
        ids=ids,
        latitude=np.concatenate([[s["latitude"] for s in sensors], rng.uniform(33.75, 34.35, extra)]),
        longitude=np.concatenate([[s["longitude"] for s in sensors], rng.uniform(-118.65, -117.95, extra)]),
        free_flow=free_flow,
        follows=follows,
        scale=free_flow / model.free_flow[follows],
        model_sensors=own,
    )


def local_steps(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weekday, 5-minute slot of the day, UTC offset in minutes) of each step, in Los Angeles time."""
    moments = [datetime.fromtimestamp(int(s) * STEP_SECONDS, UTC).astimezone(LOS_ANGELES) for s in steps]
    weekday = np.array([m.weekday() for m in moments])
    slot = np.array([m.hour * 12 + m.minute // 5 for m in moments])
    offset = np.array([int(m.utcoffset().total_seconds() // 60) for m in moments])  # type: ignore[union-attr]
    return weekday, slot, offset


def speeds(network: Network, model: CongestionModel, steps: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(speeds (steps, sensors) in mph with 2 decimals, UTC offsets (steps,)): each sensor's usual speed for the
    local weekday and slot, scaled to its free flow, with noise."""
    weekday, slot, offset = local_steps(steps)
    usual = model.profiles.filled[network.follows[None, :], weekday[:, None], slot[:, None]].astype(np.float64)
    noise = np.random.default_rng([seed, int(steps[0])]).standard_normal(usual.shape) * 1.5
    values = np.clip(usual * network.scale + noise, 3.0, network.free_flow * 1.05)
    return np.round(values, 2), offset


PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
PGCOPY_TRAILER = struct.pack(">h", -1)
# One reading in PostgreSQL's binary COPY format: 6 fields, each its length then its value (volume and occupancy
# NULL: length -1, as METR-LA and the demo feed send speeds only).
READING_ROW = np.dtype([
    ("fields", ">i2"), ("id_length", ">i4"), ("sensor_id", "S6"), ("time_length", ">i4"), ("time", ">i8"),
    ("speed_length", ">i4"), ("speed", ">f8"), ("volume_length", ">i4"), ("occupancy_length", ">i4"),
    ("offset_length", ">i4"), ("offset", ">i2"),
])  # fmt: skip
READING_COLUMNS = 'sensor_id, "timestamp", speed_mph, volume, occupancy, utc_offset_minutes'


def binary_readings(network: Network, model: CongestionModel, first: int, last: int) -> Iterator[bytes]:
    """Every sensor's readings of the steps first <= step < last, time after time (as a live feed stores them),
    as one binary COPY stream; progress printed each day."""
    ids = np.array([i.encode() for i in network.ids], dtype="S6")
    yield PGCOPY_HEADER
    started, total = time.monotonic(), (last - first) * len(network)
    for start in range(first, last, CHUNK_STEPS):
        steps = np.arange(start, min(start + CHUNK_STEPS, last))
        values, offsets = speeds(network, model, steps, seed=1)
        rows = np.empty(values.size, READING_ROW)
        rows["fields"], rows["id_length"], rows["time_length"], rows["speed_length"] = 6, 6, 8, 8
        rows["volume_length"], rows["occupancy_length"], rows["offset_length"] = -1, -1, 2
        rows["sensor_id"] = np.tile(ids, len(steps))
        rows["time"] = np.repeat((steps * STEP_SECONDS - PG_EPOCH) * 1_000_000, len(network))
        rows["speed"] = values.ravel()
        rows["offset"] = np.repeat(offsets, len(network))
        yield rows.tobytes()
        done = (steps[-1] + 1 - first) * len(network)
        if (steps[-1] + 1 - first) % STEPS_PER_DAY == 0 and steps[-1] + 1 < last:
            rate = done / max(time.monotonic() - started, 1e-9)
            say(f"  ... {done:,} of {total:,} readings ({rate:,.0f}/s)")
    yield PGCOPY_TRAILER


class Stream:
    """A file to read from for COPY ... FROM STDIN, made of byte chunks produced on demand."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.buffer = b""
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            rest = b"".join([self.buffer[self.position :], *self.chunks])
            self.buffer, self.position = b"", 0
            return rest
        while len(self.buffer) - self.position < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer, self.position = self.buffer[self.position :] + chunk, 0
        out = self.buffer[self.position : self.position + size]
        self.position += len(out)
        return out


def copy_in(engine: Engine, statement: str, chunks: Iterable[bytes]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.copy_expert(statement, Stream(chunks), size=1 << 20)
        raw.commit()
    finally:
        raw.close()


def moment(step: int) -> datetime:
    return datetime.fromtimestamp(step * STEP_SECONDS, UTC)


def load_history(engine: Engine, network: Network, model: CongestionModel, first: int, last: int, end: datetime,
                 found: Found) -> None:  # fmt: skip
    """Readings of the steps first <= step < last COPYed in, with what production keeps beside them: partitions
    made first, `latest_readings` filled, the hours marked and rolled up; then VACUUM ANALYZE."""
    made = ensure_days(engine, "traffic_readings", moment(first).date(), moment(last - 1).date())
    partitioned = is_partitioned(engine, "traffic_readings")
    found.note("partitions", "traffic_readings partitioned by day (backend.db.partitions.ensure_partitions)"
               if partitioned else "traffic_readings not partitioned")  # fmt: skip
    say(f"  COPY {(last - first) * len(network):,} readings ({moment(first):%Y-%m-%d %H:%M} to "
        f"{moment(last):%Y-%m-%d %H:%M} UTC; {made} partitions made)")  # fmt: skip
    started = time.monotonic()
    copy_in(engine, f"COPY traffic_readings ({READING_COLUMNS}) FROM STDIN WITH (FORMAT binary)",
            binary_readings(network, model, first, last))  # fmt: skip
    seconds = time.monotonic() - started
    say(f"  COPY done in {seconds:.0f} s ({(last - first) * len(network) / seconds:,.0f} readings/s)")
    put_back_latest(engine, end, found)
    roll_up_hours(engine, moment(first), moment(last), found)
    started = time.monotonic()
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text("VACUUM (ANALYZE)"))
    say(f"  VACUUM (ANALYZE) in {time.monotonic() - started:.0f} s")


def put_back_latest(engine: Engine, end: datetime, found: Found) -> None:
    """`latest_readings` made again from the history's last hour, before `end` (every generated sensor has a reading
    at every step, so each one's newest is there; a max() over the whole table would scan it), when it exists."""
    if not table_exists(engine, "latest_readings"):
        found.note("latest_readings", "absent")
        return
    found.note("latest_readings", "present: filled from the COPYed history (DISTINCT ON (sensor_id))")
    with engine.begin() as connection:
        columns = ", ".join(
            f'"{name}"'
            for name in connection.execute(text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'latest_readings' AND "
                "column_name IN (SELECT column_name FROM information_schema.columns WHERE table_name = "
                "'traffic_readings') ORDER BY ordinal_position"
            )).scalars()
        )  # fmt: skip
        connection.execute(text("DELETE FROM latest_readings"))
        connection.execute(
            text(f"INSERT INTO latest_readings ({columns}) SELECT DISTINCT ON (sensor_id) {columns} "
                 "FROM traffic_readings WHERE \"timestamp\" >= :since AND \"timestamp\" < :end "
                 "ORDER BY sensor_id, \"timestamp\" DESC"),
            {"since": end - timedelta(hours=1), "end": end},
        )  # fmt: skip


def roll_up_hours(engine: Engine, first: datetime, last: datetime, found: Found) -> None:
    """Mark every loaded hour and roll them up as the beat would (`backend.db.rollups.roll_up`), when it exists."""
    if not module_exists("backend.db.rollups") or not table_exists(engine, "reading_rollup_marks"):
        found.note("roll-ups", "absent (the profile reads raw readings)")
        return
    found.note("roll-ups", "present: loaded hours marked, then backend.db.rollups.roll_up until none is left")
    roll_up = importlib.import_module("backend.db.rollups").roll_up
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO reading_rollup_marks (hour) SELECT generate_series(CAST(:first AS timestamptz), "
                 "CAST(:last AS timestamptz), interval '1 hour')"),
            {"first": first, "last": last - timedelta(hours=1)},
        )  # fmt: skip
    hours = int((last - first).total_seconds() // 3600)
    sessions = session_factory(engine)
    started, done, said = time.monotonic(), 0, time.monotonic()
    while True:
        with sessions() as session:
            rolled = roll_up(session)
            session.commit()
        if not rolled:
            break
        done += rolled
        if time.monotonic() - said > 30:
            said = time.monotonic()
            say(f"  ... rolled up {done:,} of {hours:,} hours ({done / (said - started):.1f} hours/s)")
    say(f"  roll-up of {done:,} hours in {time.monotonic() - started:.0f} s")


# Readings, their indexes and roll-ups take about 35 kB a sensor-day (measured); room is kept for WAL and vacuum.
BYTES_PER_SENSOR_DAY = 60_000
DISK_MARGIN = 5 * 2**30


def room_for(engine: Engine, sensor_days: int) -> str | None:
    """Why the server's disk cannot take `sensor_days` more (None: it can, or its disk cannot be seen from here)."""
    with engine.connect() as connection:
        folder = connection.execute(text("SHOW data_directory")).scalar()
    try:
        free = shutil.disk_usage(str(folder)).free
    except OSError:
        return None
    need = sensor_days * BYTES_PER_SENSOR_DAY
    if need + DISK_MARGIN <= free:
        return None
    return f"needs about {need / 2**30:,.1f} GB and {free / 2**30:,.1f} GB are free (keeping {DISK_MARGIN // 2**30} GB)"


def readings_size(engine: Engine) -> tuple[int, int]:
    """(bytes of the readings table with its partitions and indexes, bytes of the roll-ups table)."""
    with engine.connect() as connection:
        readings = connection.execute(text(
            "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('traffic_readings')),"
            " pg_total_relation_size('traffic_readings'))"
        )).scalar()  # fmt: skip
        rollups = connection.execute(text(
            "SELECT CASE WHEN to_regclass('reading_rollups') IS NULL THEN 0 "
            "ELSE pg_total_relation_size('reading_rollups') END"
        )).scalar()  # fmt: skip
    return int(readings or 0), int(rollups or 0)


# --- the API under test -----------------------------------------------------------------------------------------


class Api:
    """A database of the bench's own, migrated, with an admin key, and a real API process serving it."""

    def __init__(self, admin_url: str, name: str, logs: Path, keep: bool) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.name, self.keep = name, keep
        self.url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        with self.admin.connect() as connection:
            if connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                say(f"dropping the database {name} left by an earlier run")
                connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.key = make_key(self.url)  # migrates, then makes a key with every scope
        self.key_id = key_id_of(self.key)
        self.engine = make_engine(self.url)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = bench_env(DATABASE_URL=self.url, AUTH_ENABLED="true", DEMO_FEED="off", MODEL_DIR=str(ROOT / "model"),
                        DATA_DIR=str(logs / name))  # fmt: skip
        self.group = ProcessGroup(logs / name, env)
        start_server(self.group, "api", [sys.executable, "-m", "backend.api.server", "--port", str(port)],
                     f"{self.base}/health/live")  # fmt: skip
        self.headers = {"Authorization": f"Bearer {self.key}"}
        self.client = httpx.Client(base_url=self.base, headers=self.headers, timeout=900)

    def close(self) -> None:
        self.client.close()
        self.group.stop_all()
        self.engine.dispose()
        if self.keep:
            say(f"kept the database {self.name}: {make_url(self.url).render_as_string(hide_password=True)}")
        else:
            with self.admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def get(api: Api, path: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    """(milliseconds from the request sent to the answer read whole, the answer)."""
    started = time.perf_counter()
    response = api.client.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1e3
    if response.status_code != 200:
        raise SystemExit(f"GET {path} {params or ''} answered {response.status_code}: {response.text[:500]}")
    return elapsed, response.json()


@dataclass
class Figure:
    rounds: list[float]
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    def text(self, unit: str = "ms") -> str:
        spread = f"{min(self.rounds):,.1f}-{max(self.rounds):,.1f}"
        if unit == "ms":
            return f"{self.median:,.1f} ms (rounds {spread})"
        return f"{self.median:,.0f} {unit} (rounds {min(self.rounds):,.0f}-{max(self.rounds):,.0f})"


def repeat(rounds: int, one: Callable[[int], tuple[float, str]]) -> Figure:
    """`rounds` calls of `one(round)`, each answering (ms, a note on what it answered)."""
    timings, notes = [], []
    for number in range(rounds):
        elapsed, note = one(number)
        timings.append(elapsed)
        notes.append(note)
    return Figure(timings, notes[0])


def register_sensors(api: Api, network: Network) -> None:
    for start in range(0, len(network), MAX_SENSORS_PER_CALL):
        part = range(start, min(start + MAX_SENSORS_PER_CALL, len(network)))
        sensors = [{"sensor_id": network.ids[i], "latitude": round(float(network.latitude[i]), 5),
                    "longitude": round(float(network.longitude[i]), 5), "free_flow_mph": float(network.free_flow[i])}
                   for i in part]  # fmt: skip
        response = api.client.put("/api/traffic/sensors", json={"sensors": sensors})
        if response.status_code != 200:
            raise SystemExit(f"PUT /api/traffic/sensors answered {response.status_code}: {response.text[:500]}")


def measure_reads(api: Api, network: Network, end: datetime, rounds: int) -> dict[str, Figure]:
    """The read endpoints over the history ending at `end`; sensors differ from round to round."""
    figures: dict[str, Figure] = {}
    figures["live"] = repeat(rounds, lambda r: (get(api, "/health/live")[0], ""))

    def current(_: int) -> tuple[float, str]:
        elapsed, answer = get(api, "/api/traffic/current")
        return elapsed, f"{len(answer):,} sensors with a newest reading"

    def forecast(_: int) -> tuple[float, str]:
        elapsed, answer = get(api, "/api/traffic/forecast")
        covered = len(answer["forecasts"]) + len(answer["unavailable"])
        return elapsed, (f"covers the congestion model's {covered:,} sensors ({len(answer['forecasts']):,} forecast, "
                         f"{len(answer['unavailable']):,} unavailable) of the network's {len(network):,}")  # fmt: skip

    stride = max(1, len(network) // rounds)
    since = (end - timedelta(hours=24)).isoformat()

    def readings(number: int) -> tuple[float, str]:
        sensor = network.ids[(number * stride) % len(network)]
        params = {"since": since, "until": end.isoformat(), "size": STEPS_PER_DAY}
        elapsed, answer = get(api, f"/api/traffic/sensors/{sensor}/readings", params)
        assert len(answer["items"]) == STEPS_PER_DAY, (sensor, len(answer["items"]))
        return elapsed, f"{len(answer['items'])} readings a call"

    def profile(number: int) -> tuple[float, str]:
        sensor = network.ids[(number * stride + stride // 2) % len(network)]
        elapsed, answer = get(api, f"/api/traffic/sensors/{sensor}/profile")
        assert answer["bins"], (sensor, answer)
        return elapsed, f"{len(answer['bins'])} quarter hours over {answer['days']} day(s)"

    for name, one in (("current", current), ("forecast", forecast), ("readings", readings), ("profile", profile)):
        figures[name] = repeat(rounds, one)
        say(f"  {name:<9} {figures[name].text()}; {figures[name].note}")
    return figures


# --- ingest over REST -------------------------------------------------------------------------------------------


def _client(base: str, headers: dict[str, str], tasks: Any, barrier: Any, results: Any) -> None:
    """One load client process: takes its bodies, waits for the others, sends them one after another."""
    with httpx.Client(base_url=base, headers={**headers, "content-type": "application/json"}, timeout=900) as client:
        client.get("/health/live")  # the connection is open before the clock starts
        while (bodies := tasks.get()) is not None:
            totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": 0}
            barrier.wait()
            for body in bodies:
                response = client.post("/api/traffic/readings", content=body)
                if response.status_code != 200:
                    totals["errors"] += 1
                    continue
                answer = response.json()
                totals["accepted"] += answer["accepted"]
                totals["duplicates"] += answer["duplicates"]
                totals["rejected"] += len(answer["rejected"])
            results.put((time.monotonic(), totals))


class IngestClients:
    """`count` processes (spawned: nothing of this one's state), one keep-alive httpx connection each."""

    def __init__(self, api: Api, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = count
        self.barrier = context.Barrier(count + 1)
        self.tasks = [context.Queue() for _ in range(count)]
        self.results = context.Queue()
        self.processes = [
            context.Process(target=_client, args=(api.base, api.headers, q, self.barrier, self.results), daemon=True)
            for q in self.tasks
        ]
        for process in self.processes:
            process.start()

    def send(self, bodies: list[bytes]) -> tuple[float, dict[str, int]]:
        """Client k sends bodies k, k + count, ...; the seconds from all of them ready to the last answer read."""
        for number, queue in enumerate(self.tasks):
            queue.put(bodies[number :: self.count])
        self.barrier.wait(timeout=600)
        started = time.monotonic()
        answers = [self.results.get(timeout=3600) for _ in range(self.count)]
        totals = {k: sum(t[k] for _, t in answers) for k in answers[0][1]}
        return max(ended for ended, _ in answers) - started, totals

    def close(self) -> None:
        for queue in self.tasks:
            queue.put(None)
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.terminate()


def ingest_bodies(network: Network, model: CongestionModel, first: int, count: int, seed: int) -> list[bytes]:
    """`count` readings, every sensor at each step from `first` on, as the API takes them (Los Angeles time with
    its offset, speed only), in bodies of 10,000; `seed` varies the speeds from round to round."""
    steps = np.arange(first, first + math.ceil(count / len(network)))
    values, _ = speeds(network, model, steps, seed=seed)
    stamps = [datetime.fromtimestamp(int(s) * STEP_SECONDS, UTC).astimezone(LOS_ANGELES).isoformat() for s in steps]
    readings = [{"sensor_id": sensor, "timestamp": stamp, "speed_mph": speed}
                for stamp, row in zip(stamps, values.tolist(), strict=True)
                for sensor, speed in zip(network.ids, row, strict=True)][:count]  # fmt: skip
    return [orjson.dumps({"readings": readings[i : i + MAX_READINGS_PER_CALL]})
            for i in range(0, len(readings), MAX_READINGS_PER_CALL)]  # fmt: skip


def remove_ingested(engine: Engine, end: datetime, found: Found) -> bool:
    """The readings of `end` on removed (daily partitions truncated, else deleted), `latest_readings` put back and
    the roll-up marks of those hours dropped; True when rows were deleted (dead rows: vacuum after)."""
    deleted = False
    with engine.begin() as connection:
        if module_exists("backend.db.partitions") and is_partitioned(engine, "traffic_readings"):
            partitions = importlib.import_module("backend.db.partitions")
            schema = partitions.SCHEMA
            for partition in partitions.partitions_of(connection, "traffic_readings"):
                if partition.day >= end.date():
                    connection.execute(text(f'TRUNCATE "{schema}"."{partition.name}"'))
        else:
            connection.execute(text('DELETE FROM traffic_readings WHERE "timestamp" >= :end'), {"end": end})
            deleted = True
        for table in ("reading_rollup_marks", "reading_rollups"):
            if connection.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar():
                connection.execute(text(f"DELETE FROM {table} WHERE hour >= :end"), {"end": end})
    put_back_latest(engine, end, found)
    small = [t for t in ("latest_readings", "reading_rollup_marks") if table_exists(engine, t)]
    if small:  # as autovacuum would (this server runs without): rows rewritten every round
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            connection.execute(text(f"VACUUM {', '.join(small)}"))
    return deleted


def measure_ingest(api: Api, clients: IngestClients, network: Network, model: CongestionModel, end: datetime,
                   readings: int, rounds: int, found: Found) -> Figure:  # fmt: skip
    first = int(end.timestamp()) // STEP_SECONDS
    last_day = moment(first + math.ceil(readings / len(network))).date()
    ensure_days(api.engine, "traffic_readings", end.date(), last_day)  # as the beat makes them ahead of time
    rates, deleted = [], False
    for number in range(rounds):
        bodies = ingest_bodies(network, model, first, readings, seed=100 + number)
        seconds, totals = clients.send(bodies)
        if totals["accepted"] != readings:
            say(f"  ingest round {number + 1}: not all stored: {totals}")
        rates.append(totals["accepted"] / seconds)
        deleted |= remove_ingested(api.engine, end, found)
    if deleted:
        with api.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            connection.execute(text("VACUUM (ANALYZE) traffic_readings"))
    figure = Figure(rates, f"{readings:,} readings a round in {math.ceil(readings / MAX_READINGS_PER_CALL)} calls")
    say(f"  ingest    {figure.text('readings/s')}; {figure.note}, {clients.count} client processes")
    return figure


# --- records ----------------------------------------------------------------------------------------------------

RECORD_COLUMNS = ("created_at, model_name, model_version, inputs, eclo, risk_level, output, latency_ms, cached, "
                  "request_id, record_id, key_id")  # fmt: skip


def record_pool(size: int = 5000) -> tuple[list[str], str]:
    """(COPY text cells `inputs \\t eclo \\t risk_level` of `size` generated Dacon rows scored by the served ECLO
    model, its version)."""
    from backend.ml.eclo.dacon import api_rows
    from backend.ml.eclo.datagen import generate_dacon_frame
    from backend.ml.eclo.model import EcloModel

    model = EcloModel.load(ROOT / "model" / "eclo")
    rows = [r for r in api_rows(generate_dacon_frame(size * 2, seed=37).astype(str)) if r is not None]
    cells = []
    for row, answer in zip(rows, model.predict_many(rows), strict=True):
        if isinstance(answer, Exception):
            continue
        inputs = orjson.dumps(row).decode().replace("\\", "\\\\")
        cells.append(f"{inputs}\t{answer.eclo!r}\t{answer.risk_level}")
        if len(cells) == size:
            break
    return cells, model.version


def record_chunks(
    count: int, start: datetime, batch: int, key_id: str | None, pool: list[str], version: str
) -> Iterator[bytes]:
    """`count` ECLO records, created over the RECORD_DAYS days up to `start` in time order, as COPY text; their
    inputs and answers drawn from `pool`."""
    rng = np.random.default_rng([37, batch])
    span_us = RECORD_DAYS * 86_400 * 1_000_000
    base = np.datetime64(start.replace(tzinfo=None), "us") - np.timedelta64(span_us, "us")
    latencies = [f"{v:.3f}" for v in rng.gamma(2.0, 0.6, 1000)]
    prefix = os.urandom(8).hex()
    key = key_id or "\\N"
    made = 0
    for first in range(0, count, 100_000):
        n = min(100_000, count - first)
        offsets = ((np.arange(first, first + n) + rng.random(n)) * (span_us / count)).astype(np.int64)
        created = np.datetime_as_string(base + offsets.astype("timedelta64[us]"), unit="us")
        picks = rng.integers(0, len(pool), n)
        lines = [
            f"{created[k]}+00\teclo\t{version}\t{pool[picks[k]]}\t\\N\t{latencies[(first + k) % 1000]}\t"
            f"{'t' if (first + k) % 11 == 0 else 'f'}\t{prefix[:12]}-{first + k:x}\t{prefix}{batch:04x}{first + k:012x}"
            f"\t{key}\n"
            for k in range(n)
        ]
        made += n
        yield "".join(lines).encode()
        if made % 1_000_000 == 0 and made < count:
            say(f"  ... {made:,} of {count:,} records")


def load_records(api: Api, count: int, end: datetime, batch: int, found: Found) -> None:
    made = ensure_days(api.engine, "predictions", (end - timedelta(days=RECORD_DAYS)).date(), end.date())
    found.note("records partitions", "predictions partitioned by day" if is_partitioned(api.engine, "predictions")
               else "predictions not partitioned")  # fmt: skip
    pool, version = record_pool()
    say(f"  COPY {count:,} records ({made} partitions made; inputs drawn from {len(pool):,} scored rows)")
    started = time.monotonic()
    copy_in(api.engine, f"COPY predictions ({RECORD_COLUMNS}) FROM STDIN",
            record_chunks(count, end, batch, api.key_id, pool, version))  # fmt: skip
    say(f"  COPY done in {time.monotonic() - started:.0f} s ({count / (time.monotonic() - started):,.0f} records/s)")
    started = time.monotonic()
    with api.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text("VACUUM (ANALYZE) predictions"))
    say(f"  VACUUM (ANALYZE) in {time.monotonic() - started:.0f} s")


def measure_listing(api: Api, total: int, end: datetime, rounds: int, found: Found) -> dict[str, Figure]:
    """The listing's first page and its 1,000th, of the records before a different time each round."""
    span = timedelta(days=RECORD_DAYS) * (DEEP_PAGE * PAGE_SIZE / total)  # the time 1,000 pages cover
    step = min(span * 1.2, (timedelta(days=RECORD_DAYS) - span) / rounds)
    figures = {"live": repeat(rounds, lambda r: (get(api, "/health/live")[0], ""))}
    until = [(end - step * r).isoformat() for r in range(rounds)]

    def first_page(number: int) -> tuple[float, str]:
        elapsed, answer = get(api, "/api/predictions", {"until": until[number]})
        assert len(answer["items"]) == PAGE_SIZE, answer
        exact = "exact" if answer.get("total_exact", True) else "counted up to it"
        return elapsed, f"{len(answer['items'])} records a page; total {answer['total']:,} ({exact})"

    def deep_page(number: int) -> tuple[float, str]:
        params = {"until": until[number]}
        _, answer = get(api, "/api/predictions", params)
        if "next" not in answer:
            found.note("records cursor", "absent: the 1,000th page fetched by `page=1000`")
            elapsed, answer = get(api, "/api/predictions", {**params, "page": DEEP_PAGE})
            return elapsed, f"by page number ({len(answer['items'])} records)"
        found.note("records cursor", "present: `next` followed 999 times, then the 1,000th page timed")
        started = time.monotonic()
        for page in range(2, DEEP_PAGE):
            _, answer = get(api, "/api/predictions", {**params, "cursor": answer["next"]})
            if page % 250 == 0 and time.monotonic() - started > 60:
                say(f"  ... round {number + 1}: page {page} by cursor ({time.monotonic() - started:.0f} s)")
        elapsed, answer = get(api, "/api/predictions", {**params, "cursor": answer["next"]})
        assert len(answer["items"]) == PAGE_SIZE, answer
        return elapsed, f"by cursor, {len(answer['items'])} records; the 999 pages before it untimed"

    for name, one in (("first_page", first_page), ("deep_page", deep_page)):
        figures[name] = repeat(rounds, one)
        say(f"  {name:<10} {figures[name].text()}; {figures[name].note}")
    return figures


# --- growth and the report --------------------------------------------------------------------------------------


def kind_of(slope: float) -> str:
    if slope < 0.2:
        return "flat"
    if slope < 0.8:
        return "sub-linear"
    if slope <= 1.25:
        return "linear"
    return "super-linear"


def growth(before: float, after: float, x_before: float, x_after: float, what: str) -> str:
    """How a cost grew from `before` to `after` while `what` went from x_before to x_after."""
    if before <= 0 or after <= 0:
        return f"{what}: n/a"
    slope = math.log(after / before) / math.log(x_after / x_before)
    ratio = f"x{after / before:.2f} for x{x_after / x_before:,.3g} {what}"
    return f"{kind_of(slope)} in {what} ({ratio}, slope {slope:.2f})"


MEASURES = [("ingest", "readings ingest"), ("current", "`/current`"), ("forecast", "`/forecast`"),
            ("readings", "24 h readings"), ("profile", "profile"), ("size", "readings on disk")]  # fmt: skip


def cost(figures: dict[str, Any], measure: str) -> float | None:
    """The figure as a cost (ingest: seconds per million readings; size: total bytes; else the median ms)."""
    if measure not in figures:
        return None
    if measure == "ingest":
        return 1e6 / figures["ingest"].median
    if measure == "size":
        return float(figures["size"][0])
    return figures[measure].median


def growth_lines(results: dict[tuple[int, int], dict[str, Any]]) -> list[str]:
    sizes = sorted({s for s, d in results if d > 0})
    days = sorted({d for _, d in results if d > 0})
    lines = []
    for measure, label in MEASURES:
        parts = []
        if len(days) > 1:
            s = sizes[-1]
            a, b = cost(results.get((s, days[0]), {}), measure), cost(results.get((s, days[-1]), {}), measure)
            if a and b:
                parts.append(f"{growth(a, b, days[0], days[-1], 'history')} at {s:,} sensors")
        if len(sizes) > 1:
            d = days[-1]
            a, b = cost(results.get((sizes[0], d), {}), measure), cost(results.get((sizes[-1], d), {}), measure)
            if a and b:
                parts.append(f"{growth(a, b, sizes[0], sizes[-1], 'sensors')} at {plural(d, 'day')}")
        lines.append(f"- {label}: " + ("; ".join(parts) if parts else "one size measured: no growth to state"))
    return lines


def table_rows(results: dict[tuple[int, int], dict[str, Any]]) -> list[str]:
    rows = []
    for (sensors, days), figures in sorted(results.items()):

        def ms(name: str, f: dict[str, Any] = figures) -> str:
            return f"{f[name].median:,.1f} ms" if name in f else ""

        held = f"{sensors * days * STEPS_PER_DAY:,}" if days else "0 (baseline: empty)"
        size, rollups = figures.get("size", (0, 0))
        per_day = max(1, sensors * days)
        rows.append(
            f"| {sensors:,} x {days} | {held} | {figures['ingest'].median:,.0f} | {ms('current')} | "
            f"{ms('forecast')} | {ms('readings')} | {ms('profile')} | "
            f"{f'{size / per_day:,.0f}' if days else ''} | {f'{rollups / per_day:,.0f}' if days else ''} | "
            f"{ms('live')} |"
        )
    return rows


TABLE_HEAD = ("| sensors x days | readings held | ingest, readings/s | `/current` | `/forecast` | 24 h readings | "
              "profile | readings bytes / sensor-day | roll-ups bytes / sensor-day | `/health/live` |\n"
              "|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip


def verdict(value: float, better: str, target: float) -> str:
    passed = value < target if better == "<" else value >= target
    return "pass" if passed else "FAIL"


def target_lines(results: dict[tuple[int, int], dict[str, Any]], records: dict[int, dict[str, Figure]]) -> list[str]:
    lines = ["| target | measured | beside it: 207 sensors | verdict |", "|---|---|---|---|"]
    measured = [key for key in results if key[1] > 0]
    if measured:
        at = TARGET_SIZE if TARGET_SIZE in results else max(measured)
        where = "" if at == TARGET_SIZE else f" (target size {TARGET_SIZE[0]:,} x {TARGET_SIZE[1]} not in this run)"
        small = results.get((207, at[1]))
        for measure, what, better, target, unit in TARGETS:
            figure = results[at].get(measure)
            if figure is None:
                continue
            shown = f"{figure.median:,.0f} {unit}" if unit != "ms" else f"{figure.median:,.1f} ms"
            beside = ""
            if small and measure in small:
                beside = (f"{small[measure].median:,.0f} {unit}" if unit != "ms"
                          else f"{small[measure].median:,.1f} ms")  # fmt: skip
            size = f"{at[0]:,} sensors x {plural(at[1], 'day')}"
            lines.append(f"| {what} {better} {target:,.0f} {unit}, at {size}{where} | {shown} | {beside} | "
                         f"{verdict(figure.median, better, target)} |")  # fmt: skip
    if records:
        count = TARGET_RECORDS if TARGET_RECORDS in records else max(records)
        where = "" if count == TARGET_RECORDS else f" (target {TARGET_RECORDS:,} not in this run)"
        for measure, what in RECORD_TARGETS:
            figure = records[count][measure]
            lines.append(f"| {what} < {RECORD_TARGET_MS:.0f} ms, at {count:,} records{where} | "
                         f"{figure.median:,.1f} ms | | {verdict(figure.median, '<', RECORD_TARGET_MS)} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=ints, default=[207, 2000, 10_000], help="sensor counts, e.g. 207,2000,10000")
    parser.add_argument("--days", type=ints, default=[1, 7, 30], help="history lengths in days, e.g. 1,7,30")
    parser.add_argument("--records", type=ints, default=[1_000_000, 10_000_000], help="record counts; 0: none")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per measure; medians are reported")
    parser.add_argument("--clients", type=int, default=4, help="ingest client processes")
    parser.add_argument("--ingest-readings", type=int, default=200_000, help="readings sent per ingest round")
    parser.add_argument("--postgres", default=POSTGRES, help="a URL of the PostgreSQL server (its admin database)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (bench_scale_*) afterwards")
    parser.add_argument("--quick", action="store_true", help="207 sensors, 1 day, 100,000 records: a try-out")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.days, args.records = QUICK["sizes"], QUICK["days"], QUICK["records"]
    args.days = sorted(set(args.days))
    args.records = sorted({r for r in args.records if r > 0})
    model = CongestionModel.load(ROOT / "model" / "congestion")
    found = Found()
    say(f"bench_scale: sensors {args.sizes}, days {args.days}, records {args.records}, {args.rounds} rounds; "
        f"{run_line()} Reads: httpx, one keep-alive connection, one request after another. Ingest: "
        f"httpx in {args.clients} processes, a connection each; {args.ingest_readings:,} readings a round")  # fmt: skip
    results: dict[tuple[int, int], dict[str, Any]] = {}
    records: dict[int, dict[str, Figure]] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    say(f"the API's logs: {logs}")
    for sensors in args.sizes:
        network = make_network(sensors, model)
        # The history ends at a UTC midnight, early enough that the ingested steps after it are not in the future.
        ahead = timedelta(seconds=STEP_SECONDS * (math.ceil(args.ingest_readings / sensors) + 2))
        end = datetime.combine((datetime.now(UTC) - ahead).date(), datetime.min.time(), UTC)
        end_step = int(end.timestamp()) // STEP_SECONDS
        say(f"{sensors:,} sensors ({network.model_sensors} of the congestion model's, "
            f"{sensors - network.model_sensors:,} generated); history up to {end:%Y-%m-%d %H:%M} UTC")  # fmt: skip
        api = Api(args.postgres, f"bench_scale_{sensors}", logs, args.keep)
        clients = IngestClients(api, args.clients)
        try:
            register_sensors(api, network)
            say("  empty database (the baseline)")
            results[sensors, 0] = {
                "ingest": measure_ingest(api, clients, network, model, end, args.ingest_readings, args.rounds, found),
                "live": repeat(args.rounds, lambda r, a=api: (get(a, "/health/live")[0], "")),
            }
            loaded = 0
            for days in args.days:
                say(f"{sensors:,} sensors x {plural(days, 'day')}")
                short = room_for(api.engine, sensors * (days - loaded))
                if short:
                    say(f"  not loaded: the disk is too small ({short}); the largest history that fits is measured")
                    break
                load_history(api.engine, network, model, end_step - days * STEPS_PER_DAY,
                             end_step - loaded * STEPS_PER_DAY, end, found)  # fmt: skip
                loaded = days
                figures: dict[str, Any] = {"size": readings_size(api.engine)}
                size = figures["size"][0]
                say(f"  readings on disk {size / 2**20:,.0f} MB, {size / (sensors * days):,.0f} bytes per sensor-day"
                    f"; roll-ups {figures['size'][1] / 2**20:,.0f} MB")  # fmt: skip
                figures |= measure_reads(api, network, end, args.rounds)
                figures["ingest"] = measure_ingest(api, clients, network, model, end, args.ingest_readings,
                                                   args.rounds, found)  # fmt: skip
                results[sensors, days] = figures
        finally:
            clients.close()
            api.close()
    if args.records:
        api = Api(args.postgres, "bench_scale_records", logs, args.keep)
        try:
            end, loaded = datetime.now(UTC), 0
            for batch, count in enumerate(args.records):
                say(f"{count:,} records")
                load_records(api, count - loaded, end, batch, found)
                loaded = count
                records[count] = measure_listing(api, count, end, args.rounds, found)
        finally:
            api.close()
    report(args, results, records, found)


def report(args: argparse.Namespace, results: dict[tuple[int, int], dict[str, Any]],
           records: dict[int, dict[str, Figure]], found: Found) -> None:  # fmt: skip
    record_rows = [f"| {count:,} | {f['first_page'].median:,.1f} ms | {f['deep_page'].median:,.1f} ms "
                   f"({f['deep_page'].note.split(',')[0]}) | {f['live'].median:,.1f} ms |"
                   for count, f in sorted(records.items())]  # fmt: skip
    record_growth = ""
    if len(records) > 1:
        a, b = min(records), max(records)
        record_growth = "; ".join(
            f"{what}: {growth(records[a][m].median, records[b][m].median, a, b, 'records')}"
            for m, what in (("first_page", "first page"), ("deep_page", "1,000th page"))
        )
    forecast = next((f["forecast"].note for _, f in sorted(results.items(), reverse=True) if "forecast" in f), "")
    parts = "; ".join(f"{part}: {what}" for part, what in found.parts.items())
    days = f"{', '.join(map(str, args.days))} day{'' if args.days == [1] else 's'}"
    method = " ".join([
        "The service at scale (issue 37), `make bench-scale` (`bench/bench_scale.py`)"
        + (" run with `--quick`: a try-out at the smallest sizes, not the issue's measurement." if args.quick else "."),
        "Per sensor count a PostgreSQL database of its own and a real API process (`python -m backend.api.server`)",
        "with the default settings but DATABASE_URL, DEMO_FEED=off, no feed consumer and the per-key rate limit",
        "raised out of the way (auth on, an admin key made for the run). Sensors registered through",
        "`PUT /api/traffic/sensors`: the congestion model's 207 first, the others generated around Los Angeles.",
        f"5-minute readings (speed only: the model's usual speeds with noise) COPYed in for {days}, extended",
        "backwards (the newest reading stays put); then `latest_readings` filled, every loaded hour rolled up and",
        "VACUUM ANALYZE (this server runs with autovacuum off).",
        f"Reads: httpx, one keep-alive connection, one request after another, medians of {args.rounds} rounds, a",
        "different sensor each round for the 24 h readings (`size=288`) and the profile; no API cache on these paths.",
        f"Forecast: {forecast or 'not measured'}.",
        f"Ingest: {args.ingest_readings:,} distinct new readings a round (every sensor at the steps right after the",
        f"history) in calls of {MAX_READINGS_PER_CALL:,} to `POST /api/traffic/readings`, bodies encoded before the",
        f"clock starts, sent by {args.clients} httpx processes (a keep-alive connection each); the ingested",
        "readings removed after each round, untimed, so every round meets the same history. Baselines in the same",
        "run: the same ingest into the empty database, and `GET /health/live` (the floor of a request).",
        f"Records: ECLO records COPYed in over the last {RECORD_DAYS} days; `GET /api/predictions` (page size",
        f"{PAGE_SIZE}) of the records before a different time each round, the 1,000th page fetched by the cursor of",
        "the 999th (the pages before it untimed).",
        f"Parts of issue 37 found: {parts}.",
        run_line(),
    ])  # fmt: skip
    growth_text = "\n".join(growth_lines(results) + ([f"- records listing: {record_growth}"] if record_growth else []))
    body = f"""{textwrap.fill(method, width=116)}

{TABLE_HEAD}
{chr(10).join(table_rows(results))}

| records | first page | 1,000th page | `/health/live` |
|---|---|---|---|
{chr(10).join(record_rows)}

Growth, from the log-log slope of each cost between the smallest and the largest size (ingest as time per reading,
the disk as total bytes):
{growth_text}

{chr(10).join(target_lines(results, records))}
"""
    print("\n" + body)
    write_section("bench_scale", body)


if __name__ == "__main__":
    main()
