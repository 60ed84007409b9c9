"""Training command: `python -m backend.ml.train eclo|congestion ...` (see --help of each).

`eclo --data PATH.csv[.gz] [--holdout-from-year Y] --out model/eclo`:
Without `--data` it trains on the seeded synthetic Dacon set. Two LightGBM models on the same features: log1p(ECLO)
and the chance of a severe outcome (a death or a serious injury). K-fold CV (rounds by early stopping) and, with
`--holdout-from-year`, training on the earlier years and evaluating on the later ones; then a final fit on all
rows. The severe-outcome probability is Platt-calibrated on the held-out years (else on out-of-fold margins).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from backend.ml.eclo.dacon import load_dacon_csv, parse_dacon_frame
from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.eclo.training import save_artifacts, train_eclo
from backend.ml.errors import DataFileError


def data_source(path: str, name: str | None) -> str:
    """What a model was trained on, for its metadata: the file's name (never where it lay) and what it is."""
    return f"{Path(path).name} ({name})" if name else Path(path).name


def _train_eclo_command(args: argparse.Namespace) -> int:
    if args.data:
        data = load_dacon_csv(args.data)
        source = data_source(args.data, args.data_name)
    else:
        print(f"no --data: generating the synthetic Dacon set ({args.rows} rows, seed {args.seed})")
        data = parse_dacon_frame(generate_dacon_frame(args.rows, args.seed).astype(str))
        source = f"synthetic:rows={args.rows},seed={args.seed}"
    print(f"read {data.report.total_rows} rows: {data.report.summary()}")
    result = train_eclo(data, folds=args.folds, seed=args.seed, holdout_from_year=args.holdout_from_year)
    metadata = save_artifacts(result, Path(args.out), source, data.report)
    print(f"saved {args.out}: version {metadata['version']}, k-fold rmsle {metadata['cv_rmsle']:.4f}, "
          f"ratio {metadata['cv_to_baseline_ratio']:.4f}")  # fmt: skip
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
        source = data_source(args.speeds, args.data_name)
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
    eclo.add_argument(
        "--data", help="a CSV in the Dacon train.csv layout (UTF-8, UTF-8 with BOM or CP949; .csv.gz read directly)"
    )
    eclo.add_argument("--out", default="model/eclo", help="artifact folder (default: model/eclo)")
    eclo.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    eclo.add_argument("--seed", type=int, default=42)
    eclo.add_argument("--rows", type=int, default=40_000, help="rows of the synthetic set when --data is omitted")
    eclo.add_argument(
        "--holdout-from-year",
        type=int,
        help="also train on earlier years and evaluate on this one "
        "and later (the competition's split); the severe-outcome calibration is fitted on them",
    )
    eclo.add_argument("--data-name", help="what the data is, for the metadata (e.g. 'Daegu accidents 2007-2015')")
    congestion = commands.add_parser("congestion", help="train the road-congestion model (METR-LA layout)")
    congestion.add_argument("--speeds", help="wide speed table: CSV, .csv.gz or .h5 (no --speeds: generate)")
    congestion.add_argument("--sensors", help="sensor table: sensor_id, latitude, longitude (header optional)")
    congestion.add_argument("--edges", help="edge list from_sensor, to_sensor, weight (else k nearest sensors)")
    congestion.add_argument("--out", default="model/congestion", help="artifact folder (default: model/congestion)")
    congestion.add_argument("--data-name", help="what the speeds are, for the metadata (e.g. 'METR-LA, one week')")
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
