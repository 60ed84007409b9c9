"""A new version of the ECLO model, trained from stored rows and compared with the served one (the champion) on the
very same held-out rows.

`train_eclo_version` trains like `train_eclo` with the temporal evaluation (train on the years before
`holdout_from_year`, evaluate on it and later), saves the version with `save_artifacts`, and adds to its metadata
what it was trained on and the comparison. The new version is judged by its held-out fit, the model trained on the
earlier years only (the one `train_eclo`'s temporal figures describe), because the served version is refitted on
every row, the held-out ones included. The champion is judged as serving answers: its own encoder, vocabulary and
calibration; a row either model refuses is left out of both models' figures.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.artifacts import METADATA_FILE, write_json_atomic
from backend.ml.eclo.dacon import (
    FEATURE_COLUMNS,
    INJURY_COLUMNS,
    SEVERE_COLUMNS,
    LabelledRows,
    ParseReport,
    eclo_targets,
    has_eclo_columns,
    parse_dacon_frame,
    severe_targets,
)
from backend.ml.eclo.features import API_FIELDS, REQUIRED_FIELDS, parse_row
from backend.ml.eclo.measures import Constants, auc, brier, cross_fitted_probabilities, eclo_measures
from backend.ml.eclo.model import EcloModel
from backend.ml.eclo.training import _fit, encode_for_scoring, save_artifacts, train_eclo
from backend.ml.errors import DataFileError, InvalidRow

# Below these the boosters (at least 100 rows a leaf) learn next to nothing and the figures are noise.
MIN_TRAINING_ROWS = 1_000  # rows before the held-out year
MIN_HELD_OUT_ROWS = 100  # rows of the held-out years


def load_dataset_rows(path: Path, encoding: str) -> LabelledRows:
    """A stored uploaded accident file as training rows: the Dacon layout or the API's field names, read with the
    codec its upload was checked with (`uploads.FileFormat.encoding`). DataFileError when the file lacks the
    outcome columns (ECLO or the four injury counts, and the death and serious-injury counts) or holds no usable
    row."""
    codec = "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding  # a BOM is not text
    try:
        text = path.read_bytes().decode(codec)
    except LookupError as exc:
        raise DataFileError(f"{path.name}: unknown text encoding {encoding!r}") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path.name}: not {encoding} text (undecodable bytes at offset {exc.start})") from exc
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).rename(columns=lambda c: c.strip())
    columns = set(frame.columns)
    if has_eclo_columns(columns):
        missing = [c for c in SEVERE_COLUMNS if c not in columns]
    else:
        missing = ["ECLO", *(c for c in INJURY_COLUMNS if c not in columns)]
    if missing:
        raise DataFileError(
            f"{path.name} has no outcome columns to train on: it lacks {', '.join(missing)} (training needs ECLO or "
            f"the injury counts {', '.join(INJURY_COLUMNS)}, and the death and serious-injury counts "
            f"{', '.join(SEVERE_COLUMNS)})",
            missing_columns=missing,
        )
    if all(c in columns for c in FEATURE_COLUMNS):
        data = parse_dacon_frame(frame)
    elif all(f in columns for f in REQUIRED_FIELDS):
        data = _parse_api_frame(frame)
    else:
        raise DataFileError(f"{path.name}: neither the Dacon columns ({', '.join(FEATURE_COLUMNS)}) nor the API "
                            f"fields ({', '.join(REQUIRED_FIELDS)})")  # fmt: skip
    if not data.rows:
        raise DataFileError(f"{path.name}: none of its {len(frame)} rows is usable: {data.report.summary()}")
    return data


def _parse_api_frame(frame: pd.DataFrame) -> LabelledRows:
    """`parse_dacon_frame` of a file in the API's field names (an empty cell is an absent field)."""
    report = ParseReport(total_rows=len(frame))
    targets = eclo_targets(frame).to_numpy(dtype=np.float64)
    columns = [f for f in API_FIELDS if f in frame.columns]
    rows, kept = [], []
    for i, values in enumerate(zip(*(frame[c].tolist() for c in columns), strict=True)):
        if not targets[i] >= 0:  # NaN too
            report.add(i + 2, "ECLO is missing or negative")
            continue
        try:
            rows.append(parse_row({c: v.strip() for c, v in zip(columns, values, strict=True) if v.strip()}))
        except InvalidRow as exc:
            report.add(i + 2, "; ".join(f"{e.field}: {e.message}" for e in exc.errors))
            continue
        kept.append(i)
    return LabelledRows(rows, targets[kept], severe_targets(frame).to_numpy(dtype=np.float64)[kept], report)


