"""Proximity between tables: how many rows of one lie within a radius of each row of another, and, for accident
files without coordinates, per-동 counts of accidents beside the side tables' rows in the same 동.

Points go onto the unit sphere as 3-D vectors in a k-d tree (scipy's cKDTree). The straight-line (chord) distance
between two unit vectors is 2 sin(d / 2R) for a great-circle distance d, a monotonic function of it, so a ball query
with the chord of the radius finds exactly the points within that great-circle distance: no double loop, no
flat-earth error at any latitude.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.spatial import cKDTree

from backend.explore.engine import column_of, find_column, json_value
from backend.explore.errors import QueryError
from backend.schemas.explore import NearResult

EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)
MAX_RADIUS_M = 1_000_000.0
MAX_LIMIT = 100_000
MAX_COLUMNS = 20
_NEAR_KEYS = ("row", "count", "nearest_m")
_DONG_KEYS = ("gu", "dong", "count", "severe_share", "mean_eclo")


def unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    cos_lat = np.cos(lat)
    return np.column_stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)))


def chord_of(distance_m: float) -> float:
    return 2.0 * math.sin(distance_m / (2.0 * EARTH_RADIUS_M))


def great_circle_of(chord: np.ndarray) -> np.ndarray:
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def haversine_m(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    """Great-circle distance in metres (the brute-force reference of the tests and the benchmark)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _schema(path: Path, field: str) -> dict[str, Any]:
    try:
        return {f.name: column_of(f) for f in pq.read_schema(path)}
    except (OSError, pa.ArrowInvalid) as exc:
        raise QueryError(field, f"the table's file cannot be read: {exc}") from exc


