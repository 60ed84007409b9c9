"""The in-process ECLO predictor: one loaded LightGBM booster with its feature encoder and metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from backend.ml.artifacts import MODEL_FILE, load_boosters, read_metadata
from backend.ml.eclo.features import (
    FEATURE_SOURCES,
    FEATURES,
    INPUT_FIELDS,
    AreaProfile,
    EncodedRow,
    FeatureEncoder,
    TargetStats,
    load_holidays,
)
from backend.ml.eclo.measures import PlattScaling
from backend.ml.eclo.treeshap import TooDeep, TreeShapTables
from backend.ml.errors import InvalidRow
from backend.ml.fastpath import SingleRowPredictor
from backend.ml.protocol import IDENTITY_KEYS

SEVERE_MODEL_FILE = "severe.txt"
# Bands of the relative risk: the chance of a severe outcome (a death or a serious injury) over the city's recent
# rate (the model's base rate). 1.0 is an accident as likely as the average one to kill or seriously injure.
RISK_LEVELS: list[dict[str, Any]] = [
    {"level": "low", "min": 0.0, "max": 0.8},
    {"level": "moderate", "min": 0.8, "max": 1.2},
    {"level": "high", "min": 1.2, "max": 1.5},
    {"level": "severe", "min": 1.5, "max": None},
]
EXPLANATION_SIZE = 5


def risk_level(relative_risk: float) -> str:
    for band in RISK_LEVELS:
        if band["max"] is None or relative_risk < band["max"]:
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
    p_severe: float  # calibrated chance of at least one death or serious injury
    relative_risk: float  # p_severe over the model's base rate (the recent share of severe outcomes)
    risk_level: str  # band of relative_risk
    model_version: str
    notes: tuple[str, ...] = ()  # inputs the model could not use as given, and what it did instead
    explanation: tuple[Contribution, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "eclo": self.eclo,
            "p_severe": self.p_severe,
            "relative_risk": self.relative_risk,
            "risk_level": self.risk_level,
            "model_version": self.model_version,
            "notes": list(self.notes),
        }
        if self.explanation is not None:
            out["explanation"] = [{"feature": c.feature, "contribution": c.contribution} for c in self.explanation]
        return out


class EcloModel:
    """The ECLO kind of `backend.ml.protocol.PredictiveModel`: expected ECLO and the calibrated chance of a
    severe outcome, from two boosters on one feature row."""

    def __init__(
        self,
        booster: lgb.Booster,
        severe_booster: lgb.Booster,
        metadata: Mapping[str, Any],
        num_threads: int = 1,
    ) -> None:
        if list(metadata["features"]) != list(FEATURES):
            raise ValueError("model features differ from this code's feature encoding; retrain the model")
        self.booster = booster
        self.severe_booster = severe_booster
        self.metadata = dict(metadata)
        self.name: str = metadata.get("name", "eclo")
        self.kind: str = metadata.get("kind", "eclo")
        self.version: str = metadata["version"]
        self.encoder = FeatureEncoder(
            metadata["vocabularies"],
            TargetStats.from_dict(metadata["target_stats"]),
            AreaProfile.from_dict(metadata["area_profile"]),
        )
        severe = metadata["severe"]
        self.calibration = PlattScaling.from_dict(severe["calibration"])
        self.base_rate = float(severe["base_rate"])
        self._predict_kwargs = {"num_threads": num_threads}
        self._single = SingleRowPredictor(booster, len(FEATURES))
        self._single_severe = SingleRowPredictor(severe_booster, len(FEATURES))
        groups = sorted({source for sources in FEATURE_SOURCES.values() for source in sources})
        self._groups = groups
        # Sums LightGBM's per-feature contributions into the API fields each feature comes from.
        self._group_matrix = np.zeros((len(FEATURES) + 1, len(groups)))
        for i, feature in enumerate(FEATURES):
            sources = FEATURE_SOURCES[feature]
            for source in sources:
                self._group_matrix[i, groups.index(source)] = 1.0 / len(sources)
        try:
            self._shap_tables: TreeShapTables | None = TreeShapTables(booster, self._group_matrix)
        except TooDeep:  # deeper trees than this project trains: LightGBM's TreeSHAP, several times slower a row
            self._shap_tables = None

    @classmethod
    def load(cls, model_dir: Path, num_threads: int = 1) -> EcloModel:
        metadata = read_metadata(model_dir)
        files = (metadata.get("model_file", MODEL_FILE), metadata.get("severe_model_file", SEVERE_MODEL_FILE))
        booster, severe = load_boosters(model_dir, metadata, *files)
        load_holidays()
        return cls(booster, severe, metadata, num_threads=num_threads)

    def allowed_values(self) -> dict[str, list[str]]:
        return self.encoder.allowed_values()

    def encode(self, row: Mapping[str, Any]) -> EncodedRow:
        return self.encoder.encode(row)

    def validate(self, row: Mapping[str, Any]) -> None:
        self.encoder.check(row)

    def _prediction(
        self, raw: float, margin: float, notes: tuple[str, ...], by_field: np.ndarray | None
    ) -> EcloPrediction:
        """`by_field`: the row's SHAP values summed by input field, when it is explained."""
        eclo = max(0.0, math.expm1(raw))
        p_severe = self.calibration.apply_one(margin)
        relative = p_severe / self.base_rate
        explanation = None
        if by_field is not None:
            top = np.argsort(-np.abs(by_field))[:EXPLANATION_SIZE]
            explanation = tuple(Contribution(self._groups[i], float(by_field[i])) for i in top)
        return EcloPrediction(eclo, p_severe, relative, risk_level(relative), self.version, notes, explanation)

    def predict_one(self, row: Mapping[str, Any], explain: bool = True) -> EcloPrediction:
        """One row, no DataFrame: encode to a float array and call each booster once."""
        return self.predict_encoded(self.encode(row), explain)

    def predict_encoded(self, encoded: EncodedRow, explain: bool = True) -> EcloPrediction:
        """One row already encoded by `encode`, through LightGBM's single-row fast path."""
        features = encoded.features
        by_field = self.explain_encoded(features) if explain else None
        return self._prediction(
            self._single.raw(features), self._single_severe.margin(features), encoded.notes, by_field
        )

    def explain_encoded(self, features: np.ndarray) -> np.ndarray:
        """One encoded row's SHAP values (log1p(ECLO) units) summed by input field, in `self._groups` order."""
        if self._shap_tables is not None:
            return self._shap_tables.contributions(features)
        return self._single.contributions(features) @ self._group_matrix

    def score_matrix(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log1p(ECLO) and the severe-outcome margin of every row of an encoded matrix, in one call each (equal
        to the single-row path: the same trees, the same float64 sums)."""
        return (
            self.booster.predict(X, **self._predict_kwargs),
            self.severe_booster.predict(X, raw_score=True, **self._predict_kwargs),
        )

    def predict_many(
        self, rows: Sequence[Mapping[str, Any]], explain: bool = False
    ) -> list[EcloPrediction | InvalidRow]:
        """Every valid row scored in one booster call; every invalid row answered by its InvalidRow (index set)."""
        outcomes: list[EcloPrediction | InvalidRow | None] = [None] * len(rows)
        valid: list[int] = []
        encoded: list[EncodedRow] = []
        for index, row in enumerate(rows):
            try:
                encoded.append(self.encode(row))
                valid.append(index)
            except InvalidRow as exc:
                exc.index = index
                outcomes[index] = exc
        if encoded:
            X = np.vstack([e.features for e in encoded])
            raws, margins = self.score_matrix(X)
            for k, index in enumerate(valid):
                # Explained row by row as a single answer is (the same values): the TreeSHAP tables cost less a
                # row than LightGBM's TreeSHAP over the matrix.
                by_field = self.explain_encoded(encoded[k].features) if explain else None
                outcomes[index] = self._prediction(float(raws[k]), float(margins[k]), encoded[k].notes, by_field)
        return outcomes  # type: ignore[return-value]  # every slot is filled

    def info(self) -> dict[str, Any]:
        """What a client needs to know of this model: identity, metrics and the values it accepts."""
        m = self.metadata
        temporal = m.get("temporal")
        summary = None
        if temporal:
            eclo, severe = temporal["eclo"], temporal["severe"]
            first, last = temporal["test_years"]
            summary = (
                f"held-out {first}-{last}: ECLO RMSLE {eclo['rmsle']:.4f} (ratio "
                f"{eclo['ratio_to_training_mean']:.3f} to the training mean); severe outcome AUC "
                f"{severe['auc']:.3f}, Brier {severe['brier']:.4f} vs constant {severe['brier_constant']:.4f}"
            )
        elif m.get("cv_rmsle") is not None:
            summary = (f"CV RMSLE {m['cv_rmsle']:.4f} vs constant {m['baseline_constant_rmsle']:.4f} "
                       f"(ratio {m['cv_to_baseline_ratio']:.3f})")  # fmt: skip
        return {
            **{k: self.metadata.get(k) for k in IDENTITY_KEYS},
            "summary": summary,
            "metrics": {
                k: self.metadata.get(k)
                for k in ("cv_rmsle", "baseline_constant_rmsle", "cv_to_baseline_ratio", "cv_folds")
            },
            "evaluation": {"cv": m.get("cv"), "temporal": temporal},
            "severe": {"base_rate": self.base_rate, "calibrated_on": m["severe"].get("calibrated_on")},
            "features": list(FEATURES),
            "input_fields": [f.to_dict() for f in INPUT_FIELDS],
            "allowed_values": self.allowed_values(),
            "risk_levels": RISK_LEVELS,
            "risk_levels_of": "relative_risk",
        }
