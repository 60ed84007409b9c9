from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.auth import AUTH_ERRORS, READ, AnyKey, PredictKey
from backend.api.deps import (
    BatchStoreDep,
    PredictionsDep,
    RecorderDep,
    RequestIdDep,
    SessionDep,
    SessionsDep,
    SettingsDep,
)
from backend.api.params import Cursor, PageNumber
from backend.schemas.batches import (
    BatchAccepted,
    BatchStatus,
    BatchStatusResponse,
    BatchSubmitRequest,
    BatchSummary,
)
from backend.schemas.errors import ErrorResponse
from backend.schemas.pages import Page
from backend.services import batches

router = APIRouter(prefix="/api/predict", tags=["batches"], responses=AUTH_ERRORS)


@router.post(
    "/{model_name}/batch",
    status_code=202,
    responses={
        404: {"model": ErrorResponse, "description": "no such model"},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        429: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
def submit_batch(
    model_name: str,
    body: BatchSubmitRequest,
    store: BatchStoreDep,
    predictions: PredictionsDep,
    recorder: RecorderDep,
    settings: SettingsDep,
    request_id: RequestIdDep,
    principal: PredictKey,
) -> BatchAccepted:
    """Queue 1 to 100 rows for the workers, scored by the model named in the path; poll `poll_url`.
    Congestion items `{sensor_id, recent?}` without `recent` are read from the stored readings now, at
    submission, and an item refused then is listed among the batch's errors. A result row is the model's single
    answer plus its `index`."""
    return batches.submit_batch(
        store=store,
        predictions=predictions,
        recorder=recorder,
        items=body.items,
        model=model_name,
        request_id=request_id,
        settings=settings,
        owner=principal.key_id,
    )


@router.get("/batch", dependencies=[READ], responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def list_batches(
    session: SessionDep,
    page: PageNumber = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
    status: BatchStatus | None = None,
    cursor: Cursor = None,
) -> Page[BatchSummary]:
    """Batches, newest first, optionally of one status; go on with `cursor` (a page's `next`)."""
    return batches.list_batches(session=session, page=page, size=size, status=status, cursor=cursor)


@router.get("/batch/{batch_id}/results", responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def batch_results(
    batch_id: str, store: BatchStoreDep, sessions: SessionsDep, settings: SettingsDep, principal: AnyKey
) -> BatchStatusResponse:
    """Status, progress and (once finished) the per-row results and errors of a batch: of the caller's own
    batches, or of any with the `read` scope."""
    return batches.batch_status(store=store, sessions=sessions, batch_id=batch_id, settings=settings, viewer=principal)
