"""Reading an uploaded accident file: its text encoding, its layout (Dacon or the API's field names), and each row
as the model's input, with every problem found in it. Streams the file: memory does not grow with its size."""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from backend.ml.eclo.dacon import ECLO_WEIGHTS, FEATURE_COLUMNS, FIELD_COLUMNS, INJURY_COLUMNS
from backend.ml.eclo.features import API_FIELDS, INPUT_FIELD_BY_NAME, REQUIRED_FIELDS
from backend.ml.errors import DataFileError, InvalidRow
from backend.ml.protocol import PredictiveModel

DACON = "dacon"
API = "api"
# What a client may declare; "auto" (or nothing) detects: a BOM, else UTF-8, else CP949.
DECLARED_ENCODINGS = {"auto": None, "utf-8": "utf-8", "utf8": "utf-8", "cp949": "cp949", "euc-kr": "cp949"}
ENCODING_LABELS = {"utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8", "cp949": "CP949"}
_WHEN = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})\s+(\d{1,2})\s*")
_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class FileFormat:
    encoding: str  # the codec the file is read with
    layout: str
    columns: list[str]
    has_outcomes: bool

    @property
    def encoding_label(self) -> str:
        return ENCODING_LABELS[self.encoding]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one row: `row` counts data rows from 1 (the header is not a row)."""

    row: int
    column: str
    problem: str
    value: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "problem": self.problem, "value": self.value}


@dataclass
class CheckedRow:
    index: int  # 0-based position among the file's data rows
    row: dict[str, Any] | None  # the model's input, None when the row has problems
    problems: list[Problem] = field(default_factory=list)
    target: float | None = None  # the row's observed ECLO, when the file has the outcome columns


def encoding_of(handle: BinaryIO, declared: str | None = None) -> str:
    """The codec that reads the whole file (checked to the end, in chunks); DataFileError when none does."""
    handle.seek(0)
    head = handle.read(4096)
    if not head:
        raise DataFileError("the file is empty")
    if head[:2] == b"\x1f\x8b":
        raise DataFileError("a gzip file: upload the CSV inside it")
    if b"\x00" in head:
        raise DataFileError("a binary file (it holds NUL bytes), not CSV text")
    key = (declared or "auto").strip().lower()
    if key not in DECLARED_ENCODINGS:
        raise DataFileError(f"encoding {declared!r} is not supported; use one of {', '.join(DECLARED_ENCODINGS)}")
    chosen = DECLARED_ENCODINGS[key]
    bom = head.startswith(codecs.BOM_UTF8)
    candidates = [chosen] if chosen else ["utf-8", "cp949"]
    failures: list[str] = []
    for codec in candidates:
        codec = "utf-8-sig" if codec == "utf-8" and bom else codec
        offset = _undecodable_at(handle, codec)
        if offset is None:
            return codec
        failures.append(f"not {ENCODING_LABELS[codec]} (undecodable bytes at offset {offset})")
    if chosen:
        raise DataFileError(f"the file was declared {declared} but is {failures[0]}")
    raise DataFileError(f"the file is neither UTF-8 nor CP949 text: {'; '.join(failures)}")


def _undecodable_at(handle: BinaryIO, codec: str) -> int | None:
    decoder = codecs.getincrementaldecoder(codec)()
    handle.seek(0)
    consumed = 0
    while True:
        chunk = handle.read(_READ_SIZE)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            return consumed + exc.start
        if not chunk:
            return None
        consumed += len(chunk)


def _cells(handle: BinaryIO, encoding: str) -> Iterator[list[str]]:
    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding=encoding, newline="")
    try:
        yield from csv.reader(text)
    except csv.Error as exc:
        raise DataFileError(f"not a readable CSV: {exc}") from exc
    finally:
        text.detach()


def file_format(handle: BinaryIO, declared_encoding: str | None = None, max_columns: int = 200) -> FileFormat:
    encoding = encoding_of(handle, declared_encoding)
    header = next(_cells(handle, encoding), None)
    if not header or not any(c.strip() for c in header):
        raise DataFileError("no header: the first line must name the columns")
    if len(header) > max_columns:
        raise DataFileError(f"the header has {len(header)} columns; at most {max_columns} are accepted")
    columns = [c.strip() for c in header]
    if all(c in columns for c in FEATURE_COLUMNS):
        layout = DACON
    elif all(f in columns for f in REQUIRED_FIELDS):
        layout = API
    else:
        shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
        raise DataFileError(
            "no header naming the columns of a known layout: the Dacon columns "
            f"({', '.join(FEATURE_COLUMNS)}) or the API fields ({', '.join(REQUIRED_FIELDS)}); "
            f"the first line holds: {shown}"
        )
    outcomes = "ECLO" in columns or all(c in columns for c in INJURY_COLUMNS)
    return FileFormat(encoding=encoding, layout=layout, columns=columns, has_outcomes=outcomes)


def data_rows(handle: BinaryIO, fmt: FileFormat) -> Iterator[list[str]]:
    """The file's data rows as cells, in order (the header and blank lines skipped, as spreadsheets do)."""
    rows = _cells(handle, fmt.encoding)
    next(rows, None)
    yield from (cells for cells in rows if cells)


