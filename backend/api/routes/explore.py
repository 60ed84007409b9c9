from typing import Annotated

from fastapi import APIRouter, Path, Query

from backend.api.auth import AUTH_ERRORS, READ
from backend.api.deps import ExploreServiceDep
from backend.schemas.errors import ErrorResponse
from backend.schemas.explore import ColumnDetail, NearResult, PointsResult, QueryResult, TableProfile, TableQuery

# Reads of a dataset's columnar copy: the `read` scope, as the dataset itself.
router = APIRouter(prefix="/api/datasets/{dataset_id}", tags=["explore"], dependencies=[READ], responses=AUTH_ERRORS)

DatasetId = Annotated[str, Path(max_length=64)]
Columns = Annotated[list[str], Query(max_length=20, description="columns to carry with each row or point")]
ERRORS: dict[int | str, dict] = {
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse, "description": "the dataset has no columnar copy"},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


@router.get("/profile", responses=ERRORS)
def profile(dataset_id: DatasetId, service: ExploreServiceDep) -> TableProfile:
    """Rows, and per column its type, missing share, distinct count, summary and top values; the coordinate
    columns found."""
    return service.profile(dataset_id)


@router.post("/query", responses=ERRORS)
def query(dataset_id: DatasetId, body: TableQuery, service: ExploreServiceDep) -> QueryResult:
    """Filters, group-by with aggregates, order and limit, a cross table or a time pattern, over the whole table;
    bounded by EXPLORE_MAX_ROWS rows and EXPLORE_TIMEOUT_SECONDS."""
    return service.query(dataset_id, body)


@router.get("/columns/{name}", responses=ERRORS)
def column(
    dataset_id: DatasetId,
    name: Annotated[str, Path(max_length=200)],
    service: ExploreServiceDep,
    bins: Annotated[int, Query(ge=2, le=200)] = 20,
) -> ColumnDetail:
    """A column's distribution: histogram bins for numbers, value counts for the rest."""
    return service.column(dataset_id, name, bins)


@router.get("/points", responses=ERRORS)
def points(
    dataset_id: DatasetId,
    service: ExploreServiceDep,
    columns: Columns = [],  # noqa: B006 (FastAPI copies the default)
    cap: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> PointsResult:
    """The rows with coordinates as map points, sampled down to `cap` (at most EXPLORE_POINTS_CAP)."""
    return service.points(dataset_id, columns, cap)


@router.get("/near", responses=ERRORS)
def near(
    dataset_id: DatasetId,
    other: Annotated[str, Query(max_length=64, description="the other dataset's id")],
    service: ExploreServiceDep,
    radius_m: Annotated[float, Query(gt=0)] = 500.0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    columns: Columns = [],  # noqa: B006
) -> NearResult:
    """For each row of this dataset, how many rows of `other` lie within `radius_m`; for an accident file without
    coordinates and a table with Daegu addresses, each 동's accidents beside the table's rows in that 동."""
    return service.near(dataset_id, other, radius_m, limit, columns)
