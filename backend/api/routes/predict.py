from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.datastructures import State

from backend.api.auth import AUTH_ERRORS, BEARER_DOC, authorize
from backend.core.errors import InvalidRequest
from backend.predictions.entry import Caller, Predictions
from backend.schemas.eclo import CLASSIC_EXAMPLE, EcloInput, EcloPredictionResponse
from backend.schemas.errors import ErrorResponse
from backend.schemas.traffic import CongestionPredictionResponse, CongestionPredictRequest

# The hot route: its answer is one function of the app's state, the model's name, the `Authorization` header, the
# body and the request id. backend.api.middleware.HotRoutes calls it straight from ASGI for every
# `POST /api/predict/<model>`; the FastAPI route below calls the same function and documents the route.
router = APIRouter(prefix="/api/predict", tags=["predict"], responses=AUTH_ERRORS)

PREDICT_DOC = {
    **BEARER_DOC,
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [EcloInput.model_json_schema(), CongestionPredictRequest.model_json_schema()]},
                "examples": {
                    "eclo": {"summary": "POST /api/predict/eclo", "value": CLASSIC_EXAMPLE},
                    "congestion": {"summary": "POST /api/predict/congestion", "value": {"sensor_id": "773869"}},
                },
            }
        },
    },
}


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object; its fields are validated by the model's kind."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", details=[{"field": "body"}]) from exc
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object", details=[{"field": "body"}])
    return value


async def answer_prediction(
    state: State,
    model: str,
    authorization: str | None,
    read_body: Callable[[], Awaitable[bytes]],
    request_id: str | None,
) -> bytes:
    """The key first, then the body: a key-less client cannot hold memory with unfinished bodies."""
    principal = await authorize(state.services.api_keys, authorization, "predict")
    body = parse_json_object(await read_body())
    predictions: Predictions = state.services.predictions
    return await predictions.predict_one(model, body, Caller(request_id, principal.key_id))


@router.post(
    "/{model}",
    response_model=EcloPredictionResponse | CongestionPredictionResponse | dict[str, Any],
    openapi_extra=PREDICT_DOC,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def predict(model: str, request: Request) -> Response:
    """One prediction of the model named in the path (`GET /api/models` lists them), answered in-process.

    - `eclo`: the ECLO of one accident, the chance of a death or serious injury, its risk level and the fields
      that drove it.
    - `congestion`: a sensor's speed and congestion level 15, 30 and 60 minutes ahead, from its stored readings
      and its neighbours' (the hour up to its newest reading), or from the readings sent in `recent`.

    The answer is the model kind's one shape (a batch row is the same plus its `index`), with `cached`."""
    body = await answer_prediction(request.app.state, model, request.headers.get("authorization"), request.body,
                                   request.state.request_id)  # fmt: skip
    return Response(body, media_type="application/json")


HOT_PREFIX = f"{router.prefix}/"
