"""A structured query over a table's Parquet file, compiled to parameterised DuckDB SQL.

Nothing a client sends becomes SQL text: column names are checked against the file's columns and quoted, every
value is a bound parameter, operators and aggregates come from closed sets. A query is bounded in rows returned
(`min(limit, max_rows)`) and in time (interrupted past `timeout_seconds`), and runs in a database that can read
only its own file (see `backend.explore.engine`).

Missing values follow pandas: `ne` and `not_in` keep rows where the column is missing, the other comparisons drop
them; group-by keeps a group for missing values (pandas' `dropna=False`); a cross table leaves them out (as
`pandas.crosstab` does). Weekdays count from Monday = 0 (pandas' `day_of_week`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backend.explore.engine import (
    Column,
    Deadline,
    execute,
    find_column,
    json_value,
    open_table,
    quote,
    valid_sql,
)
from backend.explore.errors import QueryError
from backend.explore.tables import classify, column_stats, detect_coordinates, top_values
from backend.schemas.explore import (
    Aggregate,
    ColumnDetail,
    CrossTab,
    Filter,
    HistogramBin,
    PointsResult,
    QueryResult,
    TableQuery,
    ValueCount,
)

NUMERIC_AGGREGATES = frozenset({"sum", "mean", "median", "std", "percentile"})
ORDERED_KINDS = frozenset({"number", "text", "date", "timestamp", "bool"})
CROSSTAB_MAX_COLUMNS = 50
POINTS_MAX_COLUMNS = 20
POINTS_MAX_CAP = 50_000
_KIND_LABEL = {
    "number": "numbers",
    "text": "text",
    "date": "dates",
    "timestamp": "dates and times",
    "bool": "true/false values",
    "other": "nested or binary values",
}


def _label(column: Column) -> str:
    return f"{column.name!r} holds {_KIND_LABEL.get(column.kind, column.kind)}"


@dataclass
class _Sql:
    """Bound parameters of one statement, named $p0, $p1, ... so their order in the text does not matter."""

    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any) -> str:
        key = f"p{len(self.params)}"
        self.params[key] = value
        return f"${key}"


# ---------------------------------------------------------------------------------------------------------------
# Values


def _coerce(column: Column, value: Any, field_name: str) -> Any:
    """A filter value as the column's type, or a QueryError saying what the column holds."""
    if value is None:
        raise QueryError(field_name, "a value is required (use is_null / not_null for missing values)")
    if isinstance(value, list | tuple | dict):
        raise QueryError(field_name, "a single value is expected here, not a list")
    kind = column.kind
    if kind == "number":
        if isinstance(value, bool):
            raise QueryError(field_name, f"{_label(column)}; true/false is not a number")
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise QueryError(field_name, "a number must be finite")
            return value
        try:
            number = float(str(value).strip().replace(",", ""))
        except ValueError:
            raise QueryError(field_name, f"{_label(column)}; {value!r} is not a number") from None
        if not math.isfinite(number):
            raise QueryError(field_name, "a number must be finite")
        return int(number) if number.is_integer() and column.is_integer else number
    if kind == "text":
        if isinstance(value, bool):
            raise QueryError(field_name, f"{_label(column)}; compare it with text, not true/false")
        return value if isinstance(value, str) else str(value)
    if kind in ("date", "timestamp"):
        if not isinstance(value, str):
            raise QueryError(
                field_name, f"{_label(column)}; give a date as ISO text like 2021-07-04 or 2021-07-04 13:00"
            )
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise QueryError(field_name, f"{_label(column)}; {value!r} is not an ISO date like 2021-07-04") from None
        if when.tzinfo is not None:
            raise QueryError(field_name, "give a local date and time, without a time zone")
        return when
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise QueryError(field_name, f"{_label(column)}; give true or false")
    raise QueryError(field_name, f"{_label(column)}: only is_null / not_null apply to it")


