"""Any uploaded dataset, read through the API a piece at a time (the page never loads a whole file): its size and
missing values, a preview, every column's type and summary, a chart of a column or of two, its points on a map,
what lies near another dataset's points, and for an accident file each 동's accidents beside a side table's rows."""

from __future__ import annotations

import html
import json
from typing import Any

import folium
import pandas as pd
import plotly.express as px
import streamlit as st
from branca.colormap import LinearColormap
from streamlit_folium import st_folium

from frontend.client import ApiError
from frontend.connection import api_call, caller_key, client
from frontend.explore_charts import (
    NUMERIC,
    OTHER_COLOR,
    box,
    chart_kinds,
    column_table,
    correlation,
    count_color,
    density,
    dong_places,
    histogram,
    legend_html,
    mostly_missing,
    number,
    scatter,
    time_pattern,
    value_bars,
)
from frontend.maps import PointLayer, base_map, fit
from frontend.tables import utc

DATASETS_PAGE = "views/datasets.py"
ADDRESS_COLUMN = "소재지지번주소"  # the Daegu side tables' lot-number address: it names the 구 and the 동
DISTRICT_COLUMN = "시군구"  # an accident file's (Dacon layout) 구 and 동
DAEGU = (35.8714, 128.6014)
PREVIEW_ROWS = 20
QUERY_MAX_ROWS = 1000  # the most rows one query returns (the API's `limit`)
NEAR_MAX_ROWS = 10_000  # the most rows one proximity answer returns
POINT_CAPS = [500, 1000, 2000, 5000]
KINDS = {"table": "table", "eclo": "accidents (eclo)"}


# Reads, cached per key (`caller`): a session never gets answers its own key was not allowed. A dataset never changes
# once uploaded (a new upload is a new id), so its reads stay cached; the listing is re-read often.
@st.cache_data(ttl=15, show_spinner=False)
def _listing(caller: str | None) -> dict[str, Any]:
    return client().datasets(size=100)


@st.cache_data(ttl=15, max_entries=100, show_spinner=False)
def _one(dataset_id: str, caller: str | None) -> list[dict[str, Any]]:
    """The dataset as a listing item ([] when there is no such dataset)."""
    try:
        found = client().dataset(dataset_id, size=1)
    except ApiError as exc:
        if exc.status in (404, 422):
            return []
        raise
    return [{k: v for k, v in found.items() if k != "report"}]


@st.cache_data(ttl=3600, max_entries=100, show_spinner="Reading the profile…")
def _profile(dataset_id: str, caller: str | None) -> dict[str, Any]:
    return client().dataset_profile(dataset_id)


@st.cache_data(ttl=3600, max_entries=200, show_spinner="Querying…")
def _query(dataset_id: str, body: str, caller: str | None) -> dict[str, Any]:
    return client().query_dataset(dataset_id, json.loads(body))


@st.cache_data(ttl=3600, max_entries=200, show_spinner="Reading the column…")
def _column(dataset_id: str, name: str, bins: int, caller: str | None) -> dict[str, Any]:
    return client().dataset_column(dataset_id, name, bins)


@st.cache_data(ttl=3600, max_entries=50, show_spinner="Reading the points…")
def _points(dataset_id: str, columns: tuple[str, ...], cap: int, caller: str | None) -> dict[str, Any]:
    return client().dataset_points(dataset_id, list(columns), cap)


@st.cache_data(ttl=3600, max_entries=50, show_spinner="Counting what lies near…")
def _near(
    dataset_id: str, other: str, radius_m: float, limit: int, columns: tuple[str, ...], caller: str | None
) -> dict[str, Any]:
    return client().dataset_near(dataset_id, other, radius_m, limit, list(columns))


def query(dataset_id: str, **body: Any) -> dict[str, Any]:
    return _query(dataset_id, json.dumps(body, sort_keys=True, ensure_ascii=False), caller_key())


def profile(dataset_id: str) -> dict[str, Any]:
    return _profile(dataset_id, caller_key())


def points(dataset_id: str, columns: tuple[str, ...], cap: int) -> dict[str, Any]:
    return _points(dataset_id, columns, cap, caller_key())


