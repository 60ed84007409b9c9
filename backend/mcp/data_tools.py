"""The data tools: any uploaded dataset, by id, through the explore engine (the same answers as
/api/datasets/{id}/profile, /query, /columns, /points and /near).

Each tool is a thin call into `ExploreService`: it builds a `TableQuery` (or asks for a column, points or proximity)
and bounds what it answers to the tool's row limit (MCP_MAX_ROWS), saying how many rows it left out. What the engine
has: filters eq, ne, lt, le, gt, ge, in, not_in, contains, is_null, not_null, between (all AND-ed); aggregates count,
sum, mean, median, min, max, std, percentile (q 0..1), distinct; time parts year, month, weekday, hour, date."""

from __future__ import annotations

import math
from typing import Annotated, Any

import pandas as pd
from pydantic import Field

from backend.core.errors import InvalidRequest
from backend.explore.engine import allowed_message
from backend.schemas.explore import (
    Aggregate,
    ColumnProfile,
    CrossTab,
    Filter,
    OrderBy,
    QueryResult,
    TableProfile,
    TableQuery,
    TimePart,
    TimePattern,
)

from .toolkit import Toolkit, bounded

DatasetId = Annotated[str, Field(min_length=1, max_length=64, description="a dataset's id (list_datasets)")]
ColumnName = Annotated[str, Field(min_length=1, max_length=200, description="a column's name, exactly as profiled")]
Filters = Annotated[
    list[Filter],
    Field(
        max_length=20,
        description='conditions every row must meet (AND), e.g. [{"column": "제한속도", "op": "ge", "value": 50}]; '
        "ops: eq, ne, lt, le, gt, ge, in/not_in (a list), contains (text), between ([low, high], inclusive), "
        "is_null/not_null (no value); dates as ISO text",
    ),
]
Columns = Annotated[
    list[str],
    Field(max_length=20, description="the columns each row carries; all of them when empty"),
]
Aggregates = Annotated[
    list[Aggregate],
    Field(
        max_length=10,
        description='e.g. [{"op": "count"}, {"op": "mean", "column": "제한속도"}]; ops: count (rows, or a column\'s '
        "non-missing values), sum, mean, median, min, max, std, percentile (with q 0..1), distinct; the output key "
        'is "count", "<op>_<column>" or "p90_<column>" unless `name` is given',
    ),
]
OrderKeys = Annotated[
    list[OrderBy],
    Field(max_length=4, description='e.g. [{"column": "count", "desc": true}]; an output column'),
]
Limit = Annotated[int, Field(ge=1, le=1000, description="the most rows to answer (the tool's row limit caps it)")]

# the most rows one TableQuery may ask for (its `limit` field's bound); EXPLORE_MAX_ROWS may cap it lower
QUERY_LIMIT = next(m.le for m in TableQuery.model_fields["limit"].metadata if getattr(m, "le", None) is not None)


