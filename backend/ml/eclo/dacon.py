"""Reading the Dacon Daegu `train.csv` layout into parsed rows and ECLO targets."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.eclo.features import ParsedRow, parse_row
from backend.ml.errors import DataFileError, InvalidRow

FEATURE_COLUMNS = ("사고일시", "요일", "기상상태", "시군구", "도로형태", "노면상태", "사고유형")
# API field <- Dacon column, for the text fields (the date fields come from 사고일시).
FIELD_COLUMNS = {
    "weather": "기상상태",
    "road_surface": "노면상태",
    "road_type": "도로형태",
    "accident_type": "사고유형",
    "district": "시군구",
    "day_of_week": "요일",
}
INJURY_COLUMNS = ("사망자수", "중상자수", "경상자수", "부상자수")
SEVERE_COLUMNS = ("사망자수", "중상자수")  # a severe outcome: at least one death or serious injury
ECLO_WEIGHTS = (10, 5, 3, 1)
TEXT_ENCODINGS = ("utf-8-sig", "cp949")  # utf-8-sig also reads plain UTF-8


def eclo_from_injuries(deaths: np.ndarray, serious: np.ndarray, minor: np.ndarray, reported: np.ndarray) -> np.ndarray:
    return 10 * deaths + 5 * serious + 3 * minor + 1 * reported


@dataclass
class ParseReport:
    """Rows of a training file that could not be used: how many, why, and where (file line numbers)."""

    total_rows: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first_lines: list[int] = field(default_factory=list)
    max_examples: int = 10

    def add(self, line: int, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] += 1
        if len(self.first_lines) < self.max_examples:
            self.first_lines.append(line)

    def summary(self) -> str:
        if not self.skipped:
            return f"all {self.total_rows} rows parsed"
        reasons = "; ".join(f"{reason}: {count}" for reason, count in self.reasons.most_common())
        lines = ", ".join(map(str, self.first_lines))
        return f"{self.skipped} of {self.total_rows} rows skipped ({reasons}); first at file lines {lines}"

    def to_dict(self) -> dict:
        return {
            "total_rows": self.total_rows,
            "skipped": self.skipped,
            "reasons": dict(self.reasons),
            "first_lines": self.first_lines,
        }


def read_text_csv(path: Path | str) -> pd.DataFrame:
    """Read a CSV written as UTF-8 (with or without BOM) or CP949 (Korean Windows), plain or gzipped."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataFileError(f"{path}: a damaged gzip file ({exc})") from exc
    for encoding in TEXT_ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    raise DataFileError(f"{path}: not UTF-8 or CP949 text")


def has_eclo_columns(columns: Iterable[str]) -> bool:
    """Whether a file's columns give ECLO: its own column, or the four injury counts."""
    present = {c.strip() for c in columns}
    return "ECLO" in present or all(c in present for c in INJURY_COLUMNS)


def check_columns(columns: list[str]) -> None:
    present = {c.strip() for c in columns}
    missing = [c for c in FEATURE_COLUMNS if c not in present]
    if not has_eclo_columns(present):
        missing.append("ECLO")
        missing.extend(c for c in INJURY_COLUMNS if c not in present)
    if missing:
        raise DataFileError(
            f"the file lacks {len(missing)} required column(s): {', '.join(missing)} "
            f"(needs {', '.join(FEATURE_COLUMNS)} and ECLO or {', '.join(INJURY_COLUMNS)})",
            missing_columns=missing,
        )


def eclo_targets(frame: pd.DataFrame) -> pd.Series:
    """ECLO of each row: its ECLO column, or the weighted injury counts; NaN where unreadable."""
    if "ECLO" in frame.columns:
        return pd.to_numeric(frame["ECLO"].astype(str).str.strip(), errors="coerce")
    counts = [pd.to_numeric(frame[c].astype(str).str.strip(), errors="coerce") for c in INJURY_COLUMNS]
    return eclo_from_injuries(*counts)


def severe_targets(frame: pd.DataFrame) -> pd.Series:
    """1.0 where someone died or was seriously injured, 0.0 where not, NaN where the counts are absent."""
    if not all(c in frame.columns for c in SEVERE_COLUMNS):
        return pd.Series(np.nan, index=frame.index)
    deaths, serious = (pd.to_numeric(frame[c].astype(str).str.strip(), errors="coerce") for c in SEVERE_COLUMNS)
    return ((deaths + serious) > 0).astype(np.float64).where(deaths.notna() & serious.notna())


def row_ids(frame: pd.DataFrame) -> list[str]:
    """The file's ID column, or the row's line number in the file when it has none."""
    if "ID" in frame.columns:
        return frame["ID"].astype(str).tolist()
    return [str(i + 2) for i in range(len(frame))]


def api_rows(frame: pd.DataFrame) -> list[dict[str, Any] | None]:
    """Dacon rows as API rows (field names of the prediction API); None where 사고일시 does not parse."""
    when = pd.to_datetime(frame["사고일시"].astype(str).str.strip(), format="%Y-%m-%d %H", errors="coerce")
    columns = {field: frame[column].tolist() for field, column in FIELD_COLUMNS.items()}
    rows: list[dict[str, Any] | None] = []
    for i, ts in enumerate(when.tolist()):
        if pd.isna(ts):
            rows.append(None)
            continue
        row: dict[str, Any] = {field: values[i] for field, values in columns.items()}
        row.update(accident_year=ts.year, accident_month=ts.month, accident_day=ts.day, accident_hour=ts.hour)
        rows.append(row)
    return rows


@dataclass
class LabelledRows:
    """The usable rows of a labelled file, parsed by the shared feature parser, with their outcomes."""

    rows: list[ParsedRow]
    eclo: np.ndarray
    severe: np.ndarray  # 1.0 / 0.0; NaN when the file has no death and serious-injury counts
    report: ParseReport

    def subset(self, index: np.ndarray) -> LabelledRows:
        return LabelledRows([self.rows[i] for i in index], self.eclo[index], self.severe[index], self.report)

    @property
    def years(self) -> np.ndarray:
        return np.array([r.year for r in self.rows], dtype=np.int64)


def parse_dacon_frame(frame: pd.DataFrame) -> LabelledRows:
    """Dacon columns -> parsed rows (the shared feature parser), ECLO and severe outcome; bad rows reported."""
    frame = frame.rename(columns=lambda c: c.strip())
    check_columns(list(frame.columns))
    report = ParseReport(total_rows=len(frame))
    rows: list[ParsedRow] = []
    kept: list[int] = []
    targets = eclo_targets(frame).tolist()
    for i, raw in enumerate(api_rows(frame)):
        line = i + 2  # header is line 1
        if raw is None:
            report.add(line, "사고일시 is not 'YYYY-MM-DD HH'")
            continue
        if pd.isna(targets[i]) or targets[i] < 0:
            report.add(line, "ECLO is missing or negative")
            continue
        try:
            rows.append(parse_row(raw))
        except InvalidRow as exc:
            report.add(line, "; ".join(f"{e.field}: {e.message}" for e in exc.errors))
            continue
        kept.append(i)
    eclo = np.asarray(targets, dtype=np.float64)[kept]
    severe = severe_targets(frame).to_numpy(dtype=np.float64)[kept]
    return LabelledRows(rows, eclo, severe, report)


def load_dacon_csv(path: Path | str) -> LabelledRows:
    return parse_dacon_frame(read_text_csv(path))