def check_rows(data: LabelledRows, holdout_from_year: int) -> None:
    """DataFileError naming the numbers when the rows cannot give a version worth comparing."""
    if np.isnan(data.severe).any():
        unknown = int(np.isnan(data.severe).sum())
        raise DataFileError(f"{unknown} of {len(data.rows)} rows lack the death and serious-injury counts "
                            f"({', '.join(SEVERE_COLUMNS)}); training needs them on every row")  # fmt: skip
    years = data.years
    before, after = int((years < holdout_from_year).sum()), int((years >= holdout_from_year).sum())
    if before < MIN_TRAINING_ROWS or after < MIN_HELD_OUT_ROWS:
        span = f"{years.min()}-{years.max()}" if len(years) else "no years"
        raise DataFileError(
            f"too few rows to train and compare a version: {len(data.rows)} usable rows ({span}), {before} before "
            f"{holdout_from_year} (at least {MIN_TRAINING_ROWS:,} are needed) and {after} from {holdout_from_year} "
            f"on (at least {MIN_HELD_OUT_ROWS:,})"
        )


def held_out_model(data: LabelledRows, metadata: dict[str, Any]) -> EcloModel:
    """The model whose held-out figures `metadata["temporal"]` reports (fitted on the years before the held-out
    ones with the served version's tree counts and parameters), rebuilt in memory: training is deterministic, so
    these are the same trees. Its calibration is the served version's (fitted on the held-out years)."""
    temporal = metadata["temporal"]
    past = data.subset(np.flatnonzero(data.years < temporal["holdout_from_year"]))
    fitted = _fit(past, metadata["params"], (metadata["num_trees"], metadata["num_trees_severe"]), metadata["seed"])
    encoder = fitted.encoder
    assert encoder.target_stats is not None and encoder.area_profile is not None
    first, last = temporal["train_years"]
    held_out = {
        **{k: metadata[k] for k in ("name", "kind", "features", "severe")},
        "version": f"{metadata['version']}:held-out",
        "years": [first, last],
        "rows": len(past.rows),
        "constants": temporal["constants"],
        "vocabularies": encoder.vocabularies,
        "target_stats": encoder.target_stats.to_dict(),
        "area_profile": encoder.area_profile.to_dict(),
    }
    return EcloModel(fitted.regressor, fitted.classifier, held_out)


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None  # NaN (one class only) is not JSON


def _figures(
    version: str,
    predicted_log: np.ndarray,
    margin: np.ndarray,
    probability: np.ndarray,
    actual_log: np.ndarray,
    severe: np.ndarray,
    constants: Constants,
    years: list[int],
) -> dict[str, Any]:
    """AUC of the classifier's margin (a ranking: no calibration changes it), Brier of the probability."""
    figures: dict[str, Any] = {"version": version, "trained_years": years, "rows": len(actual_log)}
    if not len(actual_log):  # every held-out row refused by one model or the other: nothing to compare
        return {
            **figures,
            **dict.fromkeys(("rmsle", "constant_rmsle", "last_year_rmsle", "severe_auc", "severe_brier")),
        }
    measured = eclo_measures(predicted_log, actual_log, constants)
    return {
        **figures,
        "rmsle": measured["rmsle"],
        "constant_rmsle": measured["constant_training_mean_rmsle"],  # the model's own training mean
        "last_year_rmsle": measured["constant_last_year_rmsle"],  # the mean of its last training year
        "severe_auc": _finite(auc(margin, severe)),
        "severe_brier": _finite(brier(probability, severe)),
    }


