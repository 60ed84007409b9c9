from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from backend.api.auth import AUTH_ERRORS, READ
from backend.api.deps import SessionDep, SessionsDep
from backend.api.params import Cursor, PageNumber
from backend.schemas.errors import ErrorResponse
from backend.schemas.pages import Page
from backend.schemas.records import PredictionRecord
from backend.services import history
from backend.services.keys import KEY_ID

router = APIRouter(prefix="/api/predictions", tags=["history"], dependencies=[READ], responses=AUTH_ERRORS)

Model = Annotated[str | None, Query(max_length=64, description="records of this model only (eclo, congestion)")]
Since = Annotated[datetime | None, Query(description="records from this time on (ISO-8601; UTC without a zone)")]
Until = Annotated[datetime | None, Query(description="records before this time (ISO-8601; UTC without a zone)")]
KeyId = Annotated[str | None, Query(pattern=f"^{KEY_ID}$", description="the id of the API key that asked")]
ERRORS = {422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


@router.get("", responses=ERRORS)
def list_predictions(
    session: SessionDep,
    page: PageNumber = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
    model: Model = None,
    since: Since = None,
    until: Until = None,
    key_id: KeyId = None,
    cursor: Cursor = None,
) -> Page[PredictionRecord]:
    """Single predictions, newest first; optionally of one model, in a time range, asked with one key. Go on with
    `cursor` (a page's `next`); a page number reaches 10,000 rows in. `total` counts up to 10,000
    (`total_exact`: false beyond)."""
    return history.list_predictions(session=session, page=page, size=size, model=model, since=since, until=until,
                                    key_id=key_id, cursor=cursor)  # fmt: skip


@router.get(".csv", response_class=StreamingResponse, responses=ERRORS | {200: {"content": {"text/csv": {}}}})
def export_predictions(
    sessions: SessionsDep, model: Model = None, since: Since = None, until: Until = None, key_id: KeyId = None
) -> Response:
    """Every matching single prediction as CSV, oldest first (the same filters as the listing): when, which model
    and version, which key and request, cached, latency, the ECLO figures, and `inputs` and `output` as JSON."""
    stream = history.predictions_csv(sessions, model=model, since=since, until=until, key_id=key_id)
    headers = {"Content-Disposition": 'attachment; filename="predictions.csv"'}
    return StreamingResponse(stream, media_type="text/csv; charset=utf-8", headers=headers)
