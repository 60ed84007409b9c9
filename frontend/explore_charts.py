"""What the Explore page draws from the API's answers: the column table, the charts of one column (from its
histogram bins or its quantile summary, never from the rows), the scatter of two, the colours of proximity counts,
and a 동's place from an address. Pure functions of the answers: no Streamlit, no API call."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

NUMERIC = ("number", "coordinate")
MOSTLY_MISSING = 0.5  # a column with more than this share missing gets a warning
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]  # the API's weekday: 0 = Monday
BAR = "#1565c0"
# Proximity counts: (lowest count, colour, legend), the first bucket that holds the count wins from the end.
COUNT_COLORS = [(0, "#b0bec5", "0"), (1, "#ffe082", "1"), (2, "#ffb300", "2–4"), (5, "#f4511e", "5–9"),
                (10, "#b71c1c", "10 or more")]  # fmt: skip
OTHER_COLOR = "#1e88e5"


def number(value: Any) -> str:
    """A summary number as the column table shows it: thousands separated, 6 significant digits, dates as text,
    "–" for none (never a literal None)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, str):
        return value.replace("T", " ", 1) if len(value) >= 19 and value[10:11] == "T" else value  # ISO date-times
    if isinstance(value, bool):
        return str(value).lower()
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))  # years stay 2019, not 2,019
    return f"{value:,.6g}"


def top_values(column: dict[str, Any], shown: int = 3) -> str:
    return ", ".join(f"{number(t['value'])} ({t['count']:,})" for t in column.get("top", [])[:shown])


