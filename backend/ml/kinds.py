"""The model kinds this code serves: `metadata.json`'s `kind` -> the loader of that kind."""

from __future__ import annotations

from backend.ml.congestion.model import CongestionModel
from backend.ml.eclo.model import EcloModel
from backend.ml.protocol import ModelLoader

MODEL_KINDS: dict[str, ModelLoader] = {"eclo": EcloModel.load, "congestion": CongestionModel.load}