def coordinates_of(dataset_id: str) -> dict[str, str] | None:
    """The dataset's coordinate columns; None without any, or when it cannot be explored (no columnar copy)."""
    try:
        return profile(dataset_id)["coordinates"]
    except ApiError as exc:
        if exc.status in (404, 409):
            return None
        raise


def _shown(value: Any, form: str) -> str:
    return "–" if value is None else form.format(value)


def label_of(dataset: dict[str, Any]) -> str:
    """Its name, kind and rows, and the upload time and id that tell apart files uploaded under one name."""
    return (f"{dataset['name']} · {KINDS.get(dataset['kind'], dataset['kind'])} · {dataset['rows']:,} rows · "
            f"uploaded {utc(dataset['uploaded_at'])} ({dataset['id'][:8]})")  # fmt: skip


def default_label(columns: list[dict[str, Any]], skip: tuple[str, ...] = ()) -> str | None:
    """The column that names a point best: the text column with the most distinct values (a place or facility
    name rather than a code shared by many rows)."""
    texts = [c for c in columns if c["type"] in ("text", "category") and c["name"] not in skip]
    return max(texts, key=lambda c: (c["distinct"], -c["missing_share"]))["name"] if texts else None


def scatter_columns(columns: list[dict[str, Any]]) -> list[str]:
    """The numeric columns, the likeliest pair first: mostly present numbers with the most distinct values, then
    the coordinates."""
    numeric = [c for c in columns if c["type"] in NUMERIC]
    ranked = sorted(numeric, key=lambda c: (c["type"] != "number", c["missing_share"] > 0.5, -c["distinct"]))
    return [c["name"] for c in ranked]


def _overview(dataset: dict[str, Any], table: dict[str, Any]) -> None:
    columns = table["columns"]
    average = sum(c["missing_share"] for c in columns) / len(columns) if columns else 0.0
    found = table.get("coordinates")
    cols = st.columns(4)
    cols[0].metric("Rows", f"{table['rows']:,}")
    cols[1].metric("Columns", f"{len(columns):,}")
    cols[2].metric("Average missing share", f"{average:.1%}", help="the mean over the columns of their share missing")
    cols[3].metric("Coordinates", f"{found['latitude']} / {found['longitude']}" if found else "none",
                   help="the latitude and longitude columns the API found (they put the rows on a map)")  # fmt: skip
    st.caption(f"{dataset['filename']} · {KINDS.get(dataset['kind'], dataset['kind'])} · {dataset['encoding']} · "
               f"uploaded {utc(dataset['uploaded_at'])} · id {dataset['id']}")  # fmt: skip


