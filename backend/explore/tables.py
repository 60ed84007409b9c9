"""Any CSV as a table: read it (encoding, delimiter and header detected), type its columns, keep it as Parquet, and
profile it.

Every cell is read as text first and each column is then typed as a whole (integers, numbers, dates, else text), so
one odd cell keeps its column text instead of silently becoming missing; codes with leading zeros stay text.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import io
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend.explore.engine import Column, Deadline, execute, json_value, open_table, quote, valid_sql
from backend.ml.errors import DataFileError
from backend.schemas.explore import ColumnProfile, Coordinates, TableProfile, ValueCount

ENCODING_LABELS = {"utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8", "cp949": "CP949"}
DECLARED_ENCODINGS = {
    "auto": None,
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "cp949": "cp949",
    "euc-kr": "cp949",
    "euckr": "cp949",
}
DELIMITERS = (",", ";", "\t", "|")
MISSING_TEXT = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A"})
_MISSING_SET = pa.array(sorted(MISSING_TEXT), type=pa.string())
MAX_BYTES = 1 << 30  # a gzipped upload is refused past this size once inflated
ROW_GROUP_SIZE = 122_880  # DuckDB's own row group size: one scan thread per group

# Column kinds recorded at reading, which `write_parquet` stores as: int64, float64, date32, timestamp, string.
INTEGER, NUMBER, DATE, DATETIME, TEXT = "integer", "number", "date", "datetime", "text"

CATEGORY_MAX_DISTINCT = 50  # text with this few values, each used twice on average, is a category
CATEGORY_MAX_SHARE = 0.05  # and so is text with at most 1,000 values, each used by 20 rows on average
TOP_VALUES = 10
LATITUDE_NAMES = ("latitude", "lat", "위도", "y")  # in order of preference
LONGITUDE_NAMES = ("longitude", "lon", "lng", "long", "경도", "x")
COORDINATE_MIN_PRESENT = 0.5  # share of rows that must hold a coordinate

_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+(\.\d+)?|\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = r"^[+-]?\d+$"  # patterns for pyarrow.compute (RE2)
_LEADING_ZERO = r"^[+-]?0\d"
_THOUSANDS = r"^[+-]?(\d{1,3}(,\d{3})*|\d+)(\.\d+)?$"
_DATE_START = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}")
_DATE_FORMATS = tuple(
    f"%Y{sep}%m{sep}%d{time}"
    for sep in ("-", "/", ".")
    for time in ("", " %H", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S", " %H:%M:%S.%f", "T%H:%M:%S.%f")
)


@dataclass
class TableFile:
    """A CSV read into a typed frame, with how it was read."""

    frame: pd.DataFrame
    encoding: str  # the codec: utf-8-sig, utf-8 or cp949
    delimiter: str
    columns: list[str]
    has_header: bool = True
    kinds: dict[str, str] = field(default_factory=dict)  # per column: integer, number, date, datetime, text

    @property
    def encoding_label(self) -> str:
        return ENCODING_LABELS.get(self.encoding, self.encoding)


def read_csv_table(
    path: Path,
    encoding: str | None = None,
    *,
    max_columns: int = 200,
    max_cell_chars: int = 10_000,
    max_bytes: int = MAX_BYTES,
) -> TableFile:
    """Read a CSV file (plain or gzipped) as a typed table; DataFileError says why a file cannot be used."""
    raw = _read_bytes(Path(path), max_bytes)
    text, codec = _decode(raw, encoding)
    sample = text[:65_536]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    delimiter = _detect_delimiter(sample)
    try:
        cells = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=True,
            engine="c",
        )
    except pd.errors.EmptyDataError as exc:
        raise DataFileError("the file holds no rows") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataFileError(f"not a readable CSV table: {str(exc).strip()}") from exc
    del text
    cells = cells.fillna("")
    cells = cells[(cells != "").any(axis=1)].reset_index(drop=True)  # rows of empty cells only
    if cells.empty:
        raise DataFileError("the file holds no rows")
    if cells.shape[1] > max_columns:
        raise DataFileError(f"the file has {cells.shape[1]} columns; at most {max_columns} are accepted")
    has_header = _has_header(cells)
    if has_header:
        names = _column_names([str(v) for v in cells.iloc[0]])
        cells = cells.iloc[1:].reset_index(drop=True)
        if cells.empty:
            raise DataFileError("the file has a header but no data rows")
    else:
        names = [f"column_{i + 1}" for i in range(cells.shape[1])]
    cells.columns = names
    for name in names:
        longest = int(cells[name].str.len().max())
        if longest > max_cell_chars:
            row = int(cells[name].str.len().to_numpy().argmax()) + 1
            raise DataFileError(
                f"a cell of column {name!r} (data row {row}) holds {longest} characters; "
                f"at most {max_cell_chars} are accepted"
            )
    typed: dict[str, pd.Series] = {}
    kinds: dict[str, str] = {}
    for name in names:
        typed[name], kinds[name] = _typed_column(cells[name])
    frame = pd.DataFrame(typed)
    return TableFile(frame, codec, delimiter, names, has_header, kinds)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"the file cannot be read: {exc.strerror or exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as inflated:
                raw = inflated.read(max_bytes + 1)
        except (OSError, EOFError) as exc:
            raise DataFileError(f"a damaged gzip file ({exc})") from exc
        if len(raw) > max_bytes:
            raise DataFileError(f"the file inflates to more than {max_bytes} bytes")
    if not raw.strip():
        raise DataFileError("the file is empty")
    if b"\x00" in raw[:65_536]:
        raise DataFileError("a binary file (it holds NUL bytes), not CSV text; save it as UTF-8 or CP949 CSV")
    return raw


def _decode(raw: bytes, declared: str | None) -> tuple[str, str]:
    """The text and the codec that reads all of it: a declared one, else UTF-8 (BOM noted), else CP949."""
    key = (declared or "auto").strip().lower()
    if key not in DECLARED_ENCODINGS:
        raise DataFileError(
            f"encoding {declared!r} is not supported; use one of {', '.join(k for k in DECLARED_ENCODINGS)}"
        )
    chosen = DECLARED_ENCODINGS[key]
    bom = raw.startswith(codecs.BOM_UTF8)
    candidates = [chosen] if chosen else ["utf-8", "cp949"]
    failures = []
    for codec in candidates:
        if codec == "utf-8" and bom:
            codec = "utf-8-sig"
        try:
            return raw.decode(codec), codec
        except UnicodeDecodeError as exc:
            failures.append(f"not {ENCODING_LABELS.get(codec, codec)} (undecodable bytes at offset {exc.start})")
    if chosen:
        raise DataFileError(f"the file was declared {declared} but is {failures[0]}")
    raise DataFileError(f"the file is neither UTF-8 nor CP949 text: {'; '.join(failures)}")


def _detect_delimiter(sample: str) -> str:
    """The delimiter that splits the sample's lines into the same number (> 1) of fields most consistently."""
    lines = [line for line in sample.splitlines() if line.strip()][:100]
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        except csv.Error:
            continue
        if not counts:
            continue
        values, frequency = np.unique(counts, return_counts=True)
        common = int(values[frequency.argmax()])
        if common < 2:
            continue
        score = (float(frequency.max()) / len(counts), common)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _cell_kind(value: str) -> str:
    value = value.strip()
    if value in MISSING_TEXT:
        return "missing"
    if _DATE_START.match(value):
        return "date"
    return "number" if _NUMBER.fullmatch(value) else "text"


