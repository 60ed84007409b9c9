"""This project's ECLO model served by MLServer: a custom JSON route calling the same `predict_one` (with its
explanation) that the API answers with, for bench/peers/run.py. Runs in MLServer's own virtualenv."""

from __future__ import annotations

from pathlib import Path

import orjson
from fastapi import Request, Response
from mlserver import MLModel
from mlserver.handlers import custom_handler
from mlserver.types import InferenceRequest, InferenceResponse

from backend.ml.eclo.model import EcloModel
from backend.ml.errors import InvalidRow


class EcloRuntime(MLModel):
    async def load(self) -> bool:
        self.eclo = EcloModel.load(Path(str(self.settings.parameters.uri)))  # type: ignore[union-attr]
        return True

    @custom_handler(rest_path="/eclo")
    async def eclo_json(self, request: Request) -> Response:
        try:
            answer = self.eclo.predict_one(orjson.loads(await request.body()))
        except InvalidRow as exc:
            return Response(orjson.dumps({"error": exc.summary()}), status_code=422, media_type="application/json")
        return Response(orjson.dumps(answer.to_dict()), media_type="application/json")

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        raise NotImplementedError("this runtime answers on its JSON route, /eclo")