def without_nulls(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as empty cells, not the grid's "None": a column with any becomes text (numbers without a
    trailing ".0")."""
    shown = frame.copy()
    for name in shown.columns:
        column = shown[name]
        if column.isna().any():
            shown[name] = [
                "" if pd.isna(v) else str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in column
            ]
    return shown


def _preview(dataset_id: str, table: dict[str, Any]) -> None:
    st.subheader("Preview")
    with api_call():
        first = query(dataset_id, limit=PREVIEW_ROWS)
    frame = pd.DataFrame(first["rows"], columns=first["columns"])
    for column in table["columns"]:
        if column["type"] == "date" and column["name"] in frame.columns:  # ISO text: "2013-01-01 07:00:00"
            frame[column["name"]] = [None if v is None else number(v) for v in frame[column["name"]]]
    frame = without_nulls(frame)
    st.dataframe(frame, hide_index=True, height=min(35 * (len(frame) + 1) + 3, 420))
    st.caption(f"The first {len(frame):,} of {table['rows']:,} rows, as stored.")


def _columns(table: dict[str, Any]) -> None:
    st.subheader("Columns")
    columns = table["columns"]
    missing = mostly_missing(columns)
    if missing:
        listed = ", ".join(f"{name} ({share:.0%})" for name, share in missing)
        st.warning(f"{len(missing)} of {len(columns)} columns are mostly missing (over half their rows): {listed}.")
    st.dataframe(
        column_table(columns),
        hide_index=True,
        height=min(35 * (len(columns) + 1) + 3, 640),
        column_config={
            "column": st.column_config.TextColumn("column", width=190, pinned=True),
            "type": st.column_config.TextColumn("type", width=95),
            "missing": st.column_config.ProgressColumn(
                "missing", format="percent", min_value=0.0, max_value=1.0, width=120
            ),
            "distinct": st.column_config.NumberColumn("distinct", format="localized", width=75),
            **{key: st.column_config.TextColumn(key, width=85) for key in ("q1", "median", "q3")},
            "min": st.column_config.TextColumn("min", width=135),
            "max": st.column_config.TextColumn("max", width=135),
            "mean": st.column_config.TextColumn("mean", width=85),
            "std": st.column_config.TextColumn("std", width=85),
            "most frequent": st.column_config.TextColumn("most frequent", width=420),
        },
    )
    st.caption("Types: number, category (few distinct values), text, date, coordinate. Summary numbers are over the "
               "values present; q1 and q3 are the quartiles, std the standard deviation.")  # fmt: skip


@st.fragment
def _charts(dataset_id: str, columns: list[dict[str, Any]]) -> None:
    st.subheader("Charts")
    if not columns:
        st.info("The table has no columns to chart.")
        return
    names = [c["name"] for c in columns]
    by_name = {c["name"]: c for c in columns}
    numbers = [n for n in scatter_columns(columns) if by_name[n]["type"] == "number"]
    left, right = st.columns([1, 2])
    with left:
        first = names.index(numbers[0]) if numbers else 0
        name = st.selectbox("Column", names, index=first, key=f"column-{dataset_id}")
        column = by_name[name]
        kinds = chart_kinds(column)
        kind = st.segmented_control("Chart", kinds, default=kinds[0], key=f"chart-{dataset_id}-{column['type']}")
        kind = kind or kinds[0]
        bins = 30
        if kind in ("histogram", "density"):
            bins = st.slider("Bins", 5, 100, 30, step=5, key=f"bins-{dataset_id}")
    with right:
        if kind.startswith("by "):
            part = kind.removeprefix("by ")
            with api_call():
                answer = query(dataset_id, time={"column": name, "by": part}, limit=QUERY_MAX_ROWS)
            st.plotly_chart(time_pattern(answer, part, name), width="stretch")
        elif kind == "box":
            st.plotly_chart(box(column), width="stretch")
            st.caption("From the column's quantile summary: the box spans the quartiles, the whiskers the minimum "
                       "and maximum; the dashed line marks the mean ± one standard deviation.")  # fmt: skip
        else:
            with api_call():
                detail = _column(dataset_id, name, bins, caller_key())
            if not detail.get("bins") and not detail.get("values"):
                st.info(f"{name} has no values: every row is missing.")
            elif kind == "bars" or not detail.get("bins"):
                st.plotly_chart(value_bars(detail), width="stretch")
            elif kind == "density":
                st.plotly_chart(density(detail), width="stretch")
            else:
                st.plotly_chart(histogram(detail), width="stretch")
            if detail.get("missing"):
                st.caption(f"{detail['missing']:,} of {detail['rows']:,} rows have no {name} "
                           f"({detail['missing_share']:.1%}).")  # fmt: skip
    _scatter(dataset_id, scatter_columns(columns))


def _scatter(dataset_id: str, numeric: list[str]) -> None:
    st.markdown("**Two numeric columns**")
    if len(numeric) < 2:
        st.caption("A scatter needs two numeric columns; this table has " + ("one." if numeric else "none."))
        return
    left, right = st.columns([1, 2])
    with left:
        x = st.selectbox("x", numeric, index=0, key=f"x-{dataset_id}")
        others = [n for n in numeric if n != x]
        y = st.selectbox("y", others, index=0, key=f"y-{dataset_id}")
        cap = st.select_slider("Rows at most", [100, 250, 500, 1000], value=1000, key=f"scatter-cap-{dataset_id}")
    present = [{"column": x, "op": "not_null"}, {"column": y, "op": "not_null"}]
    with api_call():
        pairs = query(dataset_id, filters=present, group_by=[x, y], aggregates=[{"op": "count", "name": "rows"}],
                      limit=cap)  # fmt: skip
        sized = not pairs["truncated"]
        if not sized:  # more distinct pairs than the cap: the first rows themselves
            sample = query(dataset_id, filters=present, limit=cap)
    with right:
        if sized:
            frame = pd.DataFrame(pairs["rows"], columns=pairs["columns"])
            if frame.empty:
                st.info(f"No row has both {x} and {y}.")
                return
            st.plotly_chart(scatter(frame, x, y, sized=True), width="stretch")
            st.caption(f"Every row with both values: {int(frame['rows'].sum()):,} rows as {len(frame):,} distinct "
                       "pairs, each sized by its rows.")  # fmt: skip
        else:
            frame = pd.DataFrame(sample["rows"], columns=sample["columns"])[[x, y]]
            st.plotly_chart(scatter(frame, x, y, sized=False), width="stretch")
            st.caption(f"The first {len(frame):,} rows with both values (they hold more than {cap:,} distinct "
                       "pairs).")  # fmt: skip


@st.fragment
def _map(dataset_id: str, table: dict[str, Any]) -> None:
    st.subheader("Map")
    found = table["coordinates"]
    coordinate_names = (found["latitude"], found["longitude"])
    label_options = [c["name"] for c in table["columns"] if c["name"] not in coordinate_names]
    default = default_label(table["columns"], coordinate_names)
    cols = st.columns([1, 2, 1])
    cap = cols[0].select_slider("Points at most", POINT_CAPS, value=2000, key=f"map-cap-{dataset_id}")
    label = cols[1].selectbox("Point label", label_options, key=f"map-label-{dataset_id}",
                              index=label_options.index(default) if default in label_options else 0)  # fmt: skip
    clustered = cols[2].toggle("Cluster markers", value=True, key=f"cluster-{dataset_id}")
    with api_call():
        answer = points(dataset_id, (label,), cap)
    shown = answer["points"]
    if not shown:
        st.info(f"No row has a valid {found['latitude']} and {found['longitude']}: nothing to put on a map.")
        return
    area = base_map(DAEGU, 11)
    PointLayer([(p["lat"], p["lon"], OTHER_COLOR, p.get(label)) for p in shown], cluster=clustered).add_to(area)
    fit(area, [(p["lat"], p["lon"]) for p in shown])
    st_folium(area, height=520, width="100%", key=f"points-{dataset_id}", returned_objects=[])
    note = f"{len(shown):,} of {answer['total']:,} points shown"
    if answer["left_out"]:
        note += f" (a fixed sample: {answer['left_out']:,} left out; raise the cap to see more)"
    without = table["rows"] - answer["total"]
    if without:
        note += f" · {without:,} rows have no valid coordinates"
    st.caption(note + ".")


def _near_candidates(datasets: list[dict[str, Any]], dataset_id: str) -> list[dict[str, Any]]:
    """The other tables with coordinates (their profiles say so)."""
    with api_call():
        return [d for d in datasets if d["id"] != dataset_id and d["kind"] == "table" and coordinates_of(d["id"])]


@st.fragment
def _near_section(dataset: dict[str, Any], table: dict[str, Any], datasets: list[dict[str, Any]]) -> None:
    st.subheader("Near another dataset")
    dataset_id = dataset["id"]
    candidates = _near_candidates(datasets, dataset_id)
    if not candidates:
        st.info("No other dataset with latitude and longitude yet: upload one on the Datasets page (speed cameras, "
                "child protection zones, parking lots…) to count what lies near each of these points.")  # fmt: skip
        return
    names = {d["id"]: label_of(d) for d in candidates}
    cols = st.columns([2, 2, 1])
    other = cols[0].selectbox("Other dataset", list(names), format_func=names.__getitem__, key=f"near-{dataset_id}")
    radius = cols[1].slider("Radius (m)", 50, 3000, 500, step=50, key=f"radius-{dataset_id}")
    cap = cols[2].select_slider("Points at most", POINT_CAPS, value=2000, key=f"near-cap-{dataset_id}")
    found = table["coordinates"]
    label = default_label(table["columns"], (found["latitude"], found["longitude"]))
    carried = tuple(dict.fromkeys([found["latitude"], found["longitude"], *([label] if label else [])]))
    other_table = profile(other)
    other_label = default_label(other_table["columns"], tuple(other_table["coordinates"].values()))
    with api_call():
        near = _near(dataset_id, other, float(radius), min(max(table["rows"], 1), NEAR_MAX_ROWS), carried,
                     caller_key())  # fmt: skip
        theirs = points(other, (other_label,) if other_label else (), cap)
    summary, rows = near["summary"], near["rows"]
    cols = st.columns(5)
    cols[0].metric("Points", f"{summary['rows_with_coordinates']:,}", help="rows of this dataset with coordinates")
    cols[1].metric(f"Mean within {radius:,} m", _shown(summary["mean_count"], "{:.2f}"))
    cols[2].metric("Median", _shown(summary["median_count"], "{:g}"))
    cols[3].metric("Most", _shown(summary["max_count"], "{:,}"))
    cols[4].metric("With none", _shown(summary["share_with_none"], "{:.0%}"), help="points with none within the radius")
    other_name = next(d["name"] for d in candidates if d["id"] == other)
    st.caption(f"For each point of {dataset['name']}, the rows of {other_name} within {radius:,} m "
               f"(great-circle distance; {summary['other_rows_with_coordinates']:,} of its rows have "
               "coordinates).")  # fmt: skip
    if not rows:
        return

    step = max(1, -(-len(rows) // cap))  # every step-th of the rows, by count: the map shows at most `cap`
    mine = sorted(rows[::step], key=lambda r: r["count"])  # the highest counts drawn last, on top
    area = base_map(DAEGU, 11)
    other_points = theirs["points"]
    lat, lon = found["latitude"], found["longitude"]
    PointLayer([(r[lat], r[lon], count_color(r["count"]), f"{r.get(label) or ''} · {r['count']} within {radius} m")
                for r in mine], radius=5).add_to(area)  # fmt: skip
    # The other dataset's points on top, smaller: they stay visible among this one's.
    PointLayer([(p["lat"], p["lon"], OTHER_COLOR, p.get(other_label)) for p in other_points], radius=3).add_to(area)
    fit(area, [(r[lat], r[lon]) for r in mine] + [(p["lat"], p["lon"]) for p in other_points])
    st_folium(area, height=520, width="100%", key=f"near-map-{dataset_id}", returned_objects=[])
    st.html(legend_html())
    most = f" (of the {len(rows):,} with the most rows nearby)" if summary["truncated"] else ""
    st.caption(f"{len(mine):,} of {summary['rows_with_coordinates']:,} points shown{most}, coloured by count; "
               f"{len(other_points):,} of {theirs['total']:,} points of the other dataset.")  # fmt: skip

    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**Most rows within {radius:,} m**")
        top = pd.DataFrame(rows[:50])
        shown = [c for c in ["row", label, "count", "nearest_m"] if c and c in top.columns]
        st.dataframe(top[shown], hide_index=True, height=300, column_config={
            "row": st.column_config.NumberColumn("row", help="the row in the file, from 0"),
            "count": st.column_config.NumberColumn(f"within {radius:,} m"),
            "nearest_m": st.column_config.NumberColumn("nearest (m)", format="%.0f"),
        })  # fmt: skip
    with right:
        counts = pd.Series([r["count"] for r in rows]).value_counts().sort_index()
        figure = px.bar(x=counts.index, y=counts.to_numpy(), labels={"x": f"rows within {radius:,} m", "y": "points"},
                        color_discrete_sequence=["#f4511e"])  # fmt: skip
        figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10}, title="Points by count")
        st.plotly_chart(figure, width="stretch")


@st.fragment
def _per_dong(dataset: dict[str, Any], datasets: list[dict[str, Any]]) -> None:
    st.subheader("Accidents per 동 beside a side table")
    sides = [d for d in datasets if d["id"] != dataset["id"] and ADDRESS_COLUMN in (d.get("columns") or [])]
    if not sides:
        st.info(f"No side table yet: upload one with a lot-number address column ({ADDRESS_COLUMN}) on the Datasets "
                "page (daegu_cctv.csv, daegu_child_protection_zone.csv, daegu_parking.csv) to set each 동's "
                "accidents beside its rows.")  # fmt: skip
        return
    names = {d["id"]: label_of(d) for d in sides}
    cols = st.columns([3, 1])
    side = cols[0].selectbox("Side table", list(names), format_func=names.__getitem__, key=f"side-{dataset['id']}")
    top_n = cols[1].slider("Top 동s", 5, 50, 20, step=5, key=f"top-{dataset['id']}")
    with api_call():
        answer = _near(dataset["id"], side, 500.0, 1000, (), caller_key())
    summary = answer["summary"]
    frame = pd.DataFrame(answer["rows"])
    if frame.empty:
        st.info(f"No accident names a 동 in {DISTRICT_COLUMN}: nothing to set beside the side table.")
        return
    side_name = next(k for k in frame.columns if k not in ("gu", "dong", "count", "severe_share", "mean_eclo"))
    side_summary = summary["side"][side_name]
    rho = correlation(frame, "count", side_name)
    cols = st.columns(4)
    cols[0].metric("동s", f"{summary['dongs']:,}")
    cols[1].metric("Accidents placed", f"{summary['accidents_with_dong']:,}",
                   help=f"of {summary['accidents']:,}: those whose {DISTRICT_COLUMN} names a 구 and a 동")  # fmt: skip
    cols[2].metric("Side rows in these 동s", f"{side_summary['rows_in_accident_dongs']:,}",
                   help=f"of the side table's {side_summary['rows']:,} rows ({side_summary['rows_with_dong']:,} "
                   "name a 동)")  # fmt: skip
    cols[3].metric("Rank correlation", "–" if rho is None else f"{rho:.2f}",
                   help="Spearman's, between a 동's accidents and its side rows")  # fmt: skip

    frame["place"] = frame["gu"] + " " + frame["dong"]
    top = frame.head(top_n)
    left, right = st.columns(2)
    with left:
        figure = px.bar(top, x="count", y="place", orientation="h", color="mean_eclo", color_continuous_scale="OrRd",
                        hover_data={"severe_share": ":.1%", side_name: True},
                        labels={"count": "accidents", "place": "", "mean_eclo": "mean ECLO",
                                "severe_share": "severe share"})  # fmt: skip
        figure.update_yaxes(autorange="reversed", type="category")
        figure.update_layout(height=max(360, 22 * len(top) + 100), margin={"l": 10, "r": 10, "t": 40, "b": 10},
                             title=f"The {len(top)} 동s with the most accidents")  # fmt: skip
        st.plotly_chart(figure, width="stretch")
    with right:
        labels = {"count": "accidents", side_name: f"{side_name} rows", "mean_eclo": "mean ECLO",
                  "severe_share": "severe share"}  # fmt: skip
        figure = px.scatter(frame, x=side_name, y="count", hover_name="place", opacity=0.7, labels=labels,
                            hover_data={"mean_eclo": ":.2f", "severe_share": ":.1%"},
                            color_discrete_sequence=["#e64a19"])  # fmt: skip
        figure.update_layout(height=max(360, 22 * len(top) + 100), margin={"l": 10, "r": 10, "t": 40, "b": 10},
                             title=f"Each 동: accidents against {side_name} rows")  # fmt: skip
        st.plotly_chart(figure, width="stretch")
    _dong_map(sides, top, side_name)

    st.dataframe(
        frame[["gu", "dong", "count", "severe_share", "mean_eclo", side_name]],
        hide_index=True,
        height=360,
        column_config={
            "gu": "구",
            "dong": "동",
            "count": st.column_config.NumberColumn("accidents", format="localized"),
            "severe_share": st.column_config.NumberColumn("severe share", format="percent",
                                                          help="accidents with a death or a serious injury"),
            "mean_eclo": st.column_config.NumberColumn("mean ECLO", format="%.2f"),
            side_name: st.column_config.NumberColumn(f"{side_name} rows", format="localized"),
        },
    )  # fmt: skip
    note = f"{summary['returned']:,} of {summary['dongs']:,} 동s, most accidents first"
    st.caption(note + (" (the rest left out)." if summary["truncated"] else "."))


def _dong_map(sides: list[dict[str, Any]], top: pd.DataFrame, side_name: str) -> None:
    """The top 동s as circles sized by their accidents, each at the mean position of the side tables' rows whose
    address names it (the accident file has no coordinates)."""
    places: dict[tuple[str, str], list[float]] = {}
    with api_call():
        for side in sides:
            if not coordinates_of(side["id"]):
                continue
            for key, (lat, lon, n) in dong_places(points(side["id"], (ADDRESS_COLUMN,), 5000)["points"],
                                                  ADDRESS_COLUMN).items():  # fmt: skip
                total = places.setdefault(key, [0.0, 0.0, 0])
                total[0], total[1], total[2] = total[0] + lat * n, total[1] + lon * n, total[2] + n
    placed = [(row, (places[k][0] / places[k][2], places[k][1] / places[k][2]))
              for row in top.to_dict(orient="records") if (k := (row["gu"], row["dong"])) in places]  # fmt: skip
    if not placed:
        return
    area = base_map(DAEGU, 11)
    most = max(row["count"] for row, _ in placed)
    eclo = [row["mean_eclo"] for row, _ in placed if row["mean_eclo"] is not None]
    # Colours only: the scale is never added to the map (streamlit-folium would fetch d3 for it from a CDN).
    shade = LinearColormap(["#fee8c8", "#fdbb84", "#e34a33", "#b30000"], vmin=min(eclo, default=0),
                           vmax=max(eclo, default=1) if len(set(eclo)) > 1 else min(eclo, default=0) + 1)  # fmt: skip
    for row, (lat, lon) in placed:
        folium.CircleMarker(
            location=(lat, lon),
            radius=6 + 18 * (row["count"] / most) ** 0.5,
            color="#263238",
            weight=1,
            fill=True,
            fill_color=shade(row["mean_eclo"]) if row["mean_eclo"] is not None else "#9e9e9e",
            fill_opacity=0.75,
            tooltip=html.escape(f"{row['place']}: {row['count']:,} accidents, mean ECLO {row['mean_eclo']:.2f}, "
                                f"{row[side_name]:,} {side_name} rows"),
        ).add_to(area)  # fmt: skip
    fit(area, [where for _, where in placed])
    st_folium(area, height=460, width="100%", key="dong-map", returned_objects=[])
    st.caption(f"{len(placed)} of the top {len(top)} 동s, each at the mean position of the side tables' rows whose "
               "address names it (the accident file has no coordinates); circles sized by accidents, darker for a "
               f"higher mean ECLO ({min(eclo, default=0):.2f} – {max(eclo, default=0):.2f}).")  # fmt: skip


st.title("Explore")
st.markdown(
    "Any dataset uploaded on the Datasets page, read through the API a piece at a time (never the whole file): its "
    "columns, charts, a map of its points, what lies near another dataset's points, and for an accident file each "
    "동's accidents beside a side table."
)
with api_call():
    datasets = list(_listing(caller_key())["items"])
    wanted = st.query_params.get("dataset") or st.session_state.get("dataset")
    if wanted and wanted not in {d["id"] for d in datasets}:
        _listing.clear()  # a dataset just uploaded on the Datasets page: read the listing again
        datasets = list(_listing(caller_key())["items"])
        if wanted not in {d["id"] for d in datasets}:  # older than the listing's newest 100
            datasets += _one(wanted, caller_key())
if not datasets:
    st.info("No datasets yet: upload one on the Datasets page (any CSV table, or an accident file).")
    st.page_link(DATASETS_PAGE, label="Open the Datasets page", icon=":material/dataset:")
    st.stop()

by_id = {d["id"]: d for d in datasets}
ids = list(by_id)
current = st.query_params.get("dataset") or st.session_state.get("dataset")  # ?dataset=<id> links to one
chosen = st.selectbox("Dataset", ids, index=ids.index(current) if current in ids else 0,
                      format_func=lambda i: label_of(by_id[i]))  # fmt: skip
st.session_state["dataset"] = st.query_params["dataset"] = chosen
dataset = by_id[chosen]
with api_call():
    table = profile(chosen)
_overview(dataset, table)
if table["rows"] == 0:
    st.info("The table has no rows.")
    st.stop()
_preview(chosen, table)
_columns(table)
_charts(chosen, table["columns"])
if table.get("coordinates"):
    _map(chosen, table)
    _near_section(dataset, table, datasets)
if dataset["kind"] != "table" and DISTRICT_COLUMN in {c["name"] for c in table["columns"]}:
    _per_dong(dataset, datasets)
elif not table.get("coordinates"):
    st.info("This dataset has no latitude and longitude columns: no map. Accident files with a 시군구 column are "
            "set beside side tables per 동.")  # fmt: skip
