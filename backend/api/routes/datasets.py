from contextlib import ExitStack
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from backend.api.auth import ADMIN, AUTH_ERRORS, READ
from backend.api.deps import DatasetServiceDep, SettingsDep
from backend.api.params import PageNumber
from backend.api.uploads import UploadAborted, receive_file
from backend.schemas.datasets import (
    DatasetDetail,
    DatasetJobAccepted,
    DatasetJobStatus,
    DatasetOut,
    ShareCreated,
    SharedDataset,
)
from backend.schemas.errors import ErrorResponse
from backend.schemas.pages import Page
from backend.services.upload_check import AUTO

# Reads need the `read` scope, writes `admin`; a share link's routes need only its token.
router = APIRouter(tags=["datasets"])

DatasetId = Annotated[str, Path(max_length=64)]
Token = Annotated[str, Path(max_length=100)]
ReportSize = Annotated[int, Query(ge=1, le=500)]
ResultFormat = Annotated[Literal["csv", "parquet"], Query(alias="format")]
UPLOAD_RESPONSES: dict[int | str, dict] = {
    413: {"model": ErrorResponse, "description": "the file is over DATASET_MAX_BYTES"},
    422: {"model": ErrorResponse, "description": "not a usable file: the message says why"},
    503: {"model": ErrorResponse},
}
NOT_FOUND: dict[int | str, dict] = {404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
NOT_READY: dict[int | str, dict] = {**NOT_FOUND, 409: {"model": ErrorResponse, "description": "no finished job"}}
SHARE_ERRORS: dict[int | str, dict] = {
    410: {"model": ErrorResponse, "description": "expired"},
    429: {"model": ErrorResponse, "description": "too many unknown share links from this client (Retry-After)"},
}


@router.post(
    "/api/datasets",
    status_code=201,
    dependencies=[ADMIN],
    responses=UPLOAD_RESPONSES | AUTH_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "name": {"type": "string", "maxLength": 200},
                            "encoding": {"type": "string", "enum": ["auto", "utf-8", "cp949", "euc-kr"]},
                            "kind": {
                                "type": "string",
                                "description": "`auto` (default: a model's layout is checked against the model, "
                                "any other table is kept as a table), `table`, or a model's name (`eclo`)",
                            },
                        },
                    }
                }
            },
        }
    },
)
async def upload_dataset(request: Request, service: DatasetServiceDep, settings: SettingsDep) -> DatasetOut:
    """Upload a CSV (multipart field `file`; optional `name`, `encoding` and `kind`), UTF-8 (with or without BOM)
    or CP949. An accident file (the Dacon train/test layout or the API's field names) is checked row by row
    against the model, and kept even when some rows are bad (see the report), not when none is good; any other
    table is kept as `kind: "table"` to explore. Every dataset gets a columnar copy and a profile."""
    dataset_id = service.new_id()
    try:
        with ExitStack() as storing:
            out = storing.enter_context(service.files.storage.open_write(service.source_key(dataset_id)))
            received = await receive_file(request, out.write, settings.dataset_max_bytes)
            await run_in_threadpool(storing.close)  # the file is stored (sent, to an object store) off the event loop
    except UploadAborted:
        await run_in_threadpool(service.discard, dataset_id)
        return Response(status_code=400)
    except Exception:
        await run_in_threadpool(service.discard, dataset_id)  # an object store's deletes: off the event loop
        raise
    except BaseException:  # cancelled: nothing may be awaited any more
        service.discard(dataset_id)
        raise
    return await run_in_threadpool(
        service.ingest,
        dataset_id,
        filename=received.filename,
        size=received.size,
        checksum=received.sha256,
        name=received.fields.get("name"),
        encoding=received.fields.get("encoding") or received.charset,
        kind=received.fields.get("kind") or AUTO,
    )


@router.get(
    "/api/datasets",
    dependencies=[READ],
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}} | AUTH_ERRORS,
)
def list_datasets(
    service: DatasetServiceDep, page: PageNumber = 1, size: Annotated[int, Query(ge=1, le=200)] = 20
) -> Page[DatasetOut]:
    """Datasets, newest first."""
    return service.list(page, size)


@router.get("/api/datasets/{dataset_id}", dependencies=[READ], responses=NOT_FOUND | AUTH_ERRORS)
def get_dataset(
    dataset_id: DatasetId, service: DatasetServiceDep, page: PageNumber = 1, size: ReportSize = 50
) -> DatasetDetail:
    """A dataset and a page of its validation report (row, column, problem, value)."""
    return service.detail(dataset_id, page, size)