def _filter_sql(f: Filter, i: int, columns: dict[str, Column], sql: _Sql) -> str:
    where = f"filters[{i}]"
    column = find_column(columns, f.column, f"{where}.column")
    q, op, value = quote(column.name), f.op, f.value
    valid = valid_sql(column)
    if op in ("is_null", "not_null"):
        if value is not None:
            raise QueryError(f"{where}.value", f"{op} takes no value")
        return f"NOT {valid}" if op == "is_null" else valid
    if column.kind == "other":
        raise QueryError(f"{where}.op", f"{_label(column)}: only is_null / not_null apply to it")
    if op == "contains":
        if column.kind != "text":
            raise QueryError(f"{where}.op", f"contains applies to text columns; {_label(column)}")
        if not isinstance(value, str) or not value:
            raise QueryError(f"{where}.value", "contains needs a non-empty text value")
        return f"contains({q}, {sql.bind(value)})"
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise QueryError(f"{where}.value", f"{op} needs a non-empty list of values")
        marks = ", ".join(sql.bind(_coerce(column, v, f"{where}.value[{k}]")) for k, v in enumerate(value))
        return f"{q} IN ({marks})" if op == "in" else f"(NOT {valid} OR {q} NOT IN ({marks}))"
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise QueryError(f"{where}.value", "between needs a list of two values [low, high] (both included)")
        low, high = (_coerce(column, v, f"{where}.value[{k}]") for k, v in enumerate(value))
        try:
            if low > high:
                raise QueryError(f"{where}.value", "between needs low <= high")
        except TypeError:
            raise QueryError(f"{where}.value", "between needs two values of the same kind") from None
        return f"{q} BETWEEN {sql.bind(low)} AND {sql.bind(high)}"
    if column.kind == "bool" and op not in ("eq", "ne"):
        raise QueryError(f"{where}.op", f"{_label(column)}: only eq, ne, in, not_in and null checks apply")
    bound = sql.bind(_coerce(column, value, f"{where}.value"))
    if op == "ne":
        return f"(NOT {valid} OR {q} <> {bound})"
    symbol = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
    return f"{q} {symbol} {bound}"


def _where(filters: list[Filter], columns: dict[str, Column], sql: _Sql, extra: tuple[str, ...] = ()) -> str:
    parts = [_filter_sql(f, i, columns, sql) for i, f in enumerate(filters)] + list(extra)
    return f"WHERE {' AND '.join(f'({part})' for part in parts)}" if parts else ""


# ---------------------------------------------------------------------------------------------------------------
# Aggregates and groups


def default_name(aggregate: Aggregate) -> str:
    if aggregate.op == "count":
        return f"count_{aggregate.column}" if aggregate.column else "count"
    if aggregate.op == "percentile" and aggregate.q is not None:
        percent = round(aggregate.q * 100, 6)
        return f"p{int(percent) if float(percent).is_integer() else percent}_{aggregate.column}"
    return f"{aggregate.op}_{aggregate.column}"


def _aggregate_sql(a: Aggregate, where: str, columns: dict[str, Column], sql: _Sql) -> tuple[str, str]:
    """The output key and SQL expression of one aggregate (numbers-only ones refused on other columns)."""
    if a.op != "percentile" and a.q is not None:
        raise QueryError(f"{where}.q", "q applies to percentile only")
    if a.op == "percentile" and a.q is None:
        raise QueryError(f"{where}.q", "percentile needs q between 0 and 1 (0.9 for the 90th percentile)")
    if a.op == "count" and a.column is None:
        return a.name or "count", "count(*)"
    if a.column is None:
        raise QueryError(f"{where}.column", f"{a.op} needs a column")
    column = find_column(columns, a.column, f"{where}.column")
    q, valid = quote(column.name), valid_sql(column)
    name = a.name or default_name(a)
    if a.op in NUMERIC_AGGREGATES and column.kind != "number":
        raise QueryError(f"{where}.column", f"{a.op} needs a column of numbers; {_label(column)}")
    if a.op in ("min", "max") and column.kind not in ORDERED_KINDS:
        raise QueryError(f"{where}.column", f"{a.op} needs numbers, dates or text; {_label(column)}")
    if a.op == "count":
        return name, f"count(*) FILTER (WHERE {valid})"
    if a.op == "distinct":
        return name, f"count(DISTINCT {q}) FILTER (WHERE {valid})"
    expression = {
        "sum": f"coalesce(sum({q}) FILTER (WHERE {valid}), 0)",
        "mean": f"avg({q}) FILTER (WHERE {valid})",
        "median": f"quantile_cont({q}, 0.5) FILTER (WHERE {valid})",
        "std": f"stddev_samp({q}) FILTER (WHERE {valid})",
        "min": f"min({q}) FILTER (WHERE {valid})",
        "max": f"max({q}) FILTER (WHERE {valid})",
    }.get(a.op)
    if expression is None:  # percentile
        expression = f"quantile_cont({q}, {sql.bind(float(a.q))}) FILTER (WHERE {valid})"  # type: ignore[arg-type]
    return name, expression


