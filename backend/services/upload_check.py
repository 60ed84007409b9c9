"""The row-by-row check of an uploaded file, run in a process of its own.

A check is pure Python and holds the GIL for as long as it runs (seconds, for a large file). Run on one of the
API's threads, it stalled every request of the process meanwhile: single predictions beside such an upload lost
most of their throughput and their p99 grew many times over. `UploadChecker` hands each check to one spawned process
(started on the first upload and kept; spawned, not forked, as LightGBM requires), which reads the stored upload,
writes the rows, report and offsets files beside it and answers a summary; the API records the dataset.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import struct
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from backend.core.config import Settings
from backend.core.errors import DependencyUnavailable
from backend.core.storage import STORE_UNREACHABLE, storage_from_settings
from backend.explore.tables import profile_table, read_csv_table, write_parquet
from backend.ml.eclo.uploads import check_rows, file_format
from backend.ml.errors import DataFileError
from backend.ml.protocol import PredictiveModel
from backend.ml.registry import ModelRegistry
from backend.stores.dataset_files import DatasetFiles
from backend.wiring import open_registry

FIRST_PROBLEMS = 5  # how many problems a refusal of the whole file lists
TABLE = "table"
AUTO = "auto"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckedUpload:
    """What the check found: the file's format and counts, or why the file cannot be used at all (`refusal`)."""

    refusal: str | None = None
    kind: str = TABLE  # "table", or the model's name the rows were checked against
    layout: str | None = None
    encoding: str = ""
    columns: list[str] = field(default_factory=list)
    has_outcomes: bool = False
    rows: int = 0
    valid: int = 0
    problems: int = 0
    first_problems: list[dict[str, Any]] = field(default_factory=list)
    layout_unknown: bool = False  # refused before any row was read: not the model's layout (or no usable file)


def check_upload(
    files: DatasetFiles,
    model: PredictiveModel | None,
    dataset_id: str,
    encoding: str | None,
    settings: Settings,
    kind: str = AUTO,
) -> CheckedUpload:
    """Check the stored upload of `dataset_id`: against `model`'s layout unless `kind` is "table"; with `kind`
    "auto", a file not in the model's layout is kept as a table. Every usable file gets its columnar table and
    profile."""
    layout_refusal: str | None = None
    if model is not None and kind != TABLE:
        checked = check_rows_of(files, model, dataset_id, encoding, settings)
        if checked.refusal is None:
            try:
                _describe_table(files, dataset_id, checked.encoding, settings)
            except STORE_UNREACHABLE:
                raise  # the store's outage, not the file's: the upload fails as unavailable, to be sent again
            except Exception as exc:  # the rows are usable: the dataset is kept, without its explore table
                log.warning("dataset %s: no columnar table: %s: %s", dataset_id, type(exc).__name__, exc)
            return checked
        if kind != AUTO or not checked.layout_unknown:
            return checked
        layout_refusal = checked.refusal
    try:
        table = _describe_table(files, dataset_id, encoding, settings)
    except DataFileError as exc:  # not a table either: the layout's reason first (binary, empty, wrong encoding)
        return CheckedUpload(refusal=layout_refusal or f"the file cannot be used: {exc}")
    except STORE_UNREACHABLE:
        raise
    except Exception as exc:  # the reader's own failure on an odd file: a refusal, never a 500
        log.warning("dataset %s: not readable as a table: %s: %s", dataset_id, type(exc).__name__, exc)
        return CheckedUpload(refusal=layout_refusal or "the file cannot be used: it could not be read as a table")
    return CheckedUpload(kind=TABLE, encoding=table.encoding, columns=table.columns, rows=table.rows,
                         valid=table.rows)  # fmt: skip


@dataclass(frozen=True)
class DescribedTable:
    encoding: str
    columns: list[str]
    rows: int


