"""The Parquet export of a dataset's results, streamed a row group at a time: the same rows as the CSV export, and
a million and a half rows exported by a process of its own within 200 MB more memory.

The results are written straight into the storage layer the way a job leaves them (backend.tasks.datasets): the
upload's source.csv and report.jsonl, one chunk-<k>.jsonl of [row index, outcome] lines per chunk, and the dataset
and its finished job in a SQLite database (the job's Redis record expired: the database row answers)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.core.csv_stream import safe_cell
from backend.core.storage import LocalStorage
from backend.db import datasets as records
from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory
from backend.ml.eclo.datagen import write_dacon_csv
from backend.services.datasets import RESULT_COLUMNS, DatasetService, parquet_chunks
from backend.stores.dataset_files import DatasetFiles

ROOT = Path(__file__).resolve().parents[2]
BIG_ROWS = 1_500_000
MAX_GROWTH_MB = 200
BAD_EVERY = 97  # every 97th row fails the check (and is reported); every 1,000th valid row fails at scoring


class _NoJobRecords:
    """The job's Redis record has expired: its database row answers."""

    def get(self, job_id: str) -> None:
        return None


def service_over(data_dir: Path, database_url: str) -> DatasetService:
    """A DatasetService over the storage and database only: what the results need."""
    files = DatasetFiles(LocalStorage(data_dir))
    resources = SimpleNamespace(settings=None, dataset_files=files, dataset_jobs=_NoJobRecords(),
                                sessions=session_factory(make_engine(database_url)))  # fmt: skip
    return DatasetService(resources, checker=None)  # type: ignore[arg-type]