_TIME_SQL = {
    "year": "year({q})",
    "month": "month({q})",
    "weekday": "(isodow({q}) - 1)",
    "hour": "hour({q})",
    "date": "CAST({q} AS DATE)",
}


def _time_expression(query: TableQuery, columns: dict[str, Column]) -> tuple[str, str] | None:
    """The time part's output key and expression, or None without a time pattern."""
    if query.time is None:
        return None
    column = find_column(columns, query.time.column, "time.column")
    if column.kind not in ("date", "timestamp"):
        raise QueryError("time.column", f"a time pattern needs a column of dates; {_label(column)}")
    if query.time.by == "hour" and column.kind == "date":
        raise QueryError("time.by", f"{column.name!r} holds dates without a time of day: no hours to group by")
    return query.time.by, _TIME_SQL[query.time.by].format(q=quote(column.name))


@dataclass
class _Output:
    keys: list[str] = field(default_factory=list)
    expressions: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)

    def add(self, key: str, expression: str, field_name: str) -> None:
        if key in self.keys:
            at = self.fields[self.keys.index(key)]
            raise QueryError(field_name, f"the output key {key!r} is already taken by {at}; name it differently")
        self.keys.append(key)
        self.expressions.append(expression)
        self.fields.append(field_name)


def _order_sql(query: TableQuery, allowed: list[str], defaults: list[str]) -> str:
    keys, seen = [], set()
    for i, order in enumerate(query.order_by):
        if order.column not in allowed:
            raise QueryError(
                f"order_by[{i}].column",
                f"{order.column!r} is not an output column; order by one of: {', '.join(allowed)}",
                allowed=allowed,
            )
        keys.append(f"{quote(order.column)} {'DESC' if order.desc else 'ASC'} NULLS LAST")
        seen.add(order.column)
    keys += [f"{quote(k)} ASC NULLS LAST" for k in defaults if k not in seen]
    return f"ORDER BY {', '.join(keys)}" if keys else ""


# ---------------------------------------------------------------------------------------------------------------
# Entry points


def _as_query(query: TableQuery | Mapping[str, Any]) -> TableQuery:
    if isinstance(query, TableQuery):
        return query
    try:
        return TableQuery.model_validate(query)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
        raise QueryError(where or "query", first["msg"]) from exc


def run_query(
    parquet: Path,
    query: TableQuery | Mapping[str, Any],
    *,
    max_rows: int = 1000,
    timeout_seconds: float = 5.0,
    crosstab_columns: int = CROSSTAB_MAX_COLUMNS,
) -> QueryResult:
    """Answer a structured query over the table's Parquet file (see the module's doc for the semantics)."""
    query = _as_query(query)
    if max_rows < 1:
        raise QueryError("max_rows", "must be at least 1")
    deadline = Deadline(timeout_seconds)
    limit = min(query.limit, max_rows)
    cursor, columns, _ = open_table(Path(parquet))
    try:
        if query.crosstab is not None:
            answer = _crosstab(cursor, query, query.crosstab, columns, limit, crosstab_columns, deadline)
        else:
            answer = _grouped(cursor, query, columns, limit, deadline)
    finally:
        cursor.close()
    answer.elapsed_ms = round(deadline.elapsed_ms(), 3)
    return answer


