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
    """How much one input field moved this prediction, in its model's units: log1p(ECLO) for the expected ECLO,
    log-odds (the classifier's raw margin) for the chance of a severe outcome."""

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
    explanation: tuple[Contribution, ...] | None = None  # of log1p(ECLO)
    severe_explanation: tuple[Contribution, ...] | None = None  # of the severe-outcome log-odds (raw margin)

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
            out["explanation"] = _contributions(self.explanation)
        if self.severe_explanation is not None:
            out["severe_explanation"] = _contributions(self.severe_explanation)
        return out


def _contributions(explanation: tuple[Contribution, ...]) -> list[dict[str, Any]]:
    return [{"feature": c.feature, "contribution": c.contribution} for c in explanation]


class _Explainer:
    """One booster's TreeSHAP of one encoded row, summed by input field. `base_value` is LightGBM's bias term (the
    model's expected raw output): it plus the contributions of all fields is the booster's raw score of the row."""

    def __init__(self, booster: lgb.Booster, single: SingleRowPredictor, groups: np.ndarray) -> None:
        self.single = single
        self.groups = groups
        self.base_value = float(booster.predict(np.zeros((1, booster.num_feature())), pred_contrib=True)[0, -1])
        try:
            self.tables: TreeShapTables | None = TreeShapTables(booster, groups)
        except TooDeep:  # deeper trees than this project trains: LightGBM's TreeSHAP, several times slower a row
            self.tables = None

    def contributions(self, features: np.ndarray) -> np.ndarray:
        if self.tables is not None:
            return self.tables.contributions(features)
        return self.single.contributions(features) @ self.groups


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
        self.explanation_fields: tuple[str, ...] = tuple(groups)  # the order of `explain_encoded`'s values
        # Sums LightGBM's per-feature contributions into the API fields each feature comes from.
        self._group_matrix = np.zeros((len(FEATURES) + 1, len(groups)))
        for i, feature in enumerate(FEATURES):
            sources = FEATURE_SOURCES[feature]
            for source in sources:
                self._group_matrix[i, groups.index(source)] = 1.0 / len(sources)
        self._explainer = _Explainer(booster, self._single, self._group_matrix)
        self._severe_explainer = _Explainer(severe_booster, self._single_severe, self._group_matrix)

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

    @property
    def base_value(self) -> float:
        """log1p(ECLO) of no field's effect: plus `explain_encoded(row).sum()`, the regressor's raw score of row."""
        return self._explainer.base_value

    @property
    def severe_base_value(self) -> float:
        """The severe-outcome log-odds of no field's effect: plus `explain_severe_encoded(row).sum()`, the
        classifier's raw margin of row (before the calibration, `p_severe` = sigmoid(slope x margin + intercept))."""
        return self._severe_explainer.base_value

    def _top(self, by_field: np.ndarray) -> tuple[Contribution, ...]:
        top = np.argsort(-np.abs(by_field))[:EXPLANATION_SIZE]
        return tuple(Contribution(self.explanation_fields[i], float(by_field[i])) for i in top)

    def _prediction(
        self, raw: float, margin: float, notes: tuple[str, ...], features: np.ndarray | None
    ) -> EcloPrediction:
        """`features`: the encoded row, when it is explained."""
        eclo = max(0.0, math.expm1(raw))
        p_severe = self.calibration.apply_one(margin)
        relative = p_severe / self.base_rate
        explanation = severe_explanation = None
        if features is not None:
            explanation = self._top(self.explain_encoded(features))
            severe_explanation = self._top(self.explain_severe_encoded(features))
        return EcloPrediction(
            eclo, p_severe, relative, risk_level(relative), self.version, notes, explanation, severe_explanation
        )

    def predict_one(self, row: Mapping[str, Any], explain: bool = True) -> EcloPrediction:
        """One row, no DataFrame: encode to a float array and call each booster once."""
        return self.predict_encoded(self.encode(row), explain)

    def predict_encoded(self, encoded: EncodedRow, explain: bool = True) -> EcloPrediction:
        """One row already encoded by `encode`, through LightGBM's single-row fast path."""
        features = encoded.features
        raw, margin = self._single.raw(features), self._single_severe.margin(features)
        return self._prediction(raw, margin, encoded.notes, features if explain else None)

    def explain_encoded(self, features: np.ndarray) -> np.ndarray:
        """One encoded row's SHAP values (log1p(ECLO) units) summed by input field, every field in
        `explanation_fields` order."""
        return self._explainer.contributions(features)

    def explain_severe_encoded(self, features: np.ndarray) -> np.ndarray:
        """As `explain_encoded`, of the severe-outcome classifier, in log-odds (raw margin) units."""
        return self._severe_explainer.contributions(features)

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
                features = encoded[k].features if explain else None
                outcomes[index] = self._prediction(float(raws[k]), float(margins[k]), encoded[k].notes, features)
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