def write_results(data_dir: Path, n_rows: int, chunk_rows: int = 10_000) -> tuple[str, str]:
    """A scored dataset of `n_rows` Dacon rows (generated rows repeated under new IDs) as the upload check and the
    job's chunks leave it; its database URL and id."""
    with open(write_dacon_csv(data_dir / "template.csv", 500, seed=7), encoding="utf-8", newline="") as handle:
        header, *template = list(csv.reader(handle))
    weather = header.index("기상상태")
    files = DatasetFiles(LocalStorage(data_dir))
    dataset_id, job_id = uuid.uuid4().hex, uuid.uuid4().hex
    valid: list[int] = []
    with (
        files.storage.open_write(files.source(dataset_id)) as source,
        files.storage.open_write(files.report(dataset_id)) as report,
    ):
        text = io.TextIOWrapper(source, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        for index in range(n_rows):
            row = template[index % len(template)].copy()
            row[0] = f"ACCIDENT_{index:07d}"
            if index % BAD_EVERY == 5:
                row[weather] = "황사"
                problem = {"row": index + 1, "column": "기상상태", "problem": "unknown weather", "value": "황사"}
                report.write(orjson.dumps(problem) + b"\n")
            else:
                valid.append(index)
            writer.writerow(row)
        text.flush()
        text.detach()
    for chunk, start in enumerate(range(0, len(valid), chunk_rows)):
        lines = (orjson.dumps([index, _outcome(index)]) for index in valid[start : start + chunk_rows])
        files.storage.put_if_absent(files.chunk(dataset_id, job_id, chunk), b"\n".join(lines) + b"\n")
    database_url = f"sqlite:///{data_dir / 'results.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with session_factory(engine)() as session:
        records.insert_dataset(session, id=dataset_id, name="big", filename="big.csv", kind="eclo", model_name="eclo",
                               layout="dacon", encoding="utf-8", columns=header, rows=n_rows, valid_rows=len(valid),
                               problems=n_rows - len(valid), has_outcomes=True, size_bytes=0, checksum="0" * 64,
                               uploaded_at=now)  # fmt: skip
        session.flush()
        records.insert_job(session, id=job_id, dataset_id=dataset_id, model_name="eclo", status="success",
                           total=len(valid), done=len(valid), chunk_rows=chunk_rows, created_at=now)  # fmt: skip
        session.commit()
    engine.dispose()
    return database_url, dataset_id


def _outcome(index: int) -> dict[str, Any]:
    if index % 1000 == 1:
        return {"error": "weather: not a known value"}
    level = ("low", "moderate", "high")[index % 3]
    return {"eclo": 3.0 + (index % 53) / 7, "p_severe": (index % 89) / 100, "relative_risk": 1.0,
            "risk_level": level, "model_version": "eclo-test", "notes": []}  # fmt: skip


def test_the_parquet_rows_are_the_csv_rows_in_row_groups(tmp_path: Path) -> None:
    database_url, dataset_id = write_results(tmp_path, 3000, chunk_rows=700)
    service = service_over(tmp_path, database_url)
    header, rows = service.result_rows(dataset_id)
    expected = list(rows)
    parts = list(parquet_chunks(header, iter(expected), group_cells=512 * len(header)))
    assert len(parts) == 6 and all(parts)  # five groups of 512 rows handed out as written, the last with the footer
    parquet = pq.ParquetFile(io.BytesIO(b"".join(parts)))
    assert parquet.metadata.num_row_groups == 6 and parquet.metadata.num_rows == 3000
    types = {field.name: field.type for field in parquet.schema_arrow}
    assert types["predicted_eclo"] == types["p_severe"] == pa.float64()
    assert {types[name] for name in header if name not in ("predicted_eclo", "p_severe")} == {pa.large_string()}
    assert [list(row.values()) for row in parquet.read().to_pylist()] == expected
    # The service's answer is that stream, and the CSV export says the same, row by row.
    table = pq.read_table(io.BytesIO(b"".join(service.results_parquet(dataset_id))))
    csv_rows = list(csv.reader(io.StringIO(b"".join(service.results_csv(dataset_id)).decode("utf-8-sig"))))
    assert csv_rows[0] == table.column_names == [*header[: -len(RESULT_COLUMNS)], *RESULT_COLUMNS]
    assert [[_as_csv(cell) for cell in row.values()] for row in table.to_pylist()] == csv_rows[1:]
    errors = table.column("error").to_pylist()
    assert errors[5] == "기상상태: unknown weather" and errors[1] == "weather: not a known value"
    assert errors[0] is None and table.column("ID").to_pylist()[-1] == "ACCIDENT_0002999"


def test_a_row_group_ends_at_its_characters_too() -> None:
    header = ["ID", "note", *RESULT_COLUMNS]
    rows = [[str(i), "가" * 1000, 1.5, 0.25, "low", "v1", None] for i in range(100)]
    parts = list(parquet_chunks(header, rows, group_chars=10_000))
    parquet = pq.ParquetFile(io.BytesIO(b"".join(parts)))
    assert parquet.metadata.num_row_groups == 10 and len(parts) == 11
    assert [list(row.values()) for row in parquet.read().to_pylist()] == rows


def _as_csv(cell: Any) -> str:
    return "" if cell is None else str(safe_cell(cell))


# Exports the dataset in a process of its own: the growth of its peak resident set (VmHWM, reset just before) over
# its resident set before the export is the measure, so pyarrow's buffers count as much as Python's objects.
EXPORT = """
import importlib.util, io, json, re, sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
args = json.loads(sys.argv[1])
if args["module"]:  # another version of backend.services.datasets (the one before streaming, to compare)
    spec = importlib.util.spec_from_file_location("datasets_under_test", args["module"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    import tests.services.test_results_parquet as helpers
    helpers.DatasetService = module.DatasetService
else:
    import tests.services.test_results_parquet as helpers

def memory():  # KiB: the resident set now, and its peak since the last reset
    return {k: int(v) for k, v in re.findall(r"(VmRSS|VmHWM):\\s+(\\d+)", Path("/proc/self/status").read_text())}

service = helpers.service_over(Path(args["data_dir"]), args["database_url"])
service.job_status(args["dataset_id"])  # the database opened, the mappers configured
pq.write_table(pa.table({"x": ["warm"]}), io.BytesIO())  # the Parquet writer and its codec loaded
Path("/proc/self/clear_refs").write_text("5")  # the peak so far (imports) would hide a smaller one: reset it
before = memory()["VmRSS"]
answer = service.results_parquet(args["dataset_id"])
size = 0
with open(args["out"], "wb") as out:
    for part in [answer] if isinstance(answer, bytes) else answer:
        size += out.write(part)
print(json.dumps({"before_kib": before, "after_kib": memory()["VmHWM"], "bytes": size}))
"""


def export_in_a_process(data_dir: Path, database_url: str, dataset_id: str, out: Path, module: str = "") -> dict:
    """Peak RSS before and after the export (KiB) and the bytes written; `module`: the path of another version of
    backend/services/datasets.py to export with."""
    args = {"data_dir": str(data_dir), "database_url": database_url, "dataset_id": dataset_id, "out": str(out),
            "module": module}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", EXPORT, json.dumps(args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.drill  # half a minute or more: 1.5 M rows written, then exported in a process of its own
def test_a_million_and_a_half_rows_export_within_200_mb(tmp_path: Path) -> None:
    started = time.monotonic()
    database_url, dataset_id = write_results(tmp_path, BIG_ROWS)
    written = time.monotonic()
    out = tmp_path / "export.parquet"
    measured = export_in_a_process(tmp_path, database_url, dataset_id, out)
    growth_mb = (measured["after_kib"] - measured["before_kib"]) / 1024
    print(f"{BIG_ROWS} rows: written in {written - started:.0f} s, exported in {time.monotonic() - written:.0f} s, "
          f"{measured['bytes'] / 1e6:.0f} MB of Parquet; peak RSS {measured['before_kib'] / 1024:.0f} MB -> "
          f"{measured['after_kib'] / 1024:.0f} MB (+{growth_mb:.0f} MB)")  # fmt: skip
    assert growth_mb < MAX_GROWTH_MB
    parquet = pq.ParquetFile(out)
    assert parquet.metadata.num_rows == BIG_ROWS and parquet.metadata.num_row_groups > 1
    last = parquet.metadata.num_row_groups - 1
    first_ids = parquet.read_row_group(0, columns=["ID"]).column("ID").to_pylist()
    last_ids = parquet.read_row_group(last, columns=["ID"]).column("ID").to_pylist()
    assert first_ids[:2] == ["ACCIDENT_0000000", "ACCIDENT_0000001"] and last_ids[-1] == f"ACCIDENT_{BIG_ROWS - 1:07d}"
