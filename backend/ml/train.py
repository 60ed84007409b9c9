"""Training command: `python -m backend.ml.train eclo|congestion ...` (see --help of each).

`eclo --data PATH.csv --out model/eclo`:
Without `--data` it trains on the seeded synthetic Dacon set. LightGBM with native categorical features on
log1p(ECLO), K-fold CV reporting RMSLE against a constant baseline on the same folds, early stopping, then a
final fit on all rows with the mean best iteration count.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from backend.ml.artifacts import METADATA_FILE, MODEL_FILE, file_version, write_json_atomic
from backend.ml.dacon import ParseReport, load_dacon_csv, parse_dacon_frame
from backend.ml.datagen import generate_dacon_frame
from backend.ml.errors import DataFileError
from backend.ml.features import (
    CATEGORICAL_FEATURES,
    FEATURE_INDEX,
    FEATURES,
    FINE_FEATURES,
    FeatureEncoder,
    ParsedRow,
    TargetStat,
    apply_target_stats,
    fit_target_stats,
    learn_vocabularies,
)
from backend.ml.predictor import RISK_LEVELS

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "metric": "rmse",
    # Shallow trees: as accurate here as 31 leaves, and TreeSHAP explanations cost ~8x less per request.
    "learning_rate": 0.2,
    "num_leaves": 8,
    "max_depth": 3,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 20.0,
    "cat_l2": 10.0,
    "min_data_per_group": 50,
    "max_cat_threshold": 32,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 100
INNER_FOLDS = 5
COARSE_SHARE = 0.25


@dataclass
class TrainResult:
    booster: lgb.Booster
    metadata: dict[str, Any]


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _kfold(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, k)
    return [(np.concatenate(parts[:i] + parts[i + 1 :]), parts[i]) for i in range(k)]


def _coarsen(X: np.ndarray, seed: int, share: float = COARSE_SHARE) -> np.ndarray:
    """Blank the fine features (동, road minor class) on a share of rows: callers may give a district as 구/군
    only or a road type as its major class, and the model must have learned what to do then."""
    X = X.copy()
    rng = np.random.default_rng(seed)
    for feature in FINE_FEATURES:
        X[rng.random(len(X)) < share, FEATURE_INDEX[feature]] = np.nan
    return X


def _with_target_stats(
    X: np.ndarray, y: np.ndarray, vocabularies: dict[str, list[str]], seed: int
) -> tuple[np.ndarray, dict[str, TargetStat]]:
    """Out-of-fold statistics for the training rows (none sees its own target), and the full-data stats."""
    X = X.copy()
    for fit_idx, apply_idx in _kfold(len(X), INNER_FOLDS, seed):
        stats = fit_target_stats(X[fit_idx], y[fit_idx], vocabularies)
        part = X[apply_idx]
        apply_target_stats(part, stats, vocabularies)
        X[apply_idx] = part
    return X, fit_target_stats(X, y, vocabularies)


def _dataset(X: np.ndarray, y: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
    return lgb.Dataset(
        X,
        label=y,
        feature_name=list(FEATURES),
        categorical_feature=list(range(len(CATEGORICAL_FEATURES))),
        reference=reference,
        free_raw_data=False,
    )


def train_eclo(
    rows: Sequence[ParsedRow],
    eclo: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 42,
    params: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    if len(rows) < folds * 10:
        raise DataFileError(f"too few usable rows to train with {folds} folds: {len(rows)}")
    params = {**DEFAULT_PARAMS, "seed": seed, **(params or {})}
    vocabularies = learn_vocabularies(rows)
    encoder = FeatureEncoder(vocabularies)
    X = np.vstack([encoder.vectorize(row) for row in rows])
    y = np.log1p(eclo)

    fold_scores: list[float] = []
    baseline_scores: list[float] = []
    best_iterations: list[int] = []
    for number, (train_idx, valid_idx) in enumerate(_kfold(len(X), folds, seed), start=1):
        started = time.perf_counter()
        X_train, stats = _with_target_stats(
            _coarsen(X[train_idx], seed + number), y[train_idx], vocabularies, seed + number
        )
        X_valid = X[valid_idx].copy()
        apply_target_stats(X_valid, stats, vocabularies)
        train_set = _dataset(X_train, y[train_idx])
        valid_set = _dataset(X_valid, y[valid_idx], reference=train_set)
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=MAX_ROUNDS,
            valid_sets=[valid_set],
            callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
        )
        predicted = booster.predict(X_valid, num_iteration=booster.best_iteration)
        fold_scores.append(_rmse(predicted, y[valid_idx]))
        baseline_scores.append(_rmse(np.full(len(valid_idx), y[train_idx].mean()), y[valid_idx]))
        best_iterations.append(int(booster.best_iteration))
        log(
            f"fold {number}/{folds}: rmsle {fold_scores[-1]:.4f} "
            f"(constant baseline {baseline_scores[-1]:.4f}), "
            f"best iteration {best_iterations[-1]}, {time.perf_counter() - started:.1f}s"
        )

    rounds = max(1, int(round(np.mean(best_iterations) * 1.1)))
    X_all, stats = _with_target_stats(_coarsen(X, seed), y, vocabularies, seed)
    final = lgb.train(params, _dataset(X_all, y), num_boost_round=rounds)
    cv_rmsle, baseline = float(np.mean(fold_scores)), float(np.mean(baseline_scores))
    log(f"final fit: {len(X)} rows, {rounds} trees; cv rmsle {cv_rmsle:.4f}, ratio {cv_rmsle / baseline:.4f}")
    metadata = {
        "name": "eclo",
        "kind": "eclo",
        "target": "log1p(ECLO)",
        "rows": len(X),
        "cv_folds": folds,
        "cv_rmsle": round(cv_rmsle, 6),
        "cv_rmsle_folds": [round(s, 6) for s in fold_scores],
        "baseline_constant_rmsle": round(baseline, 6),
        "cv_to_baseline_ratio": round(cv_rmsle / baseline, 6),
        "best_iterations": best_iterations,
        "num_trees": rounds,
        "features": list(FEATURES),
        "categorical_features": list(CATEGORICAL_FEATURES),
        "vocabularies": vocabularies,
        "target_stats": {name: stat.to_dict() for name, stat in stats.items()},
        "risk_levels": RISK_LEVELS,
        "params": params,
        "seed": seed,
        "lightgbm_version": lgb.__version__,
    }
    return TrainResult(final, metadata)


def save_artifacts(result: TrainResult, out: Path, data_source: str, report: ParseReport) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    tmp = out / (MODEL_FILE + ".tmp")
    result.booster.save_model(str(tmp))
    tmp.replace(model_path)
    metadata = {
        **result.metadata,
        "version": file_version(model_path),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_source": data_source,
        "parse_report": report.to_dict(),
        "model_file": MODEL_FILE,
    }
    write_json_atomic(out / METADATA_FILE, metadata)
    return metadata


def _train_eclo_command(args: argparse.Namespace) -> int:
    if args.data:
        rows, eclo, report = load_dacon_csv(args.data)
        source = str(Path(args.data).resolve())
    else:
        print(f"no --data: generating the synthetic Dacon set ({args.rows} rows, seed {args.seed})")
        rows, eclo, report = parse_dacon_frame(generate_dacon_frame(args.rows, args.seed).astype(str))
        source = f"synthetic:rows={args.rows},seed={args.seed}"
    print(f"read {report.total_rows} rows: {report.summary()}")
    result = train_eclo(rows, eclo, folds=args.folds, seed=args.seed)
    metadata = save_artifacts(result, Path(args.out), source, report)
    print(
        f"saved {args.out}: version {metadata['version']}, cv_rmsle {metadata['cv_rmsle']:.4f}, "
        f"baseline_constant_rmsle {metadata['baseline_constant_rmsle']:.4f}, "
        f"ratio {metadata['cv_to_baseline_ratio']:.4f}"
    )
    return 0


def _train_congestion_command(args: argparse.Namespace) -> int:
    from backend.ml.congestion import loaders
    from backend.ml.congestion.artifacts import save_congestion
    from backend.ml.congestion.network import generate_network
    from backend.ml.congestion.training import format_table, train_congestion

    if args.speeds:
        frame = loaders.read_speeds(args.speeds)
        if not args.sensors:
            raise DataFileError("--sensors is needed with --speeds (sensor_id, latitude, longitude)")
        sensors = loaders.read_sensors(args.sensors)
        loaders.check_sensors(frame, sensors, where=str(args.speeds))
        source = str(Path(args.speeds).resolve())
        edges = loaders.read_edges(args.edges) if args.edges else None
    else:
        print(f"no --speeds: generating a network ({args.weeks} weeks of 207 sensors, seed {args.seed})")
        network = generate_network(weeks=args.weeks, seed=args.seed)
        frame, sensors, edges = network.speeds, network.sensors, network.edges
        source = f"generated:weeks={args.weeks},seed={args.seed}"
    ids = list(frame.columns)
    if edges is not None:
        neighbours = loaders.neighbours_from_edges(edges, ids)
    else:
        neighbours = loaders.neighbours_by_distance(sensors[sensors.sensor_id.isin(ids)].reset_index(drop=True))
    print(f"read {len(frame)} five-minute steps x {len(ids)} sensors ({frame.index[0]} to {frame.index[-1]}); "
          f"missing readings {(frame.to_numpy() <= 0).mean():.1%}")  # fmt: skip
    result = train_congestion(frame, neighbours, seed=args.seed)
    print(format_table(result.table))
    metadata = save_congestion(result, Path(args.out), frame=frame, sensors=sensors, neighbours=neighbours,
                               data_source=source)  # fmt: skip
    print(f"saved {args.out}: version {metadata['version']}, {metadata['num_trees']} trees")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.ml.train", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="model", required=True)
    eclo = commands.add_parser("eclo", help="train the ECLO accident-severity model")
    eclo.add_argument("--data", help="a CSV in the Dacon train.csv layout (UTF-8, UTF-8 with BOM or CP949)")
    eclo.add_argument("--out", default="model/eclo", help="artifact folder (default: model/eclo)")
    eclo.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    eclo.add_argument("--seed", type=int, default=42)
    eclo.add_argument("--rows", type=int, default=40_000, help="rows of the synthetic set when --data is omitted")
    congestion = commands.add_parser("congestion", help="train the road-congestion model (METR-LA layout)")
    congestion.add_argument("--speeds", help="wide speed table: CSV, .csv.gz or .h5 (no --speeds: generate)")
    congestion.add_argument("--sensors", help="sensor table: sensor_id, latitude, longitude (header optional)")
    congestion.add_argument("--edges", help="edge list from_sensor, to_sensor, weight (else k nearest sensors)")
    congestion.add_argument("--out", default="model/congestion", help="artifact folder (default: model/congestion)")
    congestion.add_argument("--weeks", type=int, default=8, help="weeks of the generated network (no --speeds)")
    congestion.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    try:
        return _train_eclo_command(args) if args.model == "eclo" else _train_congestion_command(args)
    except (DataFileError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
