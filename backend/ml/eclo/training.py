"""Training the ECLO models: two LightGBM models on the same features, log1p(ECLO) and the chance of a severe
outcome (a death or a serious injury). K-fold CV (rounds by early stopping) and, with `holdout_from_year`,
training on the earlier years and evaluating on the later ones; then a final fit on all rows. The severe-outcome
probability is Platt-calibrated on the held-out years (else on out-of-fold margins)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from backend.ml.artifacts import METADATA_FILE, MODEL_FILE, file_version, write_json_atomic
from backend.ml.eclo.dacon import LabelledRows, ParseReport
from backend.ml.eclo.features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    EncodingKeys,
    FeatureEncoder,
    ParsedRow,
    coarsened,
    fit_area_profile,
    fit_target_stats,
    learn_vocabularies,
)
from backend.ml.eclo.measures import (
    Constants,
    PlattScaling,
    auc,
    cross_fitted_probabilities,
    describe,
    eclo_measures,
    severe_measures,
)
from backend.ml.eclo.model import RISK_LEVELS, SEVERE_MODEL_FILE
from backend.ml.errors import DataFileError, InvalidRow

PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    # Shallow trees: as accurate on this data as 31 leaves, and TreeSHAP explanations cost several times less.
    "num_leaves": 8,
    "max_depth": 3,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "cat_smooth": 20.0,
    "cat_l2": 10.0,
    "min_data_per_group": 100,
    "max_cat_threshold": 32,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
REGRESSION: dict[str, Any] = {"objective": "regression", "metric": "rmse"}
CLASSIFICATION: dict[str, Any] = {"objective": "binary", "metric": "binary_logloss"}
MAX_ROUNDS = 3000
EARLY_STOPPING_ROUNDS = 100
INNER_FOLDS = 5
COARSE_SHARE = 0.25


@dataclass
class TrainResult:
    regressor: lgb.Booster
    classifier: lgb.Booster
    metadata: dict[str, Any]


def _kfold(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, k)
    return [(np.sort(np.concatenate(parts[:i] + parts[i + 1 :])), np.sort(parts[i])) for i in range(k)]


def _shown_rows(rows: Sequence[ParsedRow], seed: int, share: float = COARSE_SHARE) -> list[ParsedRow]:
    """The rows as callers send them: some give a district as 구/군 only or a road type as its major class, so
    training blanks 동 and the road minor class on a share of rows and the model learns what to do then."""
    rng = np.random.default_rng(seed)
    no_dong, no_minor = rng.random(len(rows)) < share, rng.random(len(rows)) < share
    return [coarsened(r, bool(d), bool(m)) for r, d, m in zip(rows, no_dong, no_minor, strict=True)]


def training_matrix(
    rows: Sequence[ParsedRow], log_eclo: np.ndarray, vocabularies: dict[str, list[str]], seed: int
) -> tuple[np.ndarray, FeatureEncoder]:
    """The feature matrix of training rows, whose target statistics are out-of-fold (no row's statistics include
    its own target), and the encoder of the full training data that serving uses."""
    keys = EncodingKeys(rows)
    profile = fit_area_profile(rows)
    shown = _shown_rows(rows, seed)
    X = np.empty((len(rows), len(FEATURES)), dtype=np.float64)
    for fit_idx, apply_idx in _kfold(len(rows), INNER_FOLDS, seed):
        encoder = FeatureEncoder(vocabularies, fit_target_stats(keys, log_eclo, fit_idx), profile)
        for i in apply_idx:
            X[i] = encoder.vectorize(shown[i]).features
    return X, FeatureEncoder(vocabularies, fit_target_stats(keys, log_eclo), profile)


def _dataset(X: np.ndarray, y: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
    return lgb.Dataset(
        X,
        label=y,
        feature_name=list(FEATURES),
        categorical_feature=list(range(len(CATEGORICAL_FEATURES))),
        reference=reference,
        free_raw_data=False,
    )


def _booster(params: dict[str, Any], X: np.ndarray, y: np.ndarray, rounds: int) -> lgb.Booster:
    return lgb.train(params, _dataset(X, y), num_boost_round=rounds)


def _early_stopped(params: dict[str, Any], X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray) -> lgb.Booster:
    train_set = _dataset(X, y)
    return lgb.train(
        params,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[_dataset(Xv, yv, reference=train_set)],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )


@dataclass
class Encoded:
    """Rows vectorized by a trained encoder as serving would: refused rows dropped, coarsened 동 counted."""

    X: np.ndarray
    kept: np.ndarray
    coarsened: int
    refused: dict[str, int]


def encode_for_scoring(encoder: FeatureEncoder, rows: Sequence[ParsedRow]) -> Encoded:
    features: list[np.ndarray] = []
    kept: list[int] = []
    refused: dict[str, int] = {}
    notes = 0
    for i, row in enumerate(rows):
        try:
            encoded = encoder.vectorize(row)
        except InvalidRow as exc:
            for error in exc.errors:
                refused[error.field] = refused.get(error.field, 0) + 1
            continue
        features.append(encoded.features)
        kept.append(i)
        notes += bool(encoded.notes)
    X = np.vstack(features) if features else np.empty((0, len(FEATURES)))
    return Encoded(X, np.asarray(kept, dtype=np.int64), notes, refused)


@dataclass
class _Fit:
    regressor: lgb.Booster
    classifier: lgb.Booster
    encoder: FeatureEncoder


def _fit(data: LabelledRows, params: dict[str, Any], rounds: tuple[int, int], seed: int) -> _Fit:
    vocabularies = learn_vocabularies(data.rows)
    log_eclo = np.log1p(data.eclo)
    X, encoder = training_matrix(data.rows, log_eclo, vocabularies, seed)
    regressor = _booster({**params, **REGRESSION}, X, log_eclo, rounds[0])
    classifier = _booster({**params, **CLASSIFICATION}, X, data.severe, rounds[1])
    return _Fit(regressor, classifier, encoder)


def _cross_validate(
    data: LabelledRows, folds: int, seed: int, params: dict[str, Any], log: Callable[[str], None]
) -> tuple[dict[str, Any], tuple[int, int], np.ndarray]:
    """K-fold CV (shuffled across years): RMSLE against the training-fold constant, AUC, the rounds to train
    with, and every row's out-of-fold classifier margin."""
    log_eclo = np.log1p(data.eclo)
    margins = np.full(len(data.rows), np.nan)
    scores, constants, last_year_constants, aucs, best = [], [], [], [], []
    for number, (train_idx, valid_idx) in enumerate(_kfold(len(data.rows), folds, seed), start=1):
        started = time.perf_counter()
        train = data.subset(train_idx)
        X, encoder = training_matrix(train.rows, log_eclo[train_idx], learn_vocabularies(train.rows), seed + number)
        scored = encode_for_scoring(encoder, [data.rows[i] for i in valid_idx])
        Xv, valid_idx = scored.X, valid_idx[scored.kept]
        regressor = _early_stopped({**params, **REGRESSION}, X, log_eclo[train_idx], Xv, log_eclo[valid_idx])
        classifier = _early_stopped({**params, **CLASSIFICATION}, X, train.severe, Xv, data.severe[valid_idx])
        predicted = regressor.predict(Xv, num_iteration=regressor.best_iteration)
        margins[valid_idx] = classifier.predict(Xv, num_iteration=classifier.best_iteration, raw_score=True)
        measured = eclo_measures(predicted, log_eclo[valid_idx],
                                 Constants.of(log_eclo[train_idx], train.years, train.severe))  # fmt: skip
        scores.append(measured["rmsle"])
        constants.append(measured["constant_training_mean_rmsle"])
        last_year_constants.append(measured["constant_last_year_rmsle"])
        aucs.append(auc(margins[valid_idx], data.severe[valid_idx]))
        best.append((int(regressor.best_iteration), int(classifier.best_iteration)))
        log(f"fold {number}/{folds}: rmsle {scores[-1]:.4f} (constants: training mean {constants[-1]:.4f}, last "
            f"year {last_year_constants[-1]:.4f}), severe auc "
            f"{aucs[-1]:.4f}, best iterations {best[-1]}, {time.perf_counter() - started:.1f}s")  # fmt: skip
    rounds = tuple(max(1, int(round(np.mean([b[k] for b in best]) * 1.1))) for k in (0, 1))
    cv = {
        "folds": folds,
        "rmsle": round(float(np.mean(scores)), 6),
        "rmsle_folds": [round(s, 6) for s in scores],
        "constant_rmsle": round(float(np.mean(constants)), 6),
        "ratio": round(float(np.mean(scores) / np.mean(constants)), 6),
        "constant_last_year_rmsle": round(float(np.mean(last_year_constants)), 6),
        "ratio_to_last_year": round(float(np.mean(scores) / np.mean(last_year_constants)), 6),
        "severe_auc": round(float(np.mean(aucs)), 6),
        "best_iterations": best,
    }
    return cv, rounds, margins  # type: ignore[return-value]