def _has_header(cells: pd.DataFrame) -> bool:
    """Whether the first row names the columns: votes of the columns whose data are numbers or dates under a text
    first cell (yes) or a first cell of the same kind (no); with text only, a first row repeating none of the
    values below it."""
    if len(cells) < 2:
        return True
    first, rest = cells.iloc[0], cells.iloc[1:201]
    score = 0
    for j in range(cells.shape[1]):
        head = _cell_kind(str(first.iloc[j]))
        kinds = [k for k in (_cell_kind(str(v)) for v in rest.iloc[:, j]) if k != "missing"]
        if not kinds or head == "missing":
            continue
        data = max(set(kinds), key=kinds.count)
        if data in ("number", "date"):
            score += 1 if head == "text" else -1 if head == data else 0
    if score:
        return score > 0
    return not any(str(first.iloc[j]).strip() in set(rest.iloc[:, j].str.strip()) for j in range(cells.shape[1]))


def _column_names(header: list[str]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(header):
        base = raw.strip().lstrip("\ufeff")[:200] or f"column_{i + 1}"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def _typed_column(cells: pd.Series) -> tuple[pd.Series, str]:
    """The column typed as a whole: integers, numbers, dates (with or without time), else text."""
    text = pc.utf8_trim_whitespace(pa.array(cells, type=pa.string(), from_pandas=True))
    missing = pc.fill_null(pc.is_in(text, value_set=_MISSING_SET), True)
    text = pc.if_else(missing, pa.scalar(None, pa.string()), text)
    if text.null_count == len(text):
        return text.to_pandas(), TEXT
    sample: list[str] = text.drop_null().slice(0, 200).to_pylist()
    numbers = _as_numbers(text, sample)
    if numbers is not None:
        if pa.types.is_integer(numbers.type):
            return pd.Series(pd.array(numbers.to_pylist(), dtype="Int64")), INTEGER
        return pd.Series(numbers.to_numpy(zero_copy_only=False), dtype=float), NUMBER
    if _DATE_START.match(sample[0]):
        dated = _as_dates(text, sample)
        if dated is not None:
            return dated
    return text.to_pandas(), TEXT  # pandas' str dtype, NaN where missing


def _as_numbers(text: pa.Array, sample: list[str]) -> pa.Array | None:
    """int64 or float64 when every value is a number (thousands separators allowed); codes with a leading zero,
    like 0012, are not numbers."""
    if not all(_NUMBER.fullmatch(v) for v in sample):
        return None
    if pc.any(pc.match_substring_regex(text, _LEADING_ZERO)).as_py():
        return None
    if pc.any(pc.match_substring(text, ",")).as_py():
        if not pc.all(pc.match_substring_regex(text, _THOUSANDS)).as_py():
            return None
        text = pc.replace_substring(text, ",", "")
    if pc.all(pc.match_substring_regex(text, _INTEGER)).as_py():
        try:
            return pc.cast(text, pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # beyond int64: floats
    try:
        numbers = pc.cast(text, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return numbers if pc.all(pc.is_finite(numbers)).as_py() is not False else None


def _as_dates(text: pa.Array, sample: list[str]) -> tuple[pd.Series, str] | None:
    """Dates (no time in the format) or date-times, in the first format that reads the sample and then all."""
    for fmt in _DATE_FORMATS:
        try:
            for value in sample:
                dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
        values = pd.Series(text.to_pylist(), dtype=object)
        parsed = pd.to_datetime(values, format=fmt, errors="coerce")
        if parsed.isna().sum() == text.null_count:
            return parsed.astype("datetime64[us]"), DATE if "%H" not in fmt else DATETIME
    return None


def write_parquet(table: TableFile, target: Path) -> None:
    """Write the table as Parquet through a temporary file renamed into place (readers never see half a file)."""
    target = Path(target)
    arrays, fields = [], []
    for name in table.frame.columns:
        series = table.frame[name]
        kind = table.kinds.get(name) or _kind_of_dtype(series)
        arrow_type = {
            INTEGER: pa.int64(),
            NUMBER: pa.float64(),
            DATE: pa.date32(),
            DATETIME: pa.timestamp("us"),
            TEXT: pa.string(),
        }[kind]
        if kind == TEXT:
            try:
                array = pa.array(series, type=pa.string(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # a frame built by hand, with other objects
                values = [None if v is None or v != v else str(v) for v in series.astype(object)]
                array = pa.array(values, type=pa.string())
        else:
            array = pa.array(series, from_pandas=True)
            array = array.cast(arrow_type)
        arrays.append(array)
        fields.append(pa.field(str(name), arrow_type))
    arrow = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(arrow, scratch, row_group_size=ROW_GROUP_SIZE, compression="zstd")
        scratch.replace(target)
    finally:
        scratch.unlink(missing_ok=True)


def _kind_of_dtype(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return TEXT
    if pd.api.types.is_integer_dtype(series):
        return INTEGER
    if pd.api.types.is_numeric_dtype(series):
        return NUMBER
    if pd.api.types.is_datetime64_any_dtype(series):
        return DATETIME
    return TEXT


# ---------------------------------------------------------------------------------------------------------------
# Profiles


@dataclass
class ColumnStats:
    """What one pass over the table tells about a column."""

    column: Column
    rows: int
    present: int
    distinct: int
    low: Any = None
    high: Any = None
    quartiles: tuple[float | None, float | None, float | None] = (None, None, None)
    mean: float | None = None
    std: float | None = None

    @property
    def missing(self) -> int:
        return self.rows - self.present

    @property
    def missing_share(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    def summary(self) -> dict[str, Any]:
        """The counts and numbers a column's profile and its detail both show."""
        q1, median, q3 = self.quartiles
        return {"missing": self.missing, "missing_share": self.missing_share, "distinct": self.distinct,
                "min": self.low, "q1": q1, "median": median, "q3": q3, "max": self.high, "mean": self.mean,
                "std": self.std}  # fmt: skip


def column_stats(cursor: Any, columns: list[Column], rows: int, deadline: Deadline) -> dict[str, ColumnStats]:
    """Counts, distinct values, and for numbers the five numbers, mean and std of each column, in one scan."""
    parts: list[str] = []
    for i, c in enumerate(columns):
        q, valid = quote(c.name), valid_sql(c)
        parts += [f"count(*) FILTER (WHERE {valid}) AS n{i}", f"count(DISTINCT {q}) FILTER (WHERE {valid}) AS d{i}"]
        if c.kind == "number":
            parts += [
                f"min({q}) FILTER (WHERE {valid})",
                f"max({q}) FILTER (WHERE {valid})",
                f"quantile_cont({q}, [0.25, 0.5, 0.75]) FILTER (WHERE {valid})",
                f"avg({q}) FILTER (WHERE {valid})",
                f"stddev_samp({q}) FILTER (WHERE {valid})",
            ]
        elif c.kind in ("date", "timestamp", "bool"):
            parts += [f"min({q})", f"max({q})"]
    if not parts:
        return {}
    (row,) = execute(cursor, f"SELECT {', '.join(parts)} FROM t", None, deadline)
    stats: dict[str, ColumnStats] = {}
    at = 0
    for c in columns:
        s = ColumnStats(c, rows, int(row[at]), int(row[at + 1]))
        at += 2
        if c.kind == "number":
            low, high, quartiles, mean, std = row[at : at + 5]
            at += 5
            s.low, s.high = _number(low), _number(high)
            s.quartiles = tuple(_number(v) for v in quartiles) if quartiles else (None, None, None)  # type: ignore[assignment]
            s.mean, s.std = _number(mean), _number(std)
        elif c.kind in ("date", "timestamp", "bool"):
            s.low, s.high = json_value(row[at]), json_value(row[at + 1])
            at += 2
        stats[c.name] = s
    return stats


def _number(value: Any) -> float | None:
    value = json_value(value)
    return None if value is None else float(value)


def classify(stats: ColumnStats, coordinate: bool = False) -> str:
    """The column's type for display: number, category, text, date or coordinate."""
    kind = stats.column.kind
    if kind == "number":
        return "coordinate" if coordinate else "number"
    if kind in ("date", "timestamp"):
        return "date"
    if kind == "bool":
        return "category"
    if kind == "text" and _repeats_enough(stats.distinct, stats.present):
        return "category"
    return "text"


def _repeats_enough(distinct: int, present: int) -> bool:
    """Few values, each used by several rows: up to 50 values used twice on average, or up to 1,000 used 20 times."""
    if not present:
        return False
    small = distinct <= CATEGORY_MAX_DISTINCT and distinct <= 0.5 * present
    return small or (distinct <= 1000 and distinct <= CATEGORY_MAX_SHARE * present)


def _name_rank(name: str, names: tuple[str, ...], words: tuple[str, ...]) -> int | None:
    """0.. for an exact name in preference order, then names containing a telling word; None for no match."""
    key = name.strip().lower()
    if key in names:
        return names.index(key)
    for i, word in enumerate(words):
        if word in key:
            return len(names) + i
    return None


def detect_coordinates(stats: dict[str, ColumnStats]) -> Coordinates | None:
    """Latitude and longitude columns: by name (lat, latitude, 위도, y / lon, lng, longitude, 경도, x, or names
    holding latitude, 위도, longitude, 경도) and by values (all within -90..90 / -180..180, held by most rows);
    the bare names x and y only for columns with fractions (a grid of integers is not a map)."""

    def candidates(names: tuple[str, ...], words: tuple[str, ...], bound: float) -> list[tuple[int, int, str]]:
        found = []
        for position, (name, s) in enumerate(stats.items()):
            rank = _name_rank(name, names, words)
            if rank is None or s.column.kind != "number" or s.low is None or s.high is None:
                continue
            if name.strip().lower() in ("x", "y") and s.column.is_integer:
                continue
            if s.rows and s.present / s.rows >= COORDINATE_MIN_PRESENT and -bound <= s.low and s.high <= bound:
                found.append((rank, position, name))
        return sorted(found)

    lats = candidates(LATITUDE_NAMES, ("latitude", "위도"), 90.0)
    lons = candidates(LONGITUDE_NAMES, ("longitude", "경도"), 180.0)
    for _, _, lat in lats:
        for _, _, lon in lons:
            if lat != lon:
                return Coordinates(latitude=lat, longitude=lon)
    return None


def top_values(cursor: Any, column: Column, count: int, deadline: Deadline) -> list[tuple[Any, int]]:
    """The most frequent values of a column, ties by value."""
    q = quote(column.name)
    sql = f"SELECT {q}, count(*) AS n FROM t WHERE {valid_sql(column)} GROUP BY 1 ORDER BY n DESC, 1 LIMIT {int(count)}"
    return [(json_value(v), int(n)) for v, n in execute(cursor, sql, None, deadline)]


def profile_table(parquet: Path, *, top: int = TOP_VALUES, timeout_seconds: float = 120.0) -> TableProfile:
    """Per column its type, missing share, distinct count, numbers summary and top values; the coordinates."""
    deadline = Deadline(timeout_seconds)
    cursor, columns, rows = open_table(Path(parquet))
    try:
        stats = column_stats(cursor, list(columns.values()), rows, deadline)
        coordinates = detect_coordinates(stats)
        marked = {coordinates.latitude, coordinates.longitude} if coordinates else set()
        profiles = []
        for name, column in columns.items():
            s = stats[name]
            # all-distinct columns (identifiers, measurements) have no telling top values
            tops = top_values(cursor, column, top, deadline) if 0 < s.distinct < s.present else []
            profiles.append(
                ColumnProfile(
                    name=name,
                    type=classify(s, name in marked),  # type: ignore[arg-type]
                    storage=column.storage,
                    **s.summary(),
                    top=[ValueCount(value=v, count=n) for v, n in tops],
                )
            )
    finally:
        cursor.close()
    return TableProfile(rows=rows, columns=profiles, coordinates=coordinates)
