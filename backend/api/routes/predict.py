from fastapi import APIRouter, Request, Response

from backend.api.auth import AUTH_ERRORS, PREDICT
from backend.api.deps import CongestionServiceDep, EcloServiceDep
from backend.schemas.eclo import CLASSIC_EXAMPLE, EcloInput, EcloPredictionResponse
from backend.schemas.errors import ErrorResponse
from backend.schemas.traffic import CongestionPredictionResponse, CongestionPredictRequest
from backend.services.predictions import parse_json_object

router = APIRouter(prefix="/api/predict", tags=["predict"], dependencies=[PREDICT], responses=AUTH_ERRORS)

ECLO_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": EcloInput.model_json_schema(), "example": CLASSIC_EXAMPLE}},
    }
}


@router.post(
    "/eclo",
    response_model=EcloPredictionResponse,
    openapi_extra=ECLO_BODY_DOC,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def predict_eclo(request: Request, service: EcloServiceDep) -> Response:
    """Predict the ECLO of one accident, with its risk level and the fields that drove it."""
    # The body is read here rather than declared: on this hot route each declared dependency costs ~10 µs.
    row = parse_json_object(await request.body())
    return Response(await service.predict(row, request.state.request_id), media_type="application/json")


@router.post(
    "/congestion",
    response_model=CongestionPredictionResponse,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": CongestionPredictRequest.model_json_schema(), "example": {"sensor_id": "773869"}}}}},
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)  # fmt: skip
async def predict_congestion(request: Request, service: CongestionServiceDep) -> Response:
    """Speed and congestion level of a sensor 15, 30 and 60 minutes ahead: from its stored readings and its
    neighbours' (the hour up to its newest reading), or from the readings sent in `recent`."""
    row = parse_json_object(await request.body())
    return Response(await service.predict(row), media_type="application/json")