@router.delete("/api/datasets/{dataset_id}", status_code=204, dependencies=[ADMIN], responses=NOT_FOUND | AUTH_ERRORS)
def delete_dataset(dataset_id: DatasetId, service: DatasetServiceDep) -> Response:
    """Remove the file, its results and its share links; a running job is cancelled."""
    service.delete(dataset_id)
    return Response(status_code=204)


@router.post(
    "/api/datasets/{dataset_id}/predict",
    status_code=202,
    dependencies=[ADMIN],
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "a job is already running"}} | AUTH_ERRORS,
)
def score_dataset(
    dataset_id: DatasetId,
    service: DatasetServiceDep,
    chunk_rows: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> DatasetJobAccepted:
    """Score every valid row: chunks of `chunk_rows` (default DATASET_CHUNK_ROWS) spread over the workers.
    Poll `poll_url`; at most one job runs per dataset."""
    return service.start_job(dataset_id, chunk_rows)


@router.get("/api/datasets/{dataset_id}/predictions", dependencies=[READ], responses=NOT_FOUND | AUTH_ERRORS)
def dataset_job(dataset_id: DatasetId, service: DatasetServiceDep) -> DatasetJobStatus:
    """The latest job's status and progress (rows done); `results_url` once it succeeded."""
    return service.job_status(dataset_id)


@router.delete("/api/datasets/{dataset_id}/predictions", dependencies=[ADMIN], responses=NOT_READY | AUTH_ERRORS)
def cancel_dataset_job(dataset_id: DatasetId, service: DatasetServiceDep) -> DatasetJobStatus:
    """Cancel the running job: chunks not yet started are skipped."""
    return service.cancel_job(dataset_id)


@router.get(
    "/api/datasets/{dataset_id}/predictions.csv",
    dependencies=[READ],
    responses=AUTH_ERRORS | {**NOT_READY, 200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
    response_class=StreamingResponse,
)
def dataset_results(dataset_id: DatasetId, service: DatasetServiceDep, format: ResultFormat = "csv") -> Response:
    """The file's columns plus predicted_eclo, p_severe, risk_level, model_version and error, in the file's
    row order; invalid rows are kept with their problems. `?format=parquet` for Parquet."""
    return _results(service, dataset_id, format, dataset_id)


def _results(service: DatasetServiceDep, dataset_id: str, format: str, name: str) -> Response:
    if format == "parquet":
        headers = {"Content-Disposition": f'attachment; filename="{name}-predictions.parquet"'}
        return StreamingResponse(service.results_parquet(dataset_id), media_type="application/vnd.apache.parquet",
                                 headers=headers)  # fmt: skip
    headers = {"Content-Disposition": f'attachment; filename="{name}-predictions.csv"'}
    return StreamingResponse(service.results_csv(dataset_id), media_type="text/csv; charset=utf-8", headers=headers)


@router.post(
    "/api/datasets/{dataset_id}/share", status_code=201, dependencies=[ADMIN], responses=NOT_FOUND | AUTH_ERRORS
)
def share_dataset(
    dataset_id: DatasetId,
    service: DatasetServiceDep,
    days: Annotated[float | None, Query(gt=0, le=365)] = None,
) -> ShareCreated:
    """A read-only link to the dataset, its report and its results, valid `days` (default DATASET_SHARE_DAYS).
    The token is shown once."""
    return service.share(dataset_id, days)


@router.delete("/api/shares/{token}", status_code=204, dependencies=[ADMIN], responses=NOT_FOUND | AUTH_ERRORS)
def revoke_share(token: Token, service: DatasetServiceDep) -> Response:
    service.revoke(token)
    return Response(status_code=204)


@router.get("/api/shared/{token}", responses={**NOT_FOUND, **SHARE_ERRORS})
def shared_dataset(
    token: Token, request: Request, service: DatasetServiceDep, page: PageNumber = 1, size: ReportSize = 50
) -> SharedDataset:
    """What a share link opens, read-only: the dataset, its report and its latest job."""
    return service.shared(token, page, size, client=_client(request))


@router.get(
    "/api/shared/{token}/predictions.csv",
    responses={
        **NOT_READY,
        **SHARE_ERRORS,
        200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}},
    },
    response_class=StreamingResponse,
)
def shared_results(
    token: Token, request: Request, service: DatasetServiceDep, format: ResultFormat = "csv"
) -> Response:
    dataset_id = service.shared_dataset_id(token, client=_client(request))
    return _results(service, dataset_id, format, "shared")


def _client(request: Request) -> str | None:
    """The caller's address, the key of its rate of unknown share tokens (no proxy in front of the API)."""
    return request.client.host if request.client else None