def _grouped(cursor: Any, query: TableQuery, columns: dict[str, Column], limit: int, deadline: Deadline) -> QueryResult:
    sql = _Sql()
    output = _Output()
    time = _time_expression(query, columns)
    if time is not None:
        output.add(time[0], time[1], "time.by")
    for i, name in enumerate(query.group_by):
        column = find_column(columns, name, f"group_by[{i}]")
        output.add(column.name, quote(column.name), f"group_by[{i}]")
    groups = list(output.keys)
    aggregates = list(query.aggregates)
    if groups and not aggregates:
        aggregates = [Aggregate(op="count")]
    for i, aggregate in enumerate(aggregates):
        key, expression = _aggregate_sql(aggregate, f"aggregates[{i}]", columns, sql)
        output.add(key, expression, f"aggregates[{i}].name")
    where = _where(query.filters, columns, sql)
    if not output.keys:  # neither groups nor aggregates: the matching rows themselves
        order = _order_sql(query, list(columns), [])
        statement = f"SELECT * FROM t {where} {order} LIMIT {limit + 1}"
        keys = list(columns)
    else:
        select = ", ".join(f"{e} AS {quote(k)}" for k, e in zip(output.keys, output.expressions, strict=True))
        group = f"GROUP BY {', '.join(str(i + 1) for i in range(len(groups)))}" if groups else ""
        order = _order_sql(query, output.keys, groups)
        statement = f"SELECT {select} FROM t {where} {group} {order} LIMIT {limit + 1}"
        keys = output.keys
    fetched = execute(cursor, statement, sql.params, deadline, fetch=limit + 1)
    rows = [{k: json_value(v) for k, v in zip(keys, record, strict=True)} for record in fetched[:limit]]
    return QueryResult(columns=keys, rows=rows, truncated=len(fetched) > limit)


def _crosstab_side(
    name: str, field_name: str, time: tuple[str, str] | None, columns: dict[str, Column]
) -> tuple[str, str]:
    """A cross table's side: the time part when it names it, else a table column."""
    if time is not None and name == time[0]:
        return time
    column = find_column(columns, name, field_name)
    if column.kind == "other":
        raise QueryError(field_name, f"{_label(column)}: they cannot label a cross table")
    return column.name, quote(column.name)


def _crosstab(
    cursor: Any,
    query: TableQuery,
    crosstab: CrossTab,
    columns: dict[str, Column],
    limit: int,
    max_columns: int,
    deadline: Deadline,
) -> QueryResult:
    """One row per `row` value (ordered by it), one key per `column` value (the most frequent `max_columns`)."""
    if query.group_by or query.aggregates:
        raise QueryError("crosstab", "a cross table takes no group_by or aggregates; its cells are crosstab.value")
    time = _time_expression(query, columns)
    row_key, row_sql = _crosstab_side(crosstab.row, "crosstab.row", time, columns)
    column_key, column_sql = _crosstab_side(crosstab.column, "crosstab.column", time, columns)
    if row_key == column_key:
        raise QueryError("crosstab.column", "the rows and the columns of a cross table must differ")
    descending = False
    for i, order in enumerate(query.order_by):
        if order.column != row_key:
            raise QueryError(f"order_by[{i}].column", f"a cross table is ordered by its rows only ({row_key!r})")
        descending = order.desc
    sql = _Sql()
    value = crosstab.value or Aggregate(op="count")
    _, cell_sql = _aggregate_sql(value, "crosstab.value", columns, sql)
    where = _where(query.filters, columns, sql, (f"({row_sql}) IS NOT NULL", f"({column_sql}) IS NOT NULL"))
    direction = "DESC" if descending else "ASC"
    # one scan: the cells first, then the kept columns (most frequent) and rows (in order) from the cells
    statement = f"""
        WITH cells AS MATERIALIZED (
            SELECT {row_sql} AS __xt_row, {column_sql} AS __xt_col, count(*) AS __xt_n, {cell_sql} AS __xt_cell
            FROM t {where} GROUP BY 1, 2
        ),
        kept_columns AS (
            SELECT __xt_col, sum(__xt_n) AS n FROM cells GROUP BY 1 ORDER BY n DESC, 1 LIMIT {int(max_columns) + 1}
        ),
        kept_rows AS (SELECT DISTINCT __xt_row FROM cells ORDER BY 1 {direction} LIMIT {limit + 1})
        SELECT
            __xt_row, __xt_col, __xt_cell,
            (SELECT list(__xt_col ORDER BY n DESC, __xt_col) FROM kept_columns) AS by_frequency
        FROM cells
        WHERE __xt_col IN (SELECT __xt_col FROM kept_columns) AND __xt_row IN (SELECT __xt_row FROM kept_rows)
        ORDER BY 1 {direction}, 2
    """
    fetched = execute(cursor, statement, sql.params, deadline)
    if not fetched:
        return QueryResult(columns=[row_key], rows=[], truncated=False)
    by_frequency = list(fetched[0][3])
    truncated = len(by_frequency) > max_columns
    labels = {v: _key(json_value(v)) for v in sorted(by_frequency[:max_columns])}
    if row_key in labels.values():
        raise QueryError("crosstab.column", f"a value of {column_key!r} is {row_key!r}, the name of the row key")
    empty = 0 if value.op in ("count", "distinct") else None
    table: dict[Any, dict[str, Any]] = {}
    for r, c, cell, _ in fetched:
        if c not in labels:
            continue
        row = table.get(r)
        if row is None:
            if len(table) == limit:
                truncated = True
                continue
            row = table[r] = {row_key: json_value(r), **dict.fromkeys(labels.values(), empty)}
        row[labels[c]] = json_value(cell)
    return QueryResult(columns=[row_key, *labels.values()], rows=list(table.values()), truncated=truncated)


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# One column, points


