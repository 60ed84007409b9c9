"""The in-process ECLO predictor: one loaded LightGBM booster with its feature encoder and metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from backend.ml.artifacts import load_booster, read_metadata
from backend.ml.errors import InvalidRow
from backend.ml.fastpath import SingleRowPredictor
from backend.ml.features import FEATURE_SOURCE, FEATURES, INPUT_FIELDS, FeatureEncoder, TargetStat
from backend.ml.protocol import IDENTITY_KEYS

# Bands on the ECLO scale. ECLO 3 is one minor injury, 5 one serious injury, 10 one death.
RISK_LEVELS: list[dict[str, Any]] = [
    {"level": "low", "min": 0.0, "max": 4.0},
    {"level": "moderate", "min": 4.0, "max": 5.5},
    {"level": "high", "min": 5.5, "max": 7.5},
    {"level": "severe", "min": 7.5, "max": None},
]
EXPLANATION_SIZE = 5


def risk_level(eclo: float) -> str:
    for band in RISK_LEVELS:
        if band["max"] is None or eclo < band["max"]:
            return band["level"]
    raise AssertionError("unreachable: the last band is open")


@dataclass(frozen=True, slots=True)
class Contribution:
    """How much one input field moved this prediction, in log1p(ECLO) units."""

    feature: str
    contribution: float


@dataclass(frozen=True, slots=True)
class EcloPrediction:
    eclo: float
    risk_level: str
    model_version: str
    explanation: tuple[Contribution, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "eclo": self.eclo,
            "risk_level": self.risk_level,
            "model_version": self.model_version,
        }
        if self.explanation is not None:
            out["explanation"] = [{"feature": c.feature, "contribution": c.contribution} for c in self.explanation]
        return out


class EcloModel:
    """The ECLO kind of `backend.ml.protocol.PredictiveModel`."""

    def __init__(self, booster: lgb.Booster, metadata: Mapping[str, Any], num_threads: int = 1) -> None:
        if list(metadata["features"]) != list(FEATURES):
            raise ValueError("model features differ from this code's feature encoding; retrain the model")
        self.booster = booster
        self.metadata = dict(metadata)
        self.name: str = metadata.get("name", "eclo")
        self.kind: str = metadata.get("kind", "eclo")
        self.version: str = metadata["version"]
        stats = {k: TargetStat.from_dict(v) for k, v in metadata.get("target_stats", {}).items()}
        self.encoder = FeatureEncoder(metadata["vocabularies"], stats)
        self._predict_kwargs = {"num_threads": num_threads}
        self._single = SingleRowPredictor(booster, len(FEATURES))
        groups = sorted(set(FEATURE_SOURCE.values()))
        self._groups = groups
        # Sums LightGBM's per-feature contributions into the API field each feature comes from.
        self._group_matrix = np.zeros((len(FEATURES) + 1, len(groups)))
        for i, feature in enumerate(FEATURES):
            self._group_matrix[i, groups.index(FEATURE_SOURCE[feature])] = 1.0

    @classmethod
    def load(cls, model_dir: Path, num_threads: int = 1) -> EcloModel:
        metadata = read_metadata(model_dir)
        return cls(load_booster(model_dir, metadata), metadata, num_threads=num_threads)

    def allowed_values(self) -> dict[str, list[str]]:
        return self.encoder.allowed_values()

    def encode(self, row: Mapping[str, Any]) -> np.ndarray:
        return self.encoder.encode(row)

    def validate(self, row: Mapping[str, Any]) -> None:
        self.encode(row)

    def _prediction(self, raw: float, contributions: np.ndarray | None) -> EcloPrediction:
        eclo = max(0.0, math.expm1(raw))
        explanation = None
        if contributions is not None:
            by_field = contributions @ self._group_matrix
            top = np.argsort(-np.abs(by_field))[:EXPLANATION_SIZE]
            explanation = tuple(Contribution(self._groups[i], float(by_field[i])) for i in top)
        return EcloPrediction(eclo, risk_level(eclo), self.version, explanation)

    def _score(self, X: np.ndarray, explain: bool) -> list[EcloPrediction]:
        """The value always comes from `predict` (identical for a row alone or in a batch); the explanation
        from `pred_contrib`, whose sum equals it only up to float rounding."""
        raw = self.booster.predict(X, **self._predict_kwargs)
        if not explain:
            return [self._prediction(float(r), None) for r in raw]
        contributions = self.booster.predict(X, pred_contrib=True, **self._predict_kwargs)
        return [self._prediction(float(r), c) for r, c in zip(raw, contributions, strict=True)]

    def predict_one(self, row: Mapping[str, Any], explain: bool = True) -> EcloPrediction:
        """One row, no DataFrame: encode to a (1, n) float array and call the booster once."""
        return self.predict_encoded(self.encode(row), explain)

    def predict_encoded(self, features: np.ndarray, explain: bool = True) -> EcloPrediction:
        """One row already encoded by `encode`, through LightGBM's single-row fast path."""
        raw = self._single.raw(features)
        return self._prediction(raw, self._single.contributions(features) if explain else None)

    def predict_many(
        self, rows: Sequence[Mapping[str, Any]], explain: bool = False
    ) -> list[EcloPrediction | InvalidRow]:
        """Every valid row scored in one booster call; every invalid row answered by its InvalidRow (index set)."""
        outcomes: list[EcloPrediction | InvalidRow | None] = [None] * len(rows)
        valid: list[int] = []
        encoded: list[np.ndarray] = []
        for index, row in enumerate(rows):
            try:
                encoded.append(self.encode(row))
                valid.append(index)
            except InvalidRow as exc:
                exc.index = index
                outcomes[index] = exc
        if encoded:
            for index, prediction in zip(valid, self._score(np.vstack(encoded), explain), strict=True):
                outcomes[index] = prediction
        return outcomes  # type: ignore[return-value]  # every slot is filled

    def info(self) -> dict[str, Any]:
        """What a client needs to know of this model: identity, metrics and the values it accepts."""
        m = self.metadata
        summary = None
        if m.get("cv_rmsle") is not None:
            summary = (f"CV RMSLE {m['cv_rmsle']:.4f} vs constant {m['baseline_constant_rmsle']:.4f} "
                       f"(ratio {m['cv_to_baseline_ratio']:.3f})")  # fmt: skip
        return {
            **{k: self.metadata.get(k) for k in IDENTITY_KEYS},
            "summary": summary,
            "metrics": {
                k: self.metadata.get(k)
                for k in ("cv_rmsle", "baseline_constant_rmsle", "cv_to_baseline_ratio", "cv_folds")
            },
            "features": list(FEATURES),
            "input_fields": [f.to_dict() for f in INPUT_FIELDS],
            "allowed_values": self.allowed_values(),
            "risk_levels": RISK_LEVELS,
        }
