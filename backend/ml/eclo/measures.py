"""Accuracy measures of the ECLO model, shared by training (K-fold and held-out years) and `evaluate`.

ECLO is judged by RMSLE against two constants: the training mean of log1p(ECLO), and the mean of the last
training year (severity drifts down over the years, so the first flatters a model). The severe-outcome
probability is judged by AUC, the Brier score against a constant rate, and a calibration table by decile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(actual)) ** 2)))


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); NaN with one class only."""
    label = np.asarray(label) > 0.5
    positives, negatives = int(label.sum()), int((~label).sum())
    if not positives or not negatives:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = np.asarray(score)[order]
    # Average ranks over ties.
    _, starts, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = starts + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[label].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def brier(probability: np.ndarray, label: np.ndarray) -> float:
    return float(np.mean((np.asarray(probability) - np.asarray(label)) ** 2))


def calibration_table(probability: np.ndarray, label: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Predicted against observed severe-outcome rate by decile of the predicted probability."""
    probability, label = np.asarray(probability), np.asarray(label)
    order = np.argsort(probability, kind="mergesort")
    table = []
    for number, part in enumerate(np.array_split(order, bins), start=1):
        if len(part):
            table.append({
                "decile": number,
                "rows": len(part),
                "predicted": round(float(probability[part].mean()), 6),
                "observed": round(float(label[part].mean()), 6),
            })  # fmt: skip
    return table


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class PlattScaling:
    """p = sigmoid(slope * margin + intercept): the classifier's raw margin mapped to a calibrated probability."""

    slope: float
    intercept: float

    def apply(self, margin: np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * np.asarray(margin, dtype=np.float64) + self.intercept)

    def apply_one(self, margin: float) -> float:
        z = self.slope * margin + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z >= -700 else 0.0

    @classmethod
    def fit(cls, margin: np.ndarray, label: np.ndarray, iterations: int = 50) -> PlattScaling:
        """Maximum likelihood by Newton's method (two parameters, so a few thousand rows are plenty)."""
        x = np.asarray(margin, dtype=np.float64)
        y = np.asarray(label, dtype=np.float64)
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        w = np.array([1.0, math.log(rate / (1 - rate)) - float(x.mean())])
        design = np.column_stack([x, np.ones_like(x)])
        for _ in range(iterations):
            p = _sigmoid(design @ w)
            gradient = design.T @ (p - y)
            hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if np.abs(step).max() < 1e-10:
                break
        return cls(float(w[0]), float(w[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlattScaling:
        return cls(float(data["slope"]), float(data["intercept"]))


def cross_fitted_probabilities(margin: np.ndarray, label: np.ndarray, seed: int) -> np.ndarray:
    """Calibrated probabilities where no row's calibration saw that row: scaling fitted on one half, applied to
    the other, and the other way round."""
    halves = np.array_split(np.random.default_rng(seed).permutation(len(margin)), 2)
    out = np.empty(len(margin), dtype=np.float64)
    for fit, apply in ((halves[0], halves[1]), (halves[1], halves[0])):
        out[apply] = PlattScaling.fit(margin[fit], label[fit]).apply(margin[apply])
    return out


@dataclass(frozen=True)
class Constants:
    """The constant predictions a model is compared with, taken from its training data."""

    mean_log_eclo: float  # mean of log1p(ECLO) over the training rows
    last_year: int
    last_year_mean_log_eclo: float
    severe_rate: float  # share of training rows with a severe outcome
    last_year_severe_rate: float

    @classmethod
    def of(cls, log_eclo: np.ndarray, years: np.ndarray, severe: np.ndarray) -> Constants:
        last = int(years.max())
        return cls(
            mean_log_eclo=float(log_eclo.mean()),
            last_year=last,
            last_year_mean_log_eclo=float(log_eclo[years == last].mean()),
            severe_rate=float(np.nanmean(severe)),
            last_year_severe_rate=float(np.nanmean(severe[years == last])),
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: round(value, 6) if isinstance(value, float) else value for name, value in vars(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Constants:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def eclo_measures(predicted_log: np.ndarray, actual_log: np.ndarray, constants: Constants) -> dict[str, Any]:
    """RMSLE of the model and of the two constants on the same rows, and the model's ratio to each."""
    model = rmse(predicted_log, actual_log)
    training_mean = rmse(np.full(len(actual_log), constants.mean_log_eclo), actual_log)
    last_year = rmse(np.full(len(actual_log), constants.last_year_mean_log_eclo), actual_log)
    return {
        "rows": len(actual_log),
        "rmsle": round(model, 6),
        "constant_training_mean_rmsle": round(training_mean, 6),
        "ratio_to_training_mean": round(model / training_mean, 6),
        "constant_last_year_rmsle": round(last_year, 6),
        "ratio_to_last_year": round(model / last_year, 6),
    }


def severe_measures(probability: np.ndarray, label: np.ndarray, constants: Constants) -> dict[str, Any]:
    """AUC, Brier score against the training rate as a constant, observed rate and the calibration table."""
    known = ~np.isnan(label)
    probability, label = probability[known], label[known]
    if not len(label):
        return {"rows": 0}
    return {
        "rows": int(len(label)),
        "observed_rate": round(float(label.mean()), 6),
        "mean_predicted": round(float(probability.mean()), 6),
        "auc": round(auc(probability, label), 6),
        "brier": round(brier(probability, label), 6),
        "brier_constant": round(brier(np.full(len(label), constants.severe_rate), label), 6),
        "brier_constant_last_year": round(brier(np.full(len(label), constants.last_year_severe_rate), label), 6),
        "calibration": calibration_table(probability, label),
    }


def describe(eclo: Mapping[str, Any] | None, severe: Mapping[str, Any] | None) -> list[str]:
    """The measures as the training and evaluation commands print them."""
    lines = []
    if eclo:
        lines.append(
            f"ECLO rmsle {eclo['rmsle']:.4f}; constant (training mean) {eclo['constant_training_mean_rmsle']:.4f}, "
            f"ratio {eclo['ratio_to_training_mean']:.4f}; constant (last training year) "
            f"{eclo['constant_last_year_rmsle']:.4f}, ratio {eclo['ratio_to_last_year']:.4f}"
        )
    if severe and severe.get("rows"):
        lines.append(
            f"severe outcome: auc {severe['auc']:.4f}; brier {severe['brier']:.5f}, constant (training rate) "
            f"{severe['brier_constant']:.5f}, constant (last training year) {severe['brier_constant_last_year']:.5f}; "
            f"observed rate {severe['observed_rate']:.4f}, mean predicted {severe['mean_predicted']:.4f}"
        )
        lines.extend(
            f"  decile {row['decile']:2d}: predicted {row['predicted']:.3f}  observed {row['observed']:.3f}"
            for row in severe["calibration"]
        )
    return lines