def _temporal(
    data: LabelledRows, year: int, folds: int, seed: int, params: dict[str, Any], log: Callable[[str], None]
) -> tuple[dict[str, Any], tuple[int, int], PlattScaling]:
    """Train on the years before `year` (rounds from K-fold CV inside them), evaluate on `year` and later the way
    serving would answer them; the severe-outcome calibration is fitted on those held-out years."""
    years = data.years
    past, future = data.subset(np.flatnonzero(years < year)), data.subset(np.flatnonzero(years >= year))
    if len(past.rows) < folds * 10 or not len(future.rows):
        raise DataFileError(f"--holdout-from-year {year}: {len(past.rows)} rows before it and "
                            f"{len(future.rows)} from it; both sides need rows")  # fmt: skip
    past_years = past.years
    first, last_trained, last = int(past_years.min()), int(past_years.max()), int(years.max())
    log(f"temporal: training on {first}-{last_trained} ({len(past.rows)} rows), "
        f"evaluating on {year}-{last} ({len(future.rows)} rows)")  # fmt: skip
    cv, rounds, _ = _cross_validate(past, folds, seed, params, log)
    fitted = _fit(past, params, rounds, seed)
    encoded = encode_for_scoring(fitted.encoder, future.rows)
    constants = Constants.of(np.log1p(past.eclo), past_years, past.severe)
    actual_log = np.log1p(future.eclo[encoded.kept])
    severe = future.severe[encoded.kept]
    margins = fitted.classifier.predict(encoded.X, raw_score=True)
    calibration = PlattScaling.fit(margins, severe)
    report = {
        "holdout_from_year": year,
        "train_years": [first, last_trained],
        "test_years": [year, last],
        "train_rows": len(past.rows),
        "test_rows": len(future.rows),
        "test_rows_refused": dict(encoded.refused),
        "test_rows_coarsened": encoded.coarsened,
        "constants": constants.to_dict(),
        "eclo": eclo_measures(fitted.regressor.predict(encoded.X), actual_log, constants),
        "severe": severe_measures(cross_fitted_probabilities(margins, severe, seed), severe, constants),
        "calibration_note": "Platt scaling cross-fitted on the held-out years (each half calibrated by the other)",
        "cv_on_training_years": cv,
    }
    return report, rounds, calibration