def register(kit: Toolkit) -> None:
    explore = kit.services.explore

    def query(dataset_id: str, **fields: Any) -> QueryResult:
        return explore.query(dataset_id, TableQuery(**fields))

    def count(dataset_id: str, filters: list[Filter]) -> int:
        return int(query(dataset_id, filters=filters, aggregates=[Aggregate(op="count", name="rows")]).rows[0]["rows"])

    def table(answer: QueryResult, limit: int) -> dict[str, Any]:
        """A query's answer as a tool answers it: its columns, at most `limit` (and the tool's row limit) rows, how
        many were left out, and whether the engine cut it short."""
        return {
            "columns": answer.columns,
            **bounded(answer.rows, min(limit, kit.max_rows)),
            "truncated": answer.truncated,
        }

    def matching_rows(
        dataset_id: str, answer: QueryResult, columns: list[str], filters: list[Filter]
    ) -> dict[str, Any]:
        """A row query's answer with the chosen columns; `matching` counts every row meeting the filters,
        `left_out` those not returned."""
        rows = _project(answer, columns)
        matching = count(dataset_id, filters)
        return {"columns": columns or answer.columns, "rows": rows, "matching": matching,
                "left_out": matching - len(rows)}  # fmt: skip

    def most() -> int:
        """The most rows one query answers: EXPLORE_MAX_ROWS, within a TableQuery's limit."""
        return min(kit.settings.explore_max_rows, QUERY_LIMIT)

    @kit.tool("read")
    def list_datasets(
        page: Annotated[int, Field(ge=1, le=10_000)] = 1,
        size: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """The uploaded datasets, newest first: id, name, kind (an accident file or any table), rows, columns."""
        listed = kit.services.datasets.list(page, min(size, kit.max_rows)).model_dump(mode="json")
        return listed

    @kit.tool("read")
    def dataset_profile(dataset_id: DatasetId) -> dict[str, Any]:
        """A dataset's profile: rows, and per column its type, missing share, distinct count, summary and top
        values; the coordinate columns found."""
        profile = explore.profile(dataset_id).model_dump(mode="json")
        profile.update(bounded(profile.pop("columns"), kit.max_rows, key="columns"))
        return profile

    @kit.tool("read")
    def column_statistics(
        dataset_id: DatasetId,
        column: ColumnName,
        bins: Annotated[int, Field(ge=2, le=200, description="histogram bins for numbers and dates")] = 20,
    ) -> dict[str, Any]:
        """One column in full: its profile (type, missing, distinct; for numbers min, q1, median, q3, max, mean,
        std; its top values) and its distribution: equal-width histogram bins for numbers and dates (at most the
        tool's row limit of bins; integers with few values get one bin per value), else its most frequent values
        and `other`, the rows holding another value. As GET /api/datasets/{id}/columns/{name}.
        Example: {"dataset_id": "<id>", "column": "제한속도", "bins": 10}"""
        detail = explore.column(dataset_id, column, min(bins, kit.max_rows)).model_dump(mode="json")
        summary = _profiled(explore.profile(dataset_id), detail["name"], "column").model_dump(mode="json")
        answer: dict[str, Any] = {"column": detail["name"], "rows": detail["rows"], "summary": summary}
        if detail["bins"] is not None:
            answer.update(bounded(detail["bins"], kit.max_rows, key="bins"))
        else:
            answer.update(bounded(detail["values"] or [], kit.max_rows, key="values"))
            answer["other"] = detail["other"] + sum(v["count"] for v in (detail["values"] or [])[kit.max_rows :])
        return answer

    @kit.tool("read")
    def value_counts(
        dataset_id: DatasetId,
        column: ColumnName,
        top: Annotated[int, Field(ge=1, le=1000, description="how many of the most frequent values")] = 10,
        filters: Filters = [],  # noqa: B006 (the SDK validates a fresh copy per call)
    ) -> dict[str, Any]:
        """How many rows hold each value of a column, most frequent first (ties by value; missing values are one
        value, null), over the rows meeting `filters`. `left_out`: the values not listed; `other`: their rows.
        Example: {"dataset_id": "<id>", "column": "시군구명", "top": 5}"""
        counted = query(
            dataset_id,
            filters=filters,
            group_by=[column],
            aggregates=[Aggregate(op="count")],
            order_by=[OrderBy(column="count", desc=True)],
            limit=min(top, kit.max_rows, most()),
        )
        totals = query(
            dataset_id,
            filters=filters,
            aggregates=[
                Aggregate(op="count", name="rows"),
                Aggregate(op="count", column=column, name="present"),
                Aggregate(op="distinct", column=column, name="distinct"),
            ],
        ).rows[0]
        name = counted.columns[0]
        values = [{"value": r[name], "count": r["count"]} for r in counted.rows]
        kinds = totals["distinct"] + (1 if totals["rows"] > totals["present"] else 0)
        return {
            "column": name,
            "rows": totals["rows"],
            "missing": totals["rows"] - totals["present"],
            "values": values,
            "left_out": kinds - len(values),
            "other": totals["rows"] - sum(v["count"] for v in values),
        }

    @kit.tool("read")
    def filter_rows(
        dataset_id: DatasetId,
        filters: Filters = [],  # noqa: B006
        columns: Columns = [],  # noqa: B006
        order_by: OrderKeys = [],  # noqa: B006
        limit: Limit = 20,
    ) -> dict[str, Any]:
        """The rows meeting every filter, in `order_by` order (file order without it), with the chosen columns;
        `matching` counts them all, `left_out` those not returned.
        Example: {"dataset_id": "<id>", "filters": [{"column": "시군구명", "op": "eq", "value": "중구"},
        {"column": "제한속도", "op": "between", "value": [30, 50]}], "columns": ["소재지지번주소", "제한속도"],
        "order_by": [{"column": "제한속도", "desc": true}], "limit": 10}"""
        answer = query(dataset_id, filters=filters, order_by=order_by, limit=min(limit, kit.max_rows, most()))
        return matching_rows(dataset_id, answer, columns, filters)

    @kit.tool("read")
    def sample_rows(
        dataset_id: DatasetId,
        n: Annotated[int, Field(ge=1, le=1000, description="how many rows")] = 5,
        filters: Filters = [],  # noqa: B006
        columns: Columns = [],  # noqa: B006
    ) -> dict[str, Any]:
        """A peek at the data: the first `n` rows in file order (not a random sample) meeting the filters, with
        the chosen columns; `matching` counts the rows meeting the filters.
        Example: {"dataset_id": "<id>", "n": 3, "filters": [{"column": "제한속도", "op": "not_null"}]}"""
        answer = query(dataset_id, filters=filters, limit=min(n, kit.max_rows, most()))
        return matching_rows(dataset_id, answer, columns, filters)

    @kit.tool("read")
    def group_aggregate(
        dataset_id: DatasetId,
        group_by: Annotated[
            list[str], Field(max_length=4, description="the columns to group by; none for one whole-table row")
        ],
        aggregates: Aggregates = [],  # noqa: B006
        filters: Filters = [],  # noqa: B006
        order_by: OrderKeys = [],  # noqa: B006
        limit: Limit = 50,
    ) -> dict[str, Any]:
        """Aggregates per group over the rows meeting the filters (the row count when no aggregate is given);
        groups come in `order_by` order, else by the group columns; missing values form a group of their own. As
        POST /api/datasets/{id}/query. `left_out`: groups not returned; `truncated`: more groups exist than the
        engine counts (EXPLORE_MAX_ROWS), so left_out is a lower bound.
        Example (cameras per 구, most first): {"dataset_id": "<id>", "group_by": ["시군구명"], "aggregates":
        [{"op": "count"}, {"op": "mean", "column": "제한속도"}], "order_by": [{"column": "count", "desc": true}]}"""
        if not group_by and not aggregates:
            raise InvalidRequest(
                "give group_by columns, aggregates or both (filter_rows answers rows)",
                details=[{"field": "aggregates"}],
            )
        answer = query(
            dataset_id, filters=filters, group_by=group_by, aggregates=aggregates, order_by=order_by, limit=most()
        )
        return table(answer, limit)

    @kit.tool("read")
    def cross_table(
        dataset_id: DatasetId,
        row: Annotated[str, Field(min_length=1, max_length=200, description="a column (or the time part)")],
        column: Annotated[
            str,
            Field(min_length=1, max_length=200, description="a column (or the time part) whose values become keys"),
        ],
        value: Annotated[
            Aggregate | None,
            Field(description='what each cell holds, e.g. {"op": "mean", "column": "제한속도"}; the row count if none'),
        ] = None,
        time: Annotated[
            TimePattern | None,
            Field(
                description='a date column\'s part that `row` or `column` may name, e.g. {"column": "단속일시", '
                '"by": "weekday"}'
            ),
        ] = None,
        filters: Filters = [],  # noqa: B006
        descending: Annotated[bool, Field(description="rows in descending order of their value")] = False,
        limit: Limit = 50,
    ) -> dict[str, Any]:
        """A cross table: one row per value of `row`, one key per value of `column` (its 50 most frequent), each
        cell the count (or `value`) of the rows meeting the filters; missing values are left out (as
        pandas.crosstab). `truncated`: more rows or columns exist than the engine answers.
        Example: {"dataset_id": "<id>", "row": "시군구명", "column": "제한속도"}"""
        order = [OrderBy(column=row, desc=True)] if descending else []
        answer = query(
            dataset_id,
            filters=filters,
            crosstab=CrossTab(row=row, column=column, value=value),
            time=time,
            order_by=order,
            limit=most(),
        )
        return table(answer, limit)

    @kit.tool("read")
    def time_pattern(
        dataset_id: DatasetId,
        column: Annotated[str, Field(min_length=1, max_length=200, description="a column of dates (or date-times)")],
        by: Annotated[
            TimePart,
            Field(description="year, month, weekday (0 = Monday .. 6 = Sunday), hour (date-times only) or date"),
        ],
        aggregates: Aggregates = [],  # noqa: B006
        group_by: Annotated[list[str], Field(max_length=3, description="more columns to split each period by")] = [],  # noqa: B006
        filters: Filters = [],  # noqa: B006
        limit: Limit = 100,
    ) -> dict[str, Any]:
        """Rows (or aggregates) per period of a date column: per year, month, weekday, hour or date, in time order,
        over the rows meeting the filters; the period is the output key named after `by`.
        Example (cameras per hour of enforcement): {"dataset_id": "<id>", "column": "단속일시", "by": "hour"}"""
        answer = query(
            dataset_id,
            filters=filters,
            time=TimePattern(column=column, by=by),
            group_by=group_by,
            aggregates=aggregates,
            limit=most(),
        )
        return table(answer, limit)

    @kit.tool("read")
    def percentile(
        dataset_id: DatasetId,
        column: ColumnName,
        percentiles: Annotated[
            list[Annotated[float, Field(ge=0, le=100)]],
            Field(min_length=1, max_length=10, description="percentiles 0..100, e.g. [10, 50, 90]"),
        ],
        filters: Filters = [],  # noqa: B006
    ) -> dict[str, Any]:
        """Percentiles of a numbers column over the rows meeting the filters, exact and interpolated linearly
        between values (pandas' default), missing values left out.
        Example: {"dataset_id": "<id>", "column": "제한속도", "percentiles": [25, 50, 75, 95]}"""
        wanted = [Aggregate(op="percentile", column=column, q=p / 100, name=f"q{i}") for i, p in enumerate(percentiles)]
        (answer,) = query(dataset_id, filters=filters, aggregates=wanted).rows
        return {
            "column": column,
            "percentiles": [{"percentile": p, "value": answer[f"q{i}"]} for i, p in enumerate(percentiles)],
        }

    @kit.tool("read")
    def outliers(
        dataset_id: DatasetId,
        column: ColumnName,
        columns: Columns = [],  # noqa: B006
    ) -> dict[str, Any]:
        """The rows whose value of a numbers column lies beyond the fences of its profile's quartiles, below
        Q1 - 1.5 x IQR or above Q3 + 1.5 x IQR (IQR = Q3 - Q1): the fences, how many lie below and above, and the
        rows furthest beyond their fence first.
        Example: {"dataset_id": "<id>", "column": "주차구획수", "columns": ["주차장명", "주차구획수"]}"""
        stats = _profiled(explore.profile(dataset_id), column, "column")
        if stats.q1 is None or stats.q3 is None:
            raise InvalidRequest(
                f"{column!r} has no quartiles (it holds no numbers): outliers need a numbers column",
                details=[{"field": "column"}],
            )
        iqr = stats.q3 - stats.q1
        low, high = stats.q1 - 1.5 * iqr, stats.q3 + 1.5 * iqr
        below_filter, above_filter = (
            [Filter(column=column, op="lt", value=low)],
            [Filter(column=column, op="gt", value=high)],
        )
        shown = min(kit.max_rows, most())
        below = query(dataset_id, filters=below_filter, order_by=[OrderBy(column=column)], limit=shown)
        above = query(dataset_id, filters=above_filter, order_by=[OrderBy(column=column, desc=True)], limit=shown)
        beyond = [(low - r[column], r) for r in below.rows] + [(r[column] - high, r) for r in above.rows]
        beyond.sort(key=lambda pair: -pair[0])
        n_below, n_above = count(dataset_id, below_filter), count(dataset_id, above_filter)
        rows = _project(
            QueryResult(columns=below.columns, rows=[r for _, r in beyond[:shown]], truncated=False), columns
        )
        return {
            "column": column,
            "q1": stats.q1,
            "q3": stats.q3,
            "iqr": iqr,
            "low_fence": low,
            "high_fence": high,
            "below": n_below,
            "above": n_above,
            "rows": rows,
            "left_out": n_below + n_above - len(rows),
        }

    @kit.tool("read")
    def correlation_with_target(
        dataset_id: DatasetId,
        target: Annotated[str, Field(min_length=1, max_length=200, description="a numbers column")],
        columns: Annotated[
            list[str], Field(max_length=50, description="the numbers columns to correlate; all of them when empty")
        ] = [],  # noqa: B006
    ) -> dict[str, Any]:
        """Pearson correlation of numbers columns with a target column, strongest (by absolute value) first, each
        over the rows where both are present (`n` of them). The engine has no correlation aggregate: it is computed
        from the first rows with the target present, in file order, at most EXPLORE_MAX_ROWS of them; `sample` says
        whether those are fewer than all (`rows_used` of `rows_with_target`): then it is an estimate.
        Example: {"dataset_id": "<id>", "target": "제한속도", "columns": ["설치연도", "위도"]}"""
        profile = explore.profile(dataset_id)
        numeric = [c.name for c in profile.columns if c.type in ("number", "coordinate")]
        if _profiled(profile, target, "target").name not in numeric:
            raise InvalidRequest(
                f"{target!r} is not a numbers column; the numbers columns: {', '.join(numeric)}",
                details=[{"field": "target"}],
            )
        for i, name in enumerate(columns):
            if _profiled(profile, name, f"columns[{i}]").name not in numeric:
                raise InvalidRequest(
                    f"{name!r} is not a numbers column; the numbers columns: {', '.join(numeric)}",
                    details=[{"field": f"columns[{i}]"}],
                )
        chosen = [c for c in dict.fromkeys(columns or numeric) if c != target]
        pulled = query(dataset_id, filters=[Filter(column=target, op="not_null")], limit=most())
        present = query(dataset_id, aggregates=[Aggregate(op="count", column=target, name="n")]).rows[0]["n"]
        frame = pd.DataFrame(pulled.rows, columns=pulled.columns)
        y = pd.to_numeric(frame[target], errors="coerce")
        found = []
        for name in chosen:
            x = pd.to_numeric(frame[name], errors="coerce")
            both = x.notna() & y.notna()
            r = float(x[both].corr(y[both])) if both.sum() > 1 else math.nan
            found.append({"column": name, "r": r if math.isfinite(r) else None, "n": int(both.sum())})
        found.sort(key=lambda c: -abs(c["r"]) if c["r"] is not None else 1.0)
        return {
            "target": target,
            "rows_used": len(pulled.rows),
            "rows_with_target": present,
            "sample": len(pulled.rows) < present,
            **bounded(found, kit.max_rows, key="correlations"),
        }

    @kit.tool("read")
    def geo_bounds(dataset_id: DatasetId, filters: Filters = []) -> dict[str, Any]:  # noqa: B006
        """The box the dataset's points lie in: the least and greatest latitude and longitude of the rows with
        valid coordinates (both present, within +-90 and +-180) meeting the filters, and how many such rows.
        Example: {"dataset_id": "<id>", "filters": [{"column": "시군구명", "op": "eq", "value": "중구"}]}"""
        profile = explore.profile(dataset_id)
        if profile.coordinates is None:
            raise InvalidRequest(
                f"dataset {dataset_id} has no latitude and longitude columns", details=[{"field": "dataset_id"}]
            )
        lat, lon = profile.coordinates.latitude, profile.coordinates.longitude
        valid = [Filter(column=lat, op="between", value=[-90, 90]), Filter(column=lon, op="between", value=[-180, 180])]
        bounds = [Aggregate(op="count", name="with_coordinates")] + [
            Aggregate(op=op, column=c, name=f"{op}_{axis}")  # type: ignore[arg-type]
            for c, axis in ((lat, "latitude"), (lon, "longitude"))
            for op in ("min", "max")
        ]
        (answer,) = query(dataset_id, filters=[*valid, *filters], aggregates=bounds).rows
        return {"latitude_column": lat, "longitude_column": lon, "rows": profile.rows, **answer}

    @kit.tool("read")
    def near(
        dataset_id: DatasetId,
        other_id: Annotated[str, Field(min_length=1, max_length=64, description="the other dataset's id")],
        radius_m: Annotated[float, Field(gt=0, description="metres (at most EXPLORE_MAX_RADIUS_M)")] = 500.0,
        limit: Annotated[int, Field(ge=1, le=10_000, description="the most rows to answer")] = 20,
        columns: Columns = [],  # noqa: B006
    ) -> dict[str, Any]:
        """What lies near what, as GET /api/datasets/{id}/near: with coordinates in both datasets, for each row of
        this one how many rows of the other lie within `radius_m` (great-circle) and how far its nearest is, most
        first (`row`: its 0-based row in the file; `columns` of this dataset ride along), with a summary (mean,
        median, max count, share with none). An accident file (no coordinates) against a table with Daegu
        addresses: per 동 its accidents, severe share and mean ECLO beside the table's rows in that 동.
        Example: {"dataset_id": "<school zones id>", "other_id": "<cameras id>", "radius_m": 300}"""
        answer = explore.near(dataset_id, other_id, radius_m, min(limit, kit.max_rows), columns)
        summary = answer.summary
        total = summary.get("rows_with_coordinates", summary.get("dongs", len(answer.rows)))
        return {"rows": answer.rows, "left_out": total - len(answer.rows), "summary": summary}


def _profiled(profile: TableProfile, name: str, field: str) -> ColumnProfile:
    """The named column's profile, or a 422 naming `field` and listing the columns."""
    for column in profile.columns:
        if column.name == name:
            return column
    message = f"no column named {name!r}; {allowed_message([c.name for c in profile.columns])}"
    raise InvalidRequest(message, details=[{"field": field}])


def _project(answer: QueryResult, columns: list[str]) -> list[dict[str, Any]]:
    """The answer's rows with only `columns` (all when empty); an unknown one is a 422 naming it."""
    for i, name in enumerate(columns):
        if name not in answer.columns:
            raise InvalidRequest(
                f"no column named {name!r}; {allowed_message(answer.columns)}", details=[{"field": f"columns[{i}]"}]
            )
    return [{c: row[c] for c in columns} for row in answer.rows] if columns else answer.rows