def _coordinates(path: Path, coords: tuple[str, str], field: str, extra: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """The file's valid-coordinate mask and a frame of the coordinates (and extra columns) of all its rows."""
    if not isinstance(coords, tuple | list) or len(coords) != 2:
        raise QueryError(field, "give the (latitude, longitude) column names")
    schema = _schema(path, field)
    for i, name in enumerate(coords):
        column = find_column(schema, name, f"{field}[{i}]")
        if column.kind != "number":
            raise QueryError(f"{field}[{i}]", f"a coordinate needs a column of numbers; {name!r} is {column.storage}")
    names = list(dict.fromkeys([*coords, *extra]))
    frame = pq.read_table(path, columns=names).to_pandas()
    lat = pd.to_numeric(frame[coords[0]], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    lon = pd.to_numeric(frame[coords[1]], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    frame["__lat"], frame["__lon"] = lat, lon
    return valid, frame


def near(
    a: Path,
    a_coords: tuple[str, str],
    b: Path,
    b_coords: tuple[str, str],
    radius_m: float,
    *,
    limit: int = 1000,
    columns: list[str] | tuple[str, ...] = (),
    exclude_self: bool = False,
) -> NearResult:
    """For each row of `a` with coordinates, how many rows of `b` lie within `radius_m` (great-circle), and how far
    its nearest `b` row is. Rows come by count (most first), then row; `row` is the 0-based row of `a`'s file.
    `exclude_self` (for `a` and `b` the same table) leaves each row out of its own count."""
    if not (isinstance(radius_m, int | float) and math.isfinite(radius_m) and 0 < radius_m <= MAX_RADIUS_M):
        raise QueryError("radius_m", f"the radius must be more than 0 and at most {MAX_RADIUS_M:g} m")
    if not (isinstance(limit, int) and 1 <= limit <= MAX_LIMIT):
        raise QueryError("limit", f"limit must be 1..{MAX_LIMIT}")
    columns = list(columns)
    if len(columns) > MAX_COLUMNS:
        raise QueryError("columns", f"at most {MAX_COLUMNS} columns ride along with the rows")
    a_schema = _schema(Path(a), "a")
    for i, name in enumerate(columns):
        find_column(a_schema, name, f"columns[{i}]")
        if name in _NEAR_KEYS:
            raise QueryError(f"columns[{i}]", f"{name!r} is a key of every row already")
    a_valid, a_frame = _coordinates(Path(a), a_coords, "a_coords", columns)
    b_valid, b_frame = _coordinates(Path(b), b_coords, "b_coords", [])
    same = exclude_self and Path(a).resolve() == Path(b).resolve() and tuple(a_coords) == tuple(b_coords)
    if exclude_self and not same:
        raise QueryError("exclude_self", "applies only when a and b are the same table with the same coordinates")

    a_rows = np.flatnonzero(a_valid)
    a_points = unit_vectors(a_frame["__lat"].to_numpy()[a_rows], a_frame["__lon"].to_numpy()[a_rows])
    b_points = unit_vectors(b_frame["__lat"].to_numpy()[b_valid], b_frame["__lon"].to_numpy()[b_valid])
    counts = np.zeros(len(a_rows), dtype=np.int64)
    nearest = np.full(len(a_rows), np.nan)
    if len(a_rows) and len(b_points):
        tree = cKDTree(b_points)
        counts = np.asarray(tree.query_ball_point(a_points, chord_of(radius_m), return_length=True), dtype=np.int64)
        k = 2 if same else 1
        if len(b_points) >= k:
            chords, _ = tree.query(a_points, k=k, workers=-1)
            nearest = great_circle_of(chords[:, -1] if k == 2 else chords)
        if same:
            counts -= 1  # each point lies at distance 0 of itself

    order = np.lexsort((a_rows, -counts))[:limit]
    rows = []
    for i in order:
        record: dict[str, Any] = {
            "row": int(a_rows[i]),
            "count": int(counts[i]),
            "nearest_m": json_value(round(float(nearest[i]), 3)),
        }
        for name in columns:
            record[name] = json_value(a_frame[name].iat[int(a_rows[i])])
        rows.append(record)
    summary = {
        "rows": len(a_frame),
        "rows_with_coordinates": len(a_rows),
        "other_rows_with_coordinates": int(b_valid.sum()),
        "radius_m": float(radius_m),
        "mean_count": json_value(float(counts.mean())) if len(counts) else None,
        "median_count": json_value(float(np.median(counts))) if len(counts) else None,
        "max_count": int(counts.max()) if len(counts) else None,
        "share_with_none": json_value(float((counts == 0).mean())) if len(counts) else None,
        "returned": len(rows),
        "truncated": len(a_rows) > len(rows),
    }
    return NearResult(rows=rows, summary=summary)


# ---------------------------------------------------------------------------------------------------------------
# Per 동

_REGION = re.compile(r"^\S+(?:특별시|광역시|특별자치시|특별자치도|도)$")
_REGION_SHORT = frozenset(
    "서울 부산 대구 인천 광주 대전 울산 세종 경기 강원 충북 충남 전북 전남 경북 경남 제주".split()
)
_DISTRICT = re.compile(r"^\S+(?:시|군|구)$")
_DONG = re.compile(r"^(\S+?(?:동|가|읍|면|로))(?:산?[\d-]+)?$")


def parse_address(text: Any) -> tuple[str | None, str | None]:
    """The (구, 동) of a lot-number address or a 시군구 value: "대구광역시 남구 대명동 903-13" -> ("남구", "대명동"),
    "대구광역시 중구 동성로1가" -> ("중구", "동성로1가"), "대구광역시 달성군 논공읍 북리 12" -> ("달성군", "논공읍");
    a lot number stuck to the 동 ("남산동912-5") is cut off, a short region ("대구 달성군 ...") is understood. The 구 is
    None when the address skips it, the 동 when no 동/가/읍/면/로 follows."""
    if not isinstance(text, str):
        return None, None
    tokens = text.split()
    at = 1 if tokens and (_REGION.match(tokens[0]) or tokens[0] in _REGION_SHORT) else 0
    districts = []
    while at < len(tokens) and _DISTRICT.match(tokens[at]) and not _DONG.match(tokens[at]):
        districts.append(tokens[at])
        at += 1
    gu = " ".join(districts) or None
    if at < len(tokens):
        match = _DONG.match(tokens[at])
        if match:
            return gu, match.group(1)
    return gu, None


def dong_key(dong: str) -> str:
    """The 동 as joins match it: a 면 that became a 읍 keeps its name (옥포면 -> 옥포읍 in 2018), so both match."""
    return dong[:-1] + "읍면" if dong.endswith(("읍", "면")) else dong


def _read_columns(path: Path, field: str, wanted: list[str]) -> pd.DataFrame:
    schema = _schema(path, field)
    return pq.read_table(path, columns=[c for c in wanted if c in schema]).to_pandas()


def per_dong(
    accidents: Path,
    side: dict[str, Path],
    *,
    address_column: str = "소재지지번주소",
    district_column: str = "시군구",
    limit: int = 1000,
) -> NearResult:
    """Each (구, 동) of the accidents with its accident count, severe share ((사망자수 + 중상자수) > 0), mean ECLO
    (from ECLO, else from the four injury counts), and per side table its rows in that 동 (0 when none). Side
    addresses without a 구 take it from the accidents' 동 when that 동 name belongs to one 구 only; a 읍 and a 면 of
    the same name are one place (see `dong_key`), shown under the accidents' most frequent name for it."""
    if not (isinstance(limit, int) and 1 <= limit <= MAX_LIMIT):
        raise QueryError("limit", f"limit must be 1..{MAX_LIMIT}")
    injuries = ["사망자수", "중상자수", "경상자수", "부상자수"]
    frame = _read_columns(Path(accidents), "accidents", [district_column, "ECLO", *injuries])
    if district_column not in frame.columns:
        schema = list(_schema(Path(accidents), "accidents"))
        raise QueryError("accidents", f"the accident table has no {district_column!r} column", allowed=schema)
    for name in side:
        if name in (*_DONG_KEYS, "key"):
            raise QueryError(f"side.{name}", f"{name!r} is a key of every row already; name the table differently")

    places = frame[district_column].astype(object)
    parsed = {v: parse_address(v) for v in pd.unique(places)}
    frame["gu"] = places.map(lambda v: parsed[v][0])
    frame["dong"] = places.map(lambda v: parsed[v][1])

    def numbers(name: str) -> pd.Series | None:
        return pd.to_numeric(frame[name], errors="coerce").astype(float) if name in frame.columns else None

    deaths, serious = numbers("사망자수"), numbers("중상자수")
    frame["severe"] = np.nan
    if deaths is not None and serious is not None:
        frame["severe"] = ((deaths + serious) > 0).astype(float).where(deaths.notna() & serious.notna())
    eclo = numbers("ECLO")
    if eclo is None and all(name in frame.columns for name in injuries):
        eclo = 10 * numbers("사망자수") + 5 * numbers("중상자수") + 3 * numbers("경상자수") + numbers("부상자수")  # type: ignore[operator]
    frame["eclo"] = eclo if eclo is not None else np.nan

    located = frame[frame["gu"].notna() & frame["dong"].notna()].copy()
    located["key"] = located["dong"].map(dong_key)
    by_place = located.groupby(["gu", "key"], sort=True)
    grouped = by_place.agg(count=("dong", "size"), severe_share=("severe", "mean"), mean_eclo=("eclo", "mean"))
    grouped.insert(0, "dong", by_place["dong"].agg(lambda names: names.value_counts().index[0]))  # the usual name
    grouped = grouped.reset_index()
    gu_of_key = located.groupby("key")["gu"].unique()
    unique_gu = {key: gus[0] for key, gus in gu_of_key.items() if len(gus) == 1}
    places_index = pd.MultiIndex.from_frame(grouped[["gu", "key"]])

    side_summary: dict[str, dict[str, int]] = {}
    for name, path in side.items():
        table = _read_columns(Path(path), f"side.{name}", [address_column])
        if address_column not in table.columns:
            schema = list(_schema(Path(path), f"side.{name}"))
            raise QueryError(f"side.{name}", f"the table has no {address_column!r} column", allowed=schema)
        addresses = table[address_column].astype(object)
        cache = {v: parse_address(v) for v in pd.unique(addresses)}
        keys = [(gu, dong_key(dong)) for gu, dong in (cache[v] for v in addresses) if dong]
        placed = [(gu or unique_gu.get(key), key) for gu, key in keys]
        placed = [(gu, key) for gu, key in placed if gu]
        counts = pd.DataFrame(placed, columns=["gu", "key"]).value_counts()
        grouped[name] = counts.reindex(places_index, fill_value=0).to_numpy(dtype=np.int64)
        side_summary[name] = {
            "rows": len(table),
            "rows_with_dong": len(placed),
            "rows_in_accident_dongs": int(grouped[name].sum()) if len(grouped) else 0,
        }

    grouped = grouped.drop(columns="key")
    grouped = grouped.sort_values(["count", "gu", "dong"], ascending=[False, True, True], kind="stable")
    shown = grouped.head(limit)
    rows = [{k: json_value(v) for k, v in record.items()} for record in shown.to_dict(orient="records")]
    summary = {
        "accidents": len(frame),
        "accidents_with_dong": len(located),
        "dongs": len(grouped),
        "returned": len(rows),
        "truncated": len(grouped) > len(rows),
        "side": side_summary,
    }
    return NearResult(rows=rows, summary=summary)
