from fastapi import APIRouter, Request, Response

from backend.api.auth import AUTH_ERRORS, BEARER_DOC, authorize
from backend.schemas.eclo import CLASSIC_EXAMPLE, EcloInput, EcloPredictionResponse
from backend.schemas.errors import ErrorResponse
from backend.schemas.traffic import CongestionPredictionResponse, CongestionPredictRequest
from backend.services.congestion import CongestionService
from backend.services.predictions import EcloPredictionService, parse_json_object

# The hot routes: the key is checked, the body read and the service taken in the route's body, as each declared
# dependency costs ~10 µs here (backend.api.auth.authorize is the same check as its dependencies).
router = APIRouter(prefix="/api/predict", tags=["predict"], responses=AUTH_ERRORS)

ECLO_BODY_DOC = {
    **BEARER_DOC,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": EcloInput.model_json_schema(), "example": CLASSIC_EXAMPLE}},
    },
}


@router.post(
    "/eclo",
    response_model=EcloPredictionResponse,
    openapi_extra=ECLO_BODY_DOC,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def predict_eclo(request: Request) -> Response:
    """Predict the ECLO of one accident, with its risk level and the fields that drove it."""
    await authorize(request, "predict")
    row = parse_json_object(await request.body())
    service: EcloPredictionService = request.app.state.eclo_service
    return Response(await service.predict(row, request.state.request_id), media_type="application/json")


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
    await authorize(request, "predict")
    row = parse_json_object(await request.body())
    service: CongestionService = request.app.state.congestion_service
    return Response(await service.predict(row), media_type="application/json")