def check_rows(
    handle: BinaryIO, fmt: FileFormat, model: PredictiveModel, max_cell_chars: int = 500
) -> Iterator[CheckedRow]:
    """Every data row as the model's input, validated by the model itself; problems name the file's column."""
    position = {name: i for i, name in reversed(list(enumerate(fmt.columns)))}  # the first of a repeated name
    used = (*FEATURE_COLUMNS, *FIELD_COLUMNS.values()) if fmt.layout == DACON else API_FIELDS
    needed = {name: position[name] for name in (*used, "ECLO", *INJURY_COLUMNS) if name in position}
    width = len(fmt.columns)
    for index, cells in enumerate(data_rows(handle, fmt)):
        number = index + 1
        if not "".join(cells).strip():
            yield CheckedRow(index, None, [Problem(number, "", "an empty row", None)])
            continue
        if len(cells) != width:
            problem = f"has {len(cells)} cells; the header names {width} columns"
            yield CheckedRow(index, None, [Problem(number, "", problem, None)])
            continue
        if max(map(len, cells)) > max_cell_chars:
            problems = [Problem(number, name, f"longer than {max_cell_chars} characters", cells[i][:40] + "...")
                        for name, i in position.items() if len(cells[i]) > max_cell_chars]  # fmt: skip
            yield CheckedRow(index, None, problems)
            continue
        values = {name: cells[i].strip() for name, i in needed.items()}
        checked = _as_model_row(index, values, fmt.layout)
        if checked.row is not None:
            try:
                model.validate(checked.row)
            except InvalidRow as exc:
                checked.problems = [_problem(number, e.field, e.message, values, fmt.layout) for e in exc.errors]
                checked.row = None
        if fmt.has_outcomes:
            checked.target = _target(values)
        yield checked


def _as_model_row(index: int, values: dict[str, str], layout: str) -> CheckedRow:
    if layout == API:
        row: dict[str, Any] = {name: values[name] for name in API_FIELDS if values.get(name)}
        return CheckedRow(index, row)
    when = _WHEN.fullmatch(values["사고일시"])
    if when is None:
        return CheckedRow(index, None, [Problem(index + 1, "사고일시", "must be 'YYYY-MM-DD HH'", values["사고일시"])])
    year, month, day, hour = (int(part) for part in when.groups())
    row = {name: values[column] for name, column in FIELD_COLUMNS.items()}
    row.update(accident_year=year, accident_month=month, accident_day=day, accident_hour=hour)
    return CheckedRow(index, row)


def _problem(number: int, name: str, message: str, values: dict[str, str], layout: str) -> Problem:
    spec = INPUT_FIELD_BY_NAME.get(name)
    column = spec.column if layout == DACON and spec is not None else name
    return Problem(number, column, message, values.get(column))


def _target(values: dict[str, str]) -> float | None:
    try:
        if "ECLO" in values:
            eclo = float(values["ECLO"])
        else:
            eclo = float(sum(w * float(values[c]) for w, c in zip(ECLO_WEIGHTS, INJURY_COLUMNS, strict=True)))
    except ValueError:
        return None
    return eclo if math.isfinite(eclo) and eclo >= 0 else None
