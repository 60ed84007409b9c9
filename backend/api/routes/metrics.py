from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend.api.auth import AUTH_ERRORS, READ

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, dependencies=[READ], responses=AUTH_ERRORS)
def metrics() -> Response:
    """Prometheus text format: requests, latencies, predictions, cache, batches, database records.

    Sync on purpose: the scrape reads Redis, and runs in the threadpool rather than on the event loop.
    """
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