def compare(
    data: LabelledRows, metadata: dict[str, Any], champion: EcloModel | None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The new version (its held-out fit) and the champion scored on the same rows of the held-out years."""
    temporal = metadata["temporal"]
    year = temporal["holdout_from_year"]
    future = data.subset(np.flatnonzero(data.years >= year))
    new = held_out_model(data, metadata)
    scorers = [("new", new)] + ([("champion", champion)] if champion is not None else [])
    encoded = {role: encode_for_scoring(model.encoder, future.rows) for role, model in scorers}
    common = encoded["new"].kept
    for scored in encoded.values():
        common = np.intersect1d(common, scored.kept)
    actual_log, severe = np.log1p(future.eclo[common]), future.severe[common]
    seed = int(metadata["seed"])
    comparison: dict[str, Any] = {
        "held_out_years": temporal["test_years"],
        "held_out_rows": len(future.rows),
        "rows": len(common),
        "left_out": {
            "rows": len(future.rows) - len(common),
            **{
                f"refused_by_{role}": {"rows": len(future.rows) - len(scored.kept), "fields": scored.refused}
                for role, scored in encoded.items()
            },
        },
    }
    for role, model in scorers:
        scored = encoded[role]
        # Served answers: ECLO = max(0, expm1(raw)), so log1p of it is the raw score clipped at 0.
        raw, margin = model.score_matrix(scored.X[np.searchsorted(scored.kept, common)])
        if role == "new":
            # The served version's calibration was fitted on these very rows: each half is calibrated by the other.
            probability = (
                cross_fitted_probabilities(margin, severe, seed) if len(common) > 1 else model.calibration.apply(margin)
            )
            version = str(metadata["version"])
        else:
            probability = model.calibration.apply(margin)
            version = model.version
        constants = Constants.from_dict(model.metadata["constants"])
        years = [int(y) for y in model.metadata.get("years") or ()]
        clipped = np.maximum(raw, 0.0)
        comparison[role] = _figures(version, clipped, margin, probability, actual_log, severe, constants, years)
    first, last = temporal["train_years"]
    notes = [
        f"new: the fit on {first}-{last} that the temporal evaluation describes (the served version is then refitted "
        "on all rows, the held-out ones included); its severe-outcome probability calibrated across halves of "
        "these rows",
    ]
    if champion is not None:
        notes.append("champion: as served (its own encoder, vocabulary and calibration); rows either model refuses "
                     "are left out of both")  # fmt: skip
        trained = comparison["champion"]["trained_years"]
        if trained and trained[1] >= year:
            notes.append(f"the champion was trained on {trained[0]}-{trained[1]}, held-out years included: its "
                         "figures on them are in-sample and flatter it")  # fmt: skip
    comparison["notes"] = notes
    for line in describe_comparison(comparison):
        log(line)
    return comparison


def describe_comparison(comparison: dict[str, Any]) -> list[str]:
    """The comparison as a small table, for logs and the training command."""
    first, last = comparison["held_out_years"]
    left = comparison["left_out"]["rows"]
    lines = [
        f"held-out {first}-{last}: {comparison['rows']} of {comparison['held_out_rows']} rows compared ({left} left "
        "out: refused by a model)",
        f"{'model':<9} {'version':<26} {'rmsle':>8} {'const':>8} {'last yr':>8} {'auc':>7} {'brier':>8} {'rows':>7}",
    ]
    for role in ("new", "champion"):
        figures = comparison.get(role)
        if figures is None:
            continue
        cells = [figures[k] for k in ("rmsle", "constant_rmsle", "last_year_rmsle", "severe_auc", "severe_brier")]
        shown = ["-" if v is None else f"{v:.4f}" for v in cells]
        lines.append(f"{role:<9} {figures['version']:<26} {shown[0]:>8} {shown[1]:>8} {shown[2]:>8} {shown[3]:>7} "
                     f"{shown[4]:>8} {figures['rows']:>7}")  # fmt: skip
    return lines


def train_eclo_version(
    data: LabelledRows,
    *,
    holdout_from_year: int,
    champion: EcloModel | None,
    out: Path,
    data_source: str,
    training_data: dict[str, Any],
    log: Callable[[str], None] = print,
    folds: int = 5,
    seed: int = 42,
) -> dict[str, Any]:
    """Train, save into `out` (an empty folder the caller made), compare with `champion` on the held-out years;
    returns the metadata, which also holds `training_data` (with rows and years added) and `comparison`."""
    check_rows(data, holdout_from_year)
    result = train_eclo(data, folds=folds, seed=seed, holdout_from_year=holdout_from_year, log=log)
    metadata = save_artifacts(result, out, data_source, data.report)
    years = data.years
    metadata["training_data"] = {
        **training_data,
        "rows": len(data.rows),
        "years": [int(years.min()), int(years.max())],
        "rows_by_year": {str(y): int(n) for y, n in zip(*np.unique(years, return_counts=True), strict=True)},
    }
    metadata["comparison"] = compare(data, metadata, champion, log)
    write_json_atomic(out / METADATA_FILE, metadata)
    return metadata