def train_eclo(
    data: LabelledRows,
    *,
    folds: int = 5,
    seed: int = 42,
    holdout_from_year: int | None = None,
    params: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """K-fold CV over all rows and, with `holdout_from_year`, a temporal evaluation; then the served models,
    fitted on every row. The severe-outcome probability is calibrated on the held-out years when there are
    some, else on the K-fold out-of-fold margins."""
    if len(data.rows) < folds * 10:
        raise DataFileError(f"too few usable rows to train with {folds} folds: {len(data.rows)}")
    if np.isnan(data.severe).any():
        raise DataFileError("training needs the death and serious-injury counts (사망자수, 중상자수) on every row")
    params = {**PARAMS, "seed": seed, **(params or {})}
    temporal = None
    if holdout_from_year is not None:
        temporal, rounds, calibration = _temporal(data, holdout_from_year, folds, seed, params, log)
        _log_temporal(temporal, log)
    log(f"k-fold: {folds} folds over all {len(data.rows)} rows")
    cv, cv_rounds, margins = _cross_validate(data, folds, seed, params, log)
    if temporal is None:
        scored = ~np.isnan(margins)
        rounds, calibration = cv_rounds, PlattScaling.fit(margins[scored], data.severe[scored])
    fitted = _fit(data, params, rounds, seed)
    constants = Constants.of(np.log1p(data.eclo), data.years, data.severe)
    if temporal is not None:
        base_rate = temporal["severe"]["observed_rate"]
    else:
        base_rate = float(data.severe[data.years == constants.last_year].mean())
    log(f"final fit: {len(data.rows)} rows, {rounds[0]} + {rounds[1]} trees; k-fold rmsle {cv['rmsle']:.4f}, "
        f"ratio {cv['ratio']:.4f} to the training mean, {cv['ratio_to_last_year']:.4f} to the last training "
        f"year's; severe auc {cv['severe_auc']:.4f}")  # fmt: skip
    encoder = fitted.encoder
    assert encoder.target_stats is not None and encoder.area_profile is not None
    metadata = {
        "name": "eclo",
        "kind": "eclo",
        "target": "log1p(ECLO); severe outcome (a death or a serious injury)",
        "rows": len(data.rows),
        "years": [int(data.years.min()), int(data.years.max())],
        "cv": cv,
        "temporal": temporal,
        # The K-fold figures under their earlier names, for clients that read them.
        "cv_folds": folds,
        "cv_rmsle": cv["rmsle"],
        "baseline_constant_rmsle": cv["constant_rmsle"],
        "cv_to_baseline_ratio": cv["ratio"],
        "constants": constants.to_dict(),
        "severe": {
            # The city's recent rate, not the all-years mean: severity drifted down (51% of 2007's accidents, 33%
            # of 2015's), so the old years would make every accident of today look safer than average.
            "base_rate": round(base_rate, 6),
            "training_rate": round(constants.severe_rate, 6),
            "calibration": calibration.to_dict(),
            "calibrated_on": (
                f"held-out years {temporal['test_years'][0]}-{temporal['test_years'][1]}"
                if temporal
                else "K-fold out-of-fold margins"
            ),  # fmt: skip
        },
        "num_trees": rounds[0],
        "num_trees_severe": rounds[1],
        "features": list(FEATURES),
        "categorical_features": list(CATEGORICAL_FEATURES),
        "vocabularies": encoder.vocabularies,
        "target_stats": encoder.target_stats.to_dict(),
        "area_profile": encoder.area_profile.to_dict(),
        "risk_levels": RISK_LEVELS,
        "params": params,
        "seed": seed,
        "lightgbm_version": lgb.__version__,
    }
    return TrainResult(fitted.regressor, fitted.classifier, metadata)


def _log_temporal(report: dict[str, Any], log: Callable[[str], None]) -> None:
    first, last = report["test_years"]
    refused = report["test_rows_refused"] or "none"
    log(f"held-out {first}-{last} ({report['eclo']['rows']} rows scored; {report['test_rows_coarsened']} with a "
        f"note (a 동 or road class unknown to the model); refused: {refused}):")  # fmt: skip
    for line in describe(report["eclo"], report["severe"]):
        log(f"  {line}")


def save_artifacts(result: TrainResult, out: Path, data_source: str, report: ParseReport) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    for booster, name in ((result.regressor, MODEL_FILE), (result.classifier, SEVERE_MODEL_FILE)):
        tmp = out / (name + ".tmp")
        booster.save_model(str(tmp))
        tmp.replace(out / name)
    metadata = {
        **result.metadata,
        "version": file_version(out / MODEL_FILE, out / SEVERE_MODEL_FILE),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_source": data_source,
        "parse_report": report.to_dict(),
        "model_file": MODEL_FILE,
        "severe_model_file": SEVERE_MODEL_FILE,
    }
    write_json_atomic(out / METADATA_FILE, metadata)
    return metadata
