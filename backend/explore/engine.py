"""DuckDB over one Parquet file, sandboxed: the file is the only thing a statement can read.

Each file gets an in-memory database holding two views over it (`t`, and `tr` with the file's row numbers), after
which the file alone is allowed (`allowed_paths`), every other file system access is off, extensions neither
install nor autoload, and the configuration is locked, so no statement can switch any of that back. The databases
are kept in a small cache (opening one costs tens of milliseconds, a cursor on it well under one) keyed by the
file's identity, so a rewritten file gets a fresh database. Statements run with a deadline: a watchdog thread
interrupts the cursor once it passes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backend.explore.errors import QueryError

CACHE_SIZE = 8
MEMORY_LIMIT = "1GB"
_INTERRUPT_EVERY = 0.01  # seconds between interrupts once past the deadline (one may land between statements)


@dataclass(frozen=True)
class Column:
    """A column of the file as the query compiler sees it: `kind` is number, text, date (no time of day),
    timestamp, bool or other (lists, structs, binary: only null checks apply)."""

    name: str
    kind: str
    storage: str
    is_float: bool = False
    is_integer: bool = False


@dataclass
class _Table:
    connection: duckdb.DuckDBPyConnection
    columns: dict[str, Column]
    rows: int


_lock = threading.Lock()
_cache: OrderedDict[tuple[str, int, int, int], _Table] = OrderedDict()


def quote(name: str) -> str:
    """A column name as a quoted SQL identifier (names come from the file, are checked, and still quoted)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def column_of(field: pa.Field) -> Column:
    kind, is_float, is_integer = "other", False, False
    t = field.type
    if pa.types.is_integer(t):
        kind, is_integer = "number", True
    elif pa.types.is_floating(t):
        kind, is_float = "number", True
    elif pa.types.is_decimal(t):
        kind = "number"
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        kind = "text"
    elif pa.types.is_date(t):
        kind = "date"
    elif pa.types.is_timestamp(t):
        kind = "timestamp"
    elif pa.types.is_boolean(t):
        kind = "bool"
    elif pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
        kind = "text"
    return Column(field.name, kind, str(t), is_float, is_integer)


def _open(path: Path) -> _Table:
    try:
        metadata = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise QueryError("table", f"the table's file cannot be read: {exc}") from exc
    columns = {f.name: column_of(f) for f in schema}
    con = duckdb.connect(
        ":memory:",
        config={"autoload_known_extensions": False, "autoinstall_known_extensions": False},
    )
    source = _literal(str(path))
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({source})")
    con.execute(f"CREATE VIEW tr AS SELECT * FROM read_parquet({source}, file_row_number = true)")
    con.execute(f"SET allowed_paths = [{source}]")
    con.execute(f"SET memory_limit = {_literal(MEMORY_LIMIT)}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return _Table(con, columns, metadata.num_rows)


def open_table(parquet: Path) -> tuple[duckdb.DuckDBPyConnection, dict[str, Column], int]:
    """A fresh cursor on the file's sandboxed database, its columns and its row count."""
    path = Path(parquet).resolve()
    try:
        st = path.stat()
    except OSError as exc:
        raise QueryError("table", f"the table's file is missing: {path.name}") from exc
    key = (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
    with _lock:
        table = _cache.get(key)
        if table is None:
            table = _open(path)
            _cache[key] = table
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)  # cursors still out keep their database alive
        else:
            _cache.move_to_end(key)
        return table.connection.cursor(), table.columns, table.rows


def clear_cache() -> None:
    with _lock:
        _cache.clear()


class Deadline:
    """One time budget shared by the statements of one request."""

    def __init__(self, seconds: float) -> None:
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
            raise QueryError("timeout_seconds", "must be a positive number of seconds")
        self.seconds = float(seconds)
        self._start = time.perf_counter()

    def remaining(self) -> float:
        return self.seconds - (time.perf_counter() - self._start)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._start) * 1000.0


def execute(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    params: dict[str, Any] | None,
    deadline: Deadline,
    fetch: int | None = None,
) -> list[tuple[Any, ...]]:
    """Run one statement and fetch its rows (at most `fetch`), interrupted when the deadline passes."""
    remaining = deadline.remaining()
    if remaining <= 0:
        raise QueryError("query", f"the query took longer than {deadline.seconds:g} s")
    done = threading.Event()

    def watchdog() -> None:
        if done.wait(remaining):
            return
        while not done.is_set():
            cursor.interrupt()
            done.wait(_INTERRUPT_EVERY)

    guard = threading.Thread(target=watchdog, name=f"explore-deadline-{uuid.uuid4().hex[:6]}", daemon=True)
    guard.start()
    try:
        cursor.execute(sql, params or {})
        return cursor.fetchmany(fetch) if fetch is not None else cursor.fetchall()
    except duckdb.InterruptException as exc:
        raise QueryError("query", f"the query took longer than {deadline.seconds:g} s") from exc
    except duckdb.OutOfMemoryException as exc:
        raise QueryError("query", "the query needs more memory than a query may use; narrow it down") from exc
    except duckdb.Error as exc:
        if deadline.remaining() <= 0:
            raise QueryError("query", f"the query took longer than {deadline.seconds:g} s") from exc
        raise QueryError("query", f"the query could not run: {str(exc).splitlines()[0]}") from exc
    finally:
        done.set()
        guard.join()


def json_value(value: Any) -> Any:
    """A value as JSON can carry it: NaN and infinities become None, dates ISO text, decimals floats."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return json_value(value.item())
    if isinstance(value, decimal.Decimal):
        return json_value(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        try:
            return value.isoformat()
        except ValueError:  # pandas NaT
            return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    if value != value:  # pandas NA / NaT and the like
        return None
    return str(value)


def valid_sql(column: Column) -> str:
    """The condition that a row holds a value in the column (NaN counts as missing, as in pandas)."""
    q = quote(column.name)
    return f"({q} IS NOT NULL AND NOT isnan({q}))" if column.is_float else f"({q} IS NOT NULL)"


def allowed_message(columns: dict[str, Column] | list[str], limit: int = 40) -> str:
    names = list(columns)
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    return f"the table's columns: {shown}" if names else "the table has no columns"


def find_column(columns: dict[str, Column], name: Any, field: str) -> Column:
    """The named column, or a QueryError naming the field and listing the table's columns."""
    if not isinstance(name, str) or not name:
        raise QueryError(field, "a column name is required", allowed=list(columns))
    column = columns.get(name)
    if column is None:
        raise QueryError(field, f"no column named {name!r}; {allowed_message(columns)}", allowed=list(columns))
    return column