def column_detail(
    parquet: Path, column: str, *, bins: int = 20, top: int = 20, timeout_seconds: float = 10.0
) -> ColumnDetail:
    """Numbers and dates: the profile numbers and equal-width histogram bins (integers with few values: one bin
    per value); other columns: the most frequent values and how many rows hold another."""
    if not (isinstance(bins, int) and 1 <= bins <= 200):
        raise QueryError("bins", "bins must be 1..200")
    if not (isinstance(top, int) and 1 <= top <= 1000):
        raise QueryError("top", "top must be 1..1000")
    deadline = Deadline(timeout_seconds)
    cursor, columns, rows = open_table(Path(parquet))
    try:
        target = find_column(columns, column, "column")
        candidates = [c for c in columns.values() if c.kind == "number"] if target.kind == "number" else []
        stats = column_stats(cursor, candidates or [target], rows, deadline)
        s = stats[target.name]
        coordinates = detect_coordinates(stats) if target.kind == "number" else None
        is_coordinate = coordinates is not None and target.name in (coordinates.latitude, coordinates.longitude)
        detail = ColumnDetail(
            name=target.name,
            type=classify(s, is_coordinate),  # type: ignore[arg-type]
            rows=rows,
            **s.summary(),
        )
        if target.kind == "number" and s.present:
            detail.bins = _number_bins(cursor, target, s.low, s.high, bins, deadline)  # type: ignore[arg-type]
        elif target.kind in ("date", "timestamp") and s.present:
            detail.bins = _date_bins(cursor, target, bins, deadline)
        elif s.present:
            values = top_values(cursor, target, top, deadline)
            detail.values = [ValueCount(value=v, count=n) for v, n in values]
            detail.other = s.present - sum(n for _, n in values)
    finally:
        cursor.close()
    return detail


def _histogram(
    cursor: Any, expression: str, column: Column, low: float, high: float, bins: int, deadline: Deadline
) -> list[tuple[float, float, int]]:
    width = (high - low) / bins if high > low else 1.0
    n = bins if high > low else 1
    sql = _Sql()
    bucket = f"least(CAST(floor(({expression} - {sql.bind(low)}) / {sql.bind(width)}) AS BIGINT), {n - 1})"
    statement = f"SELECT {bucket} AS b, count(*) FROM t WHERE {valid_sql(column)} GROUP BY 1 ORDER BY 1"
    counts = dict(execute(cursor, statement, sql.params, deadline))
    return [(low + i * width, high if i == n - 1 else low + (i + 1) * width, int(counts.get(i, 0))) for i in range(n)]


