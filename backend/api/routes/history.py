from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.auth import AUTH_ERRORS, READ
from backend.api.deps import SessionDep
from backend.api.params import PageNumber
from backend.schemas.errors import ErrorResponse
from backend.schemas.pages import Page
from backend.schemas.records import PredictionRecord
from backend.services import history
from backend.services.keys import KEY_ID

router = APIRouter(prefix="/api/predictions", tags=["history"], dependencies=[READ], responses=AUTH_ERRORS)


@router.get("", responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def list_predictions(
    session: SessionDep,
    page: PageNumber = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
    model: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    key_id: Annotated[str | None, Query(pattern=f"^{KEY_ID}$", description="the id of the API key that asked")] = None,
) -> Page[PredictionRecord]:
    """Single predictions, newest first; optionally of one model, since a time (ISO-8601), asked with one key."""
    return history.list_predictions(session=session, page=page, size=size, model=model, since=since, key_id=key_id)