def _describe_table(files: DatasetFiles, dataset_id: str, encoding: str | None, settings: Settings) -> DescribedTable:
    """The upload as a typed columnar table, and its profile, beside it."""
    storage = files.storage
    source = storage.local_path(files.source(dataset_id))
    limits = {"max_columns": settings.dataset_max_columns, "max_cell_chars": settings.dataset_max_cell_chars,
              "max_bytes": settings.dataset_max_bytes}  # fmt: skip
    table = read_csv_table(source, encoding, **limits)
    with tempfile.TemporaryDirectory(prefix="table-") as scratch:  # made here, then stored: the store may be remote
        parquet = Path(scratch) / "table.parquet"
        write_parquet(table, parquet)
        profile = profile_table(parquet)
        with storage.open_write(files.table(dataset_id)) as out, parquet.open("rb") as made:
            shutil.copyfileobj(made, out)
    with storage.open_write(files.profile(dataset_id)) as out:
        out.write(profile.model_dump_json().encode())
    return DescribedTable(table.encoding, list(table.columns), len(table.frame))


def check_rows_of(
    files: DatasetFiles, model: PredictiveModel, dataset_id: str, encoding: str | None, settings: Settings
) -> CheckedUpload:
    """Check the stored upload row by row against `model` and write its rows (the valid ones, as the model's
    input), its problems and the rows' offsets beside it."""
    storage = files.storage
    rows = valid = problems = 0
    first: list[dict[str, Any]] = []
    offsets: list[int] = []
    with storage.open_read(files.source(dataset_id)) as handle:
        try:
            fmt = file_format(handle, encoding, settings.dataset_max_columns)
        except DataFileError as exc:
            return CheckedUpload(refusal=f"the file cannot be used: {exc}", layout_unknown=True)
        position = 0
        with (
            storage.open_write(files.rows(dataset_id)) as rows_out,
            storage.open_write(files.report(dataset_id)) as report_out,
        ):
            try:
                for checked in check_rows(handle, fmt, model, settings.dataset_max_cell_chars):
                    rows += 1
                    if checked.row is not None:
                        line = orjson.dumps([checked.index, checked.row, checked.target]) + b"\n"
                        offsets.append(position)
                        position += len(line)
                        rows_out.write(line)
                        valid += 1
                        continue
                    for problem in checked.problems:
                        problems += 1
                        report_out.write(orjson.dumps(problem.to_dict()) + b"\n")
                        if len(first) < FIRST_PROBLEMS:
                            first.append(problem.to_dict())
            except DataFileError as exc:
                return CheckedUpload(refusal=f"the file cannot be used: {exc}")
        offsets.append(position)
    with storage.open_write(files.offsets(dataset_id)) as out:
        out.write(struct.pack(f"<{len(offsets)}q", *offsets))
    return CheckedUpload(kind=model.name, layout=fmt.layout, encoding=fmt.encoding, columns=fmt.columns,
                         has_outcomes=fmt.has_outcomes, rows=rows, valid=valid, problems=problems,
                         first_problems=first)  # fmt: skip


# The checking process's own state, made once by `_start` (its initializer).
_settings: Settings | None = None
_files: DatasetFiles | None = None
_registry: ModelRegistry | None = None


def _start(settings: Settings) -> None:
    global _settings, _files, _registry
    _settings, _files, _registry = settings, DatasetFiles(storage_from_settings(settings)), open_registry(settings)


def _check(dataset_id: str, encoding: str | None, model_name: str | None, kind: str) -> CheckedUpload:
    assert _settings is not None and _files is not None and _registry is not None, "the checking process is not set up"
    model = _registry.get(model_name) if model_name is not None else None
    return check_upload(_files, model, dataset_id, encoding, _settings, kind)


class UploadChecker:
    """Checks uploads in one spawned process, one at a time (an upload waits for the one before it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                    initargs=(self.settings,),
                )  # fmt: skip
            return self._pool

    def check(self, dataset_id: str, encoding: str | None, model_name: str | None, kind: str = AUTO) -> CheckedUpload:
        """Blocks until the check is done: call it from a worker thread."""
        pool = self._executor()
        try:
            return pool.submit(_check, dataset_id, encoding, model_name, kind).result()
        except BrokenProcessPool as exc:  # the process died (killed, out of memory): the next upload starts another
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            raise DependencyUnavailable(
                "upload checker", "the process checking uploads stopped; send the file again"
            ) from exc

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
