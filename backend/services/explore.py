"""Exploring any dataset through its columnar copy: the profile made at upload, structured queries, a column's
distribution, its points on a map, and what lies near what (backend.explore does the work, bounded by the
EXPLORE_* settings)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy.exc import SQLAlchemyError

from backend.core.config import Settings
from backend.core.errors import Conflict, DependencyUnavailable, InvalidRequest, NotFound
from backend.db import datasets as records
from backend.db.models import Dataset
from backend.explore.errors import QueryError
from backend.explore.query import column_detail, points, run_query
from backend.explore.spatial import near, per_dong
from backend.schemas.explore import ColumnDetail, NearResult, PointsResult, QueryResult, TableProfile, TableQuery
from backend.stores.dataset_files import DatasetFiles
from backend.wiring import Resources

ADDRESS_COLUMN = "소재지지번주소"  # the Daegu side tables' lot-number address: it names the 구 and the 동


@contextmanager
def _refused_as_422() -> Iterator[None]:
    """A query the engine refuses is a 422 naming its field."""
    try:
        yield
    except QueryError as exc:
        raise InvalidRequest(exc.message, details=[{"field": exc.field}]) from exc


class ExploreService:
    def __init__(self, resources: Resources) -> None:
        self.sessions = resources.sessions
        self.files: DatasetFiles = resources.dataset_files
        self.settings: Settings = resources.settings

    def _dataset(self, dataset_id: str) -> Dataset:
        try:
            with self.sessions() as session:
                dataset = records.get_dataset(session, dataset_id=dataset_id) if len(dataset_id) == 32 else None
        except SQLAlchemyError as exc:
            raise DependencyUnavailable("database", "cannot read the datasets") from exc
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id[:40]!r}")
        return dataset

    def _opened(self, dataset_id: str) -> tuple[Dataset, Path]:
        """The dataset's record and its columnar copy (409 when it has none, or no profile)."""
        dataset = self._dataset(dataset_id)
        path = self.files.table_path(dataset_id)
        if not path.exists() or not self.files.storage.exists(self.files.profile(dataset_id)):
            raise Conflict(f"dataset {dataset_id} has no columnar copy to explore (uploaded before explore existed, "
                           "or its file could not be read as a table): upload it again")  # fmt: skip
        return dataset, path

    def _read_profile(self, dataset_id: str) -> TableProfile:
        with self.files.storage.open_read(self.files.profile(dataset_id)) as handle:
            return TableProfile.model_validate(orjson.loads(handle.read()))

    def profile(self, dataset_id: str) -> TableProfile:
        self._opened(dataset_id)
        return self._read_profile(dataset_id)

    def query(self, dataset_id: str, query: TableQuery) -> QueryResult:
        _, path = self._opened(dataset_id)
        with _refused_as_422():
            return run_query(path, query, max_rows=self.settings.explore_max_rows,
                             timeout_seconds=self.settings.explore_timeout_seconds)  # fmt: skip

    def column(self, dataset_id: str, name: str, bins: int) -> ColumnDetail:
        _, path = self._opened(dataset_id)
        with _refused_as_422():
            return column_detail(path, name, bins=bins)

    def points(self, dataset_id: str, columns: list[str], cap: int | None) -> PointsResult:
        _, path = self._opened(dataset_id)
        found = self._read_profile(dataset_id).coordinates
        if found is None:
            message = f"dataset {dataset_id} has no latitude and longitude columns"
            raise InvalidRequest(message, details=[{"field": "dataset_id"}])
        most = self.settings.explore_points_cap
        with _refused_as_422():
            return points(path, found.latitude, found.longitude, columns, cap=min(cap or most, most))

    def near(self, dataset_id: str, other_id: str, radius_m: float, limit: int, columns: list[str]) -> NearResult:
        """With coordinates on both sides: for each row of this dataset, the rows of `other` within `radius_m`. An
        accident file (no coordinates) against a table with Daegu addresses: each 동's accidents beside the table's
        rows in that 동."""
        if radius_m > self.settings.explore_max_radius_m:
            raise InvalidRequest(f"radius_m is at most {self.settings.explore_max_radius_m:g}; got {radius_m:g}",
                                 details=[{"field": "radius_m"}])  # fmt: skip
        (dataset, path), (other, other_path) = self._opened(dataset_id), self._opened(other_id)
        mine, theirs = self._read_profile(dataset_id), self._read_profile(other_id)
        with _refused_as_422():
            if mine.coordinates is not None and theirs.coordinates is not None:
                return near(path, (mine.coordinates.latitude, mine.coordinates.longitude), other_path,
                            (theirs.coordinates.latitude, theirs.coordinates.longitude), radius_m, limit=limit,
                            columns=columns)  # fmt: skip
            if dataset.model_name is not None and ADDRESS_COLUMN in {c.name for c in theirs.columns}:
                return per_dong(path, {other.name: other_path}, address_column=ADDRESS_COLUMN, limit=limit)
        raise InvalidRequest(
            "near needs latitude and longitude columns in both datasets, or an accident file and a table with "
            f"Daegu addresses ({ADDRESS_COLUMN})",
            details=[{"field": "other"}],
        )