def column_table(columns: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per column: its type, missing share, distinct count, summary numbers and most frequent values."""
    return pd.DataFrame(
        [
            {
                "column": c["name"],
                "type": c["type"],
                "missing": float(c["missing_share"]),
                "distinct": int(c["distinct"]),
                **{key: number(c.get(key)) for key in ("min", "q1", "median", "q3", "max", "mean", "std")},
                "most frequent": top_values(c),
            }
            for c in columns
        ]
    )


def mostly_missing(columns: list[dict[str, Any]], above: float = MOSTLY_MISSING) -> list[tuple[str, float]]:
    return [(c["name"], c["missing_share"]) for c in columns if c["missing_share"] > above]


def chart_kinds(column: dict[str, Any]) -> list[str]:
    """The charts a column offers: numbers a histogram, a box and a density; dates a histogram and their time
    patterns (hours only when they hold a time of day); other columns their most frequent values."""
    if column["type"] in NUMERIC:
        return ["histogram", "box", "density"]
    if column["type"] == "date":
        parts = ["by year", "by month", "by weekday"]
        if "timestamp" in str(column.get("storage", "")):
            parts.append("by hour")
        return ["histogram", *parts]
    return ["bars"]


def _layout(figure: go.Figure, title: str, height: int = 380) -> go.Figure:
    figure.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10}, bargap=0.05,
                         showlegend=False)  # fmt: skip
    return figure


def _bin_frame(detail: dict[str, Any]) -> pd.DataFrame:
    bins = pd.DataFrame(detail.get("bins") or [], columns=["start", "end", "count"])
    if detail["type"] == "date":
        bins["start"], bins["end"] = pd.to_datetime(bins["start"]), pd.to_datetime(bins["end"])
        bins["width"] = (bins["end"] - bins["start"]).dt.total_seconds() * 1000  # a date axis counts milliseconds
        bins["centre"] = bins["start"] + (bins["end"] - bins["start"]) / 2
    else:
        bins["width"] = bins["end"] - bins["start"]
        bins["centre"] = bins["start"] + bins["width"] / 2
    return bins


def histogram(detail: dict[str, Any]) -> go.Figure:
    """The column's histogram from its equal-width bins (one bar per value for integers with few values)."""
    bins = _bin_frame(detail)
    ranges = [f"{number(_plain(a))} – {number(_plain(b))}" for a, b in zip(bins["start"], bins["end"], strict=True)]
    figure = go.Figure(
        go.Bar(
            x=bins["centre"],
            y=bins["count"],
            width=bins["width"] * 0.98,
            marker_color=BAR,
            customdata=ranges,
            hovertemplate="%{customdata}: %{y:,} rows<extra></extra>",
        )
    )
    figure.update_xaxes(title=detail["name"])
    figure.update_yaxes(title="rows")
    return _layout(figure, f"{detail['name']}: histogram of {sum(bins['count']):,} values")


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return float(value)


def density(detail: dict[str, Any]) -> go.Figure:
    """A density curve from the histogram bins: each bin's share per unit width, smoothed by a Gaussian kernel
    over the bins (a kernel density estimate of the binned values, which is all the page ever holds)."""
    bins = _bin_frame(detail)
    counts = bins["count"].to_numpy(dtype=float)
    widths = bins["width"].to_numpy(dtype=float)
    total = counts.sum()
    heights = counts / (total * widths) if total else counts
    if len(heights) >= 5:
        offsets = np.arange(-3, 4)
        kernel = np.exp(-0.5 * (offsets / 1.2) ** 2)
        smoothed = np.convolve(np.pad(heights, 3, mode="edge"), kernel / kernel.sum(), mode="valid")
        smoothed *= heights.sum() / smoothed.sum() if smoothed.sum() else 1.0
    else:
        smoothed = heights
    figure = go.Figure(
        go.Scatter(
            x=bins["centre"],
            y=smoothed,
            mode="lines",
            line={"shape": "spline", "color": BAR, "width": 2},
            fill="tozeroy",
            hovertemplate="%{x}: %{y:.3g}<extra></extra>",
        )
    )
    figure.update_xaxes(title=detail["name"])
    figure.update_yaxes(title="density", rangemode="tozero")
    return _layout(figure, f"{detail['name']}: density (from {len(bins)} bins)")


def box(column: dict[str, Any]) -> go.Figure:
    """A box from the quantile summary: whiskers at the minimum and maximum, the mean and ± 1 standard deviation
    dashed."""
    q1, median, q3 = column.get("q1"), column.get("median"), column.get("q3")
    low, high = column.get("min"), column.get("max")
    if q1 is None or median is None or q3 is None:
        q1 = median = q3 = column.get("mean")
    mean, std = column.get("mean"), column.get("std")
    figure = go.Figure(
        go.Box(
            name=column["name"],
            q1=[q1],
            median=[median],
            q3=[q3],
            lowerfence=[low],
            upperfence=[high],
            mean=[mean] if mean is not None else None,
            sd=[std] if std is not None else None,
            boxmean="sd" if std is not None else bool(mean is not None),
            orientation="h",
            marker_color=BAR,
            hoverinfo="x",
        )
    )
    figure.update_xaxes(title=column["name"])
    figure.update_yaxes(showticklabels=False)
    return _layout(
        figure, f"{column['name']}: median {number(median)}, quartiles {number(q1)} – {number(q3)}", height=300
    )


def value_bars(detail: dict[str, Any]) -> go.Figure:
    """The most frequent values, most first, with the rest as one bar and the missing as another."""
    values = [(number(v["value"]), v["count"]) for v in detail.get("values") or []]
    if detail.get("other"):
        values.append(("(other values)", detail["other"]))
    if detail.get("missing"):
        values.append(("(missing)", detail["missing"]))
    frame = pd.DataFrame(values, columns=["value", "rows"])
    figure = px.bar(frame, x="rows", y="value", orientation="h", text="rows", color_discrete_sequence=[BAR])
    figure.update_traces(texttemplate="%{x:,}", textposition="outside", cliponaxis=False)
    figure.update_yaxes(autorange="reversed", title=None, type="category")
    figure.update_xaxes(title="rows")
    height = max(300, 28 * len(frame) + 90)
    return _layout(figure, f"{detail['name']}: {detail['distinct']:,} distinct values", height=height)


def time_pattern(answer: dict[str, Any], part: str, column: str) -> go.Figure:
    """Rows per year, month, weekday or hour of a date column (a `time` query's answer)."""
    frame = pd.DataFrame(answer["rows"], columns=answer["columns"]).dropna(subset=[part])
    if part == "weekday":
        frame["label"] = [WEEKDAYS[int(d)] for d in frame[part]]
    else:
        frame["label"] = frame[part].astype(int).astype(str)
    figure = px.bar(frame, x="label", y="count", color_discrete_sequence=[BAR])
    figure.update_xaxes(title=part, type="category")
    figure.update_yaxes(title="rows")
    return _layout(figure, f"{column}: rows by {part}")


def scatter(frame: pd.DataFrame, x: str, y: str, sized: bool) -> go.Figure:
    """Two numeric columns: every distinct pair sized by its rows (`sized`), or rows as points."""
    figure = px.scatter(
        frame, x=x, y=y, size="rows" if sized else None, size_max=28 if sized else None, opacity=0.6,
        color_discrete_sequence=[BAR], hover_data={"rows": ":,"} if sized else None,
    )  # fmt: skip
    return _layout(figure, f"{y} against {x}", height=420)


def count_color(count: int) -> str:
    color = COUNT_COLORS[0][1]
    for low, shade, _ in COUNT_COLORS:
        if count >= low:
            color = shade
    return color


def legend_html() -> str:
    dots = "".join(
        f'<span style="display:inline-block;margin-right:14px"><span style="display:inline-block;width:11px;'
        f'height:11px;border-radius:50%;background:{color};border:1px solid #263238;margin-right:4px"></span>'
        f"{text}</span>"
        for _, color, text in COUNT_COLORS
    )
    other = (
        f'<span style="display:inline-block"><span style="display:inline-block;width:9px;height:9px;'
        f'border-radius:50%;background:{OTHER_COLOR};border:1px solid #263238;margin-right:4px"></span>'
        "the other dataset's points</span>"
    )
    return f'<div style="font-size:0.85rem">rows within the radius: {dots}{other}</div>'


_DONG = re.compile(r"^(\S+?(?:동|가|읍|면|로))(?:산?[\d-]+)?$")


def gu_dong(address: Any) -> tuple[str, str] | None:
    """("남구", "대명동") of "대구광역시 남구 대명동 903-13"; None when the address names no 구 and 동."""
    if not isinstance(address, str):
        return None
    tokens = address.split()
    if tokens and tokens[0].endswith(("특별시", "광역시", "특별자치시", "도")):
        tokens = tokens[1:]
    if len(tokens) < 2 or not tokens[0].endswith(("구", "군", "시")):
        return None
    match = _DONG.match(tokens[1])
    return (tokens[0], match.group(1)) if match else None


def dong_places(points: list[dict[str, Any]], address: str) -> dict[tuple[str, str], tuple[float, float, int]]:
    """Each (구, 동)'s mean position over the points whose address names it, and how many points that is."""
    sums: dict[tuple[str, str], list[float]] = {}
    for point in points:
        key = gu_dong(point.get(address))
        if key is None:
            continue
        total = sums.setdefault(key, [0.0, 0.0, 0])
        total[0] += point["lat"]
        total[1] += point["lon"]
        total[2] += 1
    return {key: (lat / n, lon / n, int(n)) for key, (lat, lon, n) in sums.items()}


def correlation(frame: pd.DataFrame, a: str, b: str) -> float | None:
    """Spearman's rank correlation of two columns, None with fewer than 3 rows or a constant column."""
    if len(frame) < 3 or frame[a].nunique() < 2 or frame[b].nunique() < 2:
        return None
    return float(frame[a].rank().corr(frame[b].rank()))
