"""Where a dataset's files lie in the storage, and how its rows and results are read back.

Files of a dataset (`datasets/<id>/`):
- `source.csv`     the upload as it came
- `rows.jsonl`     one line per valid row: [row index in the file, the model's input, observed ECLO or null]
- `offsets.bin`    little-endian int64 byte offsets of each line of rows.jsonl, and its end: a chunk is one read
- `report.jsonl`   one validation problem per line: {row, column, problem, value}
- `table.parquet`  the file as a typed columnar table (every dataset; the explore queries read it)
- `profile.json`   the table's profile, computed at upload
- `jobs/<job>/chunk-<k>.jsonl`  [row index, outcome] per row of chunk k, written once (the first writer wins)

"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from backend.core.storage import FileStorage

_OFFSET = struct.Struct("<q")


class DatasetFiles:
    """The file layout of datasets in a storage (see the module docstring)."""

    def __init__(self, storage: FileStorage) -> None:
        self.storage = storage

    @staticmethod
    def folder(dataset_id: str) -> str:
        return f"datasets/{dataset_id}"

    def source(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/source.csv"

    def rows(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/rows.jsonl"

    def offsets(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/offsets.bin"

    def report(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/report.jsonl"

    def table(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/table.parquet"

    def profile(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/profile.json"

    def table_path(self, dataset_id: str) -> Path:
        """The columnar table as a local file, for the query engine."""
        return self.storage.local_path(self.table(dataset_id))

    def chunk(self, dataset_id: str, job_id: str, chunk: int) -> str:
        return f"{self.folder(dataset_id)}/jobs/{job_id}/chunk-{chunk:06d}.jsonl"

    def read_rows(self, dataset_id: str, start: int, stop: int) -> list[tuple[int, dict[str, Any], float | None]]:
        """Valid rows `start` to `stop` (positions among the valid rows): one read of their byte range."""
        if stop <= start:
            return []
        with self.storage.open_read(self.offsets(dataset_id)) as offsets:
            offsets.seek(start * _OFFSET.size)
            (first,) = _OFFSET.unpack(offsets.read(_OFFSET.size))
            offsets.seek(stop * _OFFSET.size)
            (end,) = _OFFSET.unpack(offsets.read(_OFFSET.size))
        with self.storage.open_read(self.rows(dataset_id)) as rows:
            rows.seek(first)
            data = rows.read(end - first)
        return [tuple(orjson.loads(line)) for line in data.splitlines()]  # type: ignore[misc]

    def iter_rows(self, dataset_id: str) -> Iterator[tuple[int, dict[str, Any], float | None]]:
        with self.storage.open_read(self.rows(dataset_id)) as rows:
            for line in rows:
                yield tuple(orjson.loads(line))  # type: ignore[misc]

    def iter_results(self, dataset_id: str, job_id: str, chunks: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every scored row of a job in file order: chunks hold consecutive valid rows."""
        for chunk in range(chunks):
            with self.storage.open_read(self.chunk(dataset_id, job_id, chunk)) as results:
                for line in results:
                    index, outcome = orjson.loads(line)
                    yield index, outcome

    def iter_report(self, dataset_id: str) -> Iterator[dict[str, Any]]:
        with self.storage.open_read(self.report(dataset_id)) as report:
            for line in report:
                yield orjson.loads(line)