def _number_bins(
    cursor: Any, column: Column, low: float, high: float, bins: int, deadline: Deadline
) -> list[HistogramBin]:
    q = quote(column.name)
    if column.is_integer and high - low + 1 <= bins:  # one bin per integer value
        statement = f"SELECT {q}, count(*) FROM t WHERE {valid_sql(column)} GROUP BY 1"
        counts = dict(execute(cursor, statement, None, deadline))
        return [
            HistogramBin(start=float(v), end=float(v + 1), count=int(counts.get(v, 0)))
            for v in range(int(low), int(high) + 1)
        ]
    return [
        HistogramBin(start=a, end=b, count=n) for a, b, n in _histogram(cursor, q, column, low, high, bins, deadline)
    ]


def _date_bins(cursor: Any, column: Column, bins: int, deadline: Deadline) -> list[HistogramBin]:
    seconds = f"epoch(CAST({quote(column.name)} AS TIMESTAMP))"
    ((low, high),) = execute(
        cursor, f"SELECT min({seconds}), max({seconds}) FROM t WHERE {valid_sql(column)}", None, deadline
    )
    edges = _histogram(cursor, seconds, column, float(low), float(high), bins, deadline)

    def iso(value: float) -> str:
        when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=value)
        return when.date().isoformat() if column.kind == "date" and when.time() == dt.time() else when.isoformat()

    return [HistogramBin(start=iso(a), end=iso(b), count=n) for a, b, n in edges]


def points(
    parquet: Path,
    latitude: str,
    longitude: str,
    columns: list[str],
    *,
    cap: int = 5000,
    seed: int = 0,
    timeout_seconds: float = 5.0,
) -> PointsResult:
    """Rows with both coordinates valid, as map points with the chosen columns; above the cap a deterministic
    sample (the same seed gives the same points), in file order. Each point carries its file row as `row`."""
    if not (isinstance(cap, int) and 1 <= cap <= POINTS_MAX_CAP):
        raise QueryError("cap", f"cap must be 1..{POINTS_MAX_CAP}")
    if len(columns) > POINTS_MAX_COLUMNS:
        raise QueryError("columns", f"at most {POINTS_MAX_COLUMNS} columns ride along with the points")
    deadline = Deadline(timeout_seconds)
    cursor, table_columns, _ = open_table(Path(parquet))
    try:
        lat = find_column(table_columns, latitude, "latitude")
        lon = find_column(table_columns, longitude, "longitude")
        for field_name, c in (("latitude", lat), ("longitude", lon)):
            if c.kind != "number":
                raise QueryError(field_name, f"a coordinate needs a column of numbers; {_label(c)}")
        chosen: list[Column] = []
        for i, name in enumerate(columns):
            c = find_column(table_columns, name, f"columns[{i}]")
            if c.name in ("lat", "lon", "row"):
                raise QueryError(f"columns[{i}]", f"{c.name!r} is a key of every point already")
            if c.name not in (x.name for x in chosen):
                chosen.append(c)
        valid = (
            f"{quote(lat.name)} BETWEEN -90 AND 90 AND {quote(lon.name)} BETWEEN -180 AND 180 "
            f"AND {valid_sql(lat)} AND {valid_sql(lon)}"
        )
        ((total,),) = execute(cursor, f"SELECT count(*) FROM t WHERE {valid}", None, deadline)
        sql = _Sql()
        sample = "" if total <= cap else f"ORDER BY hash(file_row_number, {sql.bind(int(seed))}) LIMIT {cap}"
        extra = "".join(f", {quote(c.name)}" for c in chosen)
        statement = (
            f"SELECT file_row_number, {quote(lat.name)}, {quote(lon.name)}{extra} FROM "
            f"(SELECT * FROM tr WHERE {valid} {sample}) ORDER BY file_row_number"
        )
        fetched = execute(cursor, statement, sql.params, deadline)
    finally:
        cursor.close()
    names = [c.name for c in chosen]
    found = [
        {
            "lat": float(r[1]),
            "lon": float(r[2]),
            "row": int(r[0]),
            **{n: json_value(v) for n, v in zip(names, r[3:], strict=True)},
        }
        for r in fetched
    ]
    return PointsResult(points=found, total=int(total), left_out=int(total) - len(found))
