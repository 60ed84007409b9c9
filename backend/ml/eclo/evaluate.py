"""Score a labelled accident file with a saved ECLO model: `python -m backend.ml.eclo.evaluate --model DIR --data FILE
[--out predictions.csv]`.

The file is in the Dacon layout (UTF-8, BOM or CP949; .csv.gz read directly). Every row goes through the model's
`predict_many`, exactly as a batch would; the command prints the ECLO RMSLE against the model's own training
constants and the severe-outcome measures (when the file has the outcome columns), and writes one line per row:
ID, predicted_eclo, p_severe, relative_risk, risk_level, notes, error.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.ml.eclo.dacon import (
    FEATURE_COLUMNS,
    api_rows,
    eclo_targets,
    has_eclo_columns,
    read_text_csv,
    row_ids,
    severe_targets,
)
from backend.ml.eclo.measures import Constants, describe, eclo_measures, severe_measures
from backend.ml.eclo.model import EcloModel, EcloPrediction
from backend.ml.errors import DataFileError, InvalidRow

OUTPUT_COLUMNS = ("ID", "predicted_eclo", "p_severe", "relative_risk", "risk_level", "notes", "error")


@dataclass
class Evaluation:
    ids: list[str]
    outcomes: list[EcloPrediction | InvalidRow | None]  # None: 사고일시 did not parse
    eclo: dict[str, Any] | None
    severe: dict[str, Any] | None

    @property
    def scored(self) -> int:
        return sum(isinstance(o, EcloPrediction) for o in self.outcomes)


def evaluate(model: EcloModel, path: Path) -> Evaluation:
    frame = read_text_csv(path).rename(columns=lambda c: c.strip())
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFileError(f"{path}: the file lacks the input column(s) {', '.join(missing)}", missing_columns=missing)
    rows = api_rows(frame)
    valid = [i for i, row in enumerate(rows) if row is not None]
    outcomes: list[EcloPrediction | InvalidRow | None] = [None] * len(rows)
    for i, outcome in zip(valid, model.predict_many([rows[i] for i in valid]), strict=True):
        outcomes[i] = outcome  # type: ignore[assignment]
    scored = np.array([isinstance(o, EcloPrediction) for o in outcomes], dtype=bool)
    constants = Constants.from_dict(model.metadata["constants"])
    eclo = severe = None
    if has_eclo_columns(frame.columns):
        actual = eclo_targets(frame).to_numpy(dtype=np.float64)
        usable = scored & ~np.isnan(actual) & (actual >= 0)
        predicted = np.log1p([outcomes[i].eclo for i in np.flatnonzero(usable)])  # type: ignore[union-attr]
        eclo = eclo_measures(predicted, np.log1p(actual[usable]), constants) if usable.any() else None
    label = severe_targets(frame).to_numpy(dtype=np.float64)
    usable = scored & ~np.isnan(label)
    if usable.any():
        probability = np.array([outcomes[i].p_severe for i in np.flatnonzero(usable)])  # type: ignore[union-attr]
        severe = severe_measures(probability, label[usable], constants)
    return Evaluation(row_ids(frame), outcomes, eclo, severe)


def write_predictions(evaluation: Evaluation, out: Path) -> None:
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(OUTPUT_COLUMNS)
        for row_id, outcome in zip(evaluation.ids, evaluation.outcomes, strict=True):
            if isinstance(outcome, EcloPrediction):
                writer.writerow([row_id, repr(outcome.eclo), repr(outcome.p_severe), repr(outcome.relative_risk),
                                 outcome.risk_level, "; ".join(outcome.notes), ""])  # fmt: skip
            else:
                if outcome is None:
                    error = "사고일시 is not 'YYYY-MM-DD HH'"
                else:
                    error = "; ".join(f"{e.field}: {e.message}" for e in outcome.errors)
                writer.writerow([row_id, "", "", "", "", "", error])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.ml.eclo.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model/eclo"), help="model folder (default: model/eclo)")
    parser.add_argument("--data", type=Path, required=True, help="a file in the Dacon layout")
    parser.add_argument("--out", type=Path, help="write the per-row predictions to this CSV")
    args = parser.parse_args(argv)
    try:
        model = EcloModel.load(args.model)
        evaluation = evaluate(model, args.data)
    except (DataFileError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    refused = len(evaluation.outcomes) - evaluation.scored
    noted = sum(isinstance(o, EcloPrediction) and bool(o.notes) for o in evaluation.outcomes)
    print(f"model {model.name} {model.version}; {args.data.name}: {len(evaluation.outcomes)} rows, "
          f"{evaluation.scored} scored ({noted} with a note), {refused} refused")  # fmt: skip
    lines = describe(evaluation.eclo, evaluation.severe)
    print("\n".join(lines) if lines else "no outcome columns (ECLO or injury counts): predictions only")
    if args.out:
        write_predictions(evaluation, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
