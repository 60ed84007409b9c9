from fastapi import APIRouter, Request, Response
from starlette.datastructures import State

from backend.api.auth import AUTH_ERRORS, BEARER_DOC, authorize
from backend.api.middleware import HotAnswer
from backend.schemas.eclo import CLASSIC_EXAMPLE, EcloInput, EcloPredictionResponse
from backend.schemas.errors import ErrorResponse
from backend.schemas.traffic import CongestionPredictionResponse, CongestionPredictRequest
from backend.services.congestion import CongestionService
from backend.services.predictions import EcloPredictionService, parse_json_object

# The hot routes: each answer is one function of the app's state, the `Authorization` header, the body and the
# request id. backend.api.middleware.HotRoutes calls it straight from ASGI; the FastAPI route below calls the same
# function and documents the route.
router = APIRouter(prefix="/api/predict", tags=["predict"], responses=AUTH_ERRORS)

ECLO_BODY_DOC = {
    **BEARER_DOC,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": EcloInput.model_json_schema(), "example": CLASSIC_EXAMPLE}},
    },
}


async def answer_eclo(state: State, authorization: str | None, body: bytes, request_id: str | None) -> bytes:
    principal = await authorize(state.api_keys, authorization, "predict")
    service: EcloPredictionService = state.eclo_service
    return await service.predict(parse_json_object(body), request_id, principal.key_id)


async def answer_congestion(state: State, authorization: str | None, body: bytes, request_id: str | None) -> bytes:
    principal = await authorize(state.api_keys, authorization, "predict")
    service: CongestionService = state.congestion_service
    return await service.predict(parse_json_object(body), request_id, principal.key_id)


async def _respond(answer: HotAnswer, request: Request) -> Response:
    body = await answer(request.app.state, request.headers.get("authorization"), await request.body(),
                        request.state.request_id)  # fmt: skip
    return Response(body, media_type="application/json")


@router.post(
    "/eclo",
    response_model=EcloPredictionResponse,
    openapi_extra=ECLO_BODY_DOC,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def predict_eclo(request: Request) -> Response:
    """Predict the ECLO of one accident, with its risk level and the fields that drove it."""
    return await _respond(answer_eclo, request)


@router.post(
    "/congestion",
    response_model=CongestionPredictionResponse,
    openapi_extra={**BEARER_DOC, "requestBody": {"required": True, "content": {"application/json": {
        "schema": CongestionPredictRequest.model_json_schema(), "example": {"sensor_id": "773869"}}}}},
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)  # fmt: skip
async def predict_congestion(request: Request) -> Response:
    """Speed and congestion level of a sensor 15, 30 and 60 minutes ahead: from its stored readings and its
    neighbours' (the hour up to its newest reading), or from the readings sent in `recent`."""
    return await _respond(answer_congestion, request)


HOT_ANSWERS: dict[str, HotAnswer] = {
    f"{router.prefix}/eclo": answer_eclo,
    f"{router.prefix}/congestion": answer_congestion,
}
