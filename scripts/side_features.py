"""Do per-동 counts of speed cameras, child protection zones and parking lots (the Dacon winners' side data)
improve the ECLO model on the temporal holdout? A measurement, not part of the served model.

For each seed it runs the project's own temporal evaluation (`training._temporal`, the step `train_eclo` runs for
`--holdout-from-year`: train on the years before, 5-fold CV inside them for the rounds, evaluate on the held-out
years as serving would) twice on the same rows, split, params and seed: once as is (the baseline) and once with
the side counts appended as extra numeric columns to every feature matrix training and scoring build (by wrapping
`training_matrix` and `encode_for_scoring`). Counts are per (구, 동) and per 구; a 동 absent from the side tables
counts 0, a row whose 동 is blanked (the quarter of training rows shown at the 구 level) or unknown to the model
gets NaN for the 동 counts, as serving would have no 동.

Usage: python scripts/side_features.py [--data-dir ../shared/data/daegu] [--seeds 42 43 44] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import lightgbm as lgb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.ml.eclo import training  # noqa: E402
from backend.ml.eclo.dacon import LabelledRows, load_dacon_csv, read_text_csv  # noqa: E402
from backend.ml.eclo.features import FEATURES, FeatureEncoder, ParsedRow  # noqa: E402

DONG_COLUMNS = ("cameras", "speed_cameras", "speed_limit_mean", "child_zones", "parking_lots", "parking_spaces")
GU_COLUMNS = ("cameras", "speed_cameras", "child_zones", "parking_lots", "parking_spaces")
SIDE_FEATURES = tuple(f"side_dong_{c}" for c in DONG_COLUMNS) + tuple(f"side_gu_{c}" for c in GU_COLUMNS)
METRICS = (  # (name, path in the temporal report, higher is better)
    ("ECLO RMSLE", ("eclo", "rmsle"), False),
    ("ratio to training-mean constant", ("eclo", "ratio_to_training_mean"), False),
    ("ratio to last-year constant", ("eclo", "ratio_to_last_year"), False),
    ("severe AUC", ("severe", "auc"), True),
    ("severe Brier", ("severe", "brier"), False),
)


# --- Places of the side tables ------------------------------------------------------------------------------


def _tokens(address: str) -> list[str]:
    """Address words after the city ('대구광역시' or '대구'); some files hold '?' or NBSP for spaces."""
    words = re.sub(r"[?\u00a0]", " ", address or "").split()
    return words[1:] if words and words[0].startswith("대구") else words


def _clean_dong(name: str) -> str:
    """'남산동912-5' -> '남산동' (a lot number glued on); '비산2.3동', '평리4동' -> '비산동', '평리동' (an
    administrative 동 to its legal 동, the accidents' naming)."""
    name = re.sub(r"\d[\d-]*$", "", name)
    return re.sub(r"\d+(?:[.·,]\d+)*동$", "동", name)


def _place(jibun: str, road: str) -> tuple[str | None, str | None]:
    """(구, 동) from a lot-number address, the road-name address filling gaps. For 달성군 the 동 is the 읍/면
    (the accidents' 시군구 stops there; the side tables go on to the 리)."""
    lot, street = _tokens(jibun), _tokens(road)
    gu = next((w[0] for w in (lot, street) if w and w[0].endswith(("구", "군"))), None)
    if gu is None:
        return None, None
    if gu == "달성군":
        return gu, next((w for w in lot[1:] + street[1:] if w.endswith(("읍", "면"))), None)
    if lot and lot[0] == gu and len(lot) > 1:
        return gu, _clean_dong(lot[1])
    bracket = re.search(r"\(([^),]+)", road or "")  # road-name addresses may end '(대명동)'
    return gu, (_clean_dong(bracket.group(1).strip()) if bracket else None)


def _other_kind(dong: str) -> str:
    """'달성군 옥포읍' -> '달성군 옥포면' and back; other names unchanged."""
    swap = {"읍": "면", "면": "읍"}
    return dong[:-1] + swap[dong[-1]] if dong[-1] in swap else dong


@dataclass
class SideTable:
    name: str
    frame: pd.DataFrame  # with columns gu, dong, lat, lon and the table's own values
    placed: Counter[str]  # how each row's 동 was found


def read_side_table(path: Path, name: str, known_dongs: set[str]) -> SideTable:
    frame = read_text_csv(path)  # UTF-8 or CP949 (these files are CP949)
    places = [_place(j, r) for j, r in zip(frame["소재지지번주소"], frame["소재지도로명주소"], strict=True)]
    frame["lat"] = pd.to_numeric(frame["위도"], errors="coerce")
    frame["lon"] = pd.to_numeric(frame["경도"], errors="coerce")
    placed: Counter[str] = Counter()
    dongs: list[str | None] = []
    for gu, word in places:
        dong = f"{gu} {word}" if word else None
        if gu is None:
            placed["no 구 in either address"] += 1
        elif dong is None:
            pass  # fill_from_nearest may find it
        elif dong in known_dongs:
            placed["동 from the address"] += 1
        elif _other_kind(dong) in known_dongs:
            dong = _other_kind(dong)  # 달성군's 옥포·현풍·유가면 became 읍 after 2015
            placed["동 from the address"] += 1
        else:
            placed["동 not among the accidents' (counted in its 구 only)"] += 1
        dongs.append(dong)
    frame["gu"] = [gu for gu, _ in places]
    frame["dong"] = dongs
    return SideTable(name, frame, placed)


def fill_from_nearest(tables: Sequence[SideTable]) -> None:
    """Rows with a 구 but no 동 in either address take the 동 of the nearest row (of any table) of the same 구
    whose address named one (by latitude/longitude)."""
    points = pd.concat([t.frame[["gu", "dong", "lat", "lon"]] for t in tables]).dropna()
    for table in tables:
        frame = table.frame
        for i in np.flatnonzero(frame["gu"].notna() & frame["dong"].isna()):
            same = points[points["gu"] == frame["gu"].iat[i]]
            if len(same) and not np.isnan(frame["lat"].iat[i]):
                nearest = np.argmin((same["lat"] - frame["lat"].iat[i]) ** 2 + (same["lon"] - frame["lon"].iat[i]) ** 2)
                frame.iat[i, frame.columns.get_loc("dong")] = same["dong"].iat[nearest]
                table.placed["동 from the nearest placed point"] += 1
            else:
                table.placed["no 동 found (counted in its 구 only)"] += 1


@dataclass
class SideCounts:
    by_dong: dict[str, list[float]]  # "구 동" -> DONG_COLUMNS
    by_gu: dict[str, list[float]]  # 구 -> GU_COLUMNS

    @classmethod
    def of(cls, cameras: pd.DataFrame, zones: pd.DataFrame, parking: pd.DataFrame, gus: set[str]) -> SideCounts:
        limit = pd.to_numeric(cameras["제한속도"], errors="coerce")
        cameras = cameras.assign(speed=(limit > 0).astype(float), limit=limit.where(limit > 0))
        parking = parking.assign(spaces=pd.to_numeric(parking["주차구획수"], errors="coerce").fillna(0.0))
        by_dong: dict[str, list[float]] = {}
        by_gu: dict[str, list[float]] = {}
        for level, out, columns in (("dong", by_dong, DONG_COLUMNS), ("gu", by_gu, GU_COLUMNS)):
            cam = cameras.groupby(level).agg(cameras=("speed", "size"), speed_cameras=("speed", "sum"),
                                             speed_limit_mean=("limit", "mean"))  # fmt: skip
            zone = zones.groupby(level).size().rename("child_zones")
            park = parking.groupby(level).agg(parking_lots=("spaces", "size"), parking_spaces=("spaces", "sum"))
            table = pd.concat([cam, zone, park], axis=1)
            table = table[[key.partition(" ")[0] in gus for key in table.index]]  # not 군위군 (Daegu since 2023)
            counts = table.drop(columns="speed_limit_mean").fillna(0.0)
            if "speed_limit_mean" in columns:
                counts["speed_limit_mean"] = table["speed_limit_mean"]  # NaN where no speed camera
            values = counts[list(columns)].to_numpy(dtype=np.float64).tolist()
            out.update(zip(counts.index, values, strict=True))
        return cls(by_dong, by_gu)

    def matrix(self, rows: Sequence[ParsedRow], dongs: set[str] | None = None) -> np.ndarray:
        """One row of SIDE_FEATURES per parsed row. A 동 missing from the side tables counts 0 (no speed limit);
        a row without a 동, or with one outside `dongs` (a model coarsens those to the 구), gets NaN."""
        zero = [0.0] * len(DONG_COLUMNS)
        zero[DONG_COLUMNS.index("speed_limit_mean")] = np.nan
        out = np.empty((len(rows), len(SIDE_FEATURES)), dtype=np.float64)
        for i, row in enumerate(rows):
            if row.dong is None or (dongs is not None and row.dong not in dongs):
                dong = [np.nan] * len(DONG_COLUMNS)
            else:
                dong = self.by_dong.get(row.dong, zero)
            out[i] = dong + self.by_gu.get(row.gu, [0.0] * len(GU_COLUMNS))
        return out


# --- The two variants ---------------------------------------------------------------------------------------


def side_patches(side: SideCounts) -> mock._patch[Any]:
    """The training module with SIDE_FEATURES appended to every matrix it builds (training and scoring) and
    named in its LightGBM datasets; the categorical columns stay the first ones."""
    plain_matrix, plain_scoring = training.training_matrix, training.encode_for_scoring
    plain_dataset = training._dataset

    def training_matrix(rows: Sequence[ParsedRow], log_eclo: np.ndarray, vocabularies: dict[str, list[str]],
                        seed: int) -> tuple[np.ndarray, FeatureEncoder]:  # fmt: skip
        X, encoder = plain_matrix(rows, log_eclo, vocabularies, seed)
        shown = training._shown_rows(rows, seed)  # the same seeded blanking of 동 the matrix was built with
        return np.hstack([X, side.matrix(shown)]), encoder

    def encode_for_scoring(encoder: FeatureEncoder, rows: Sequence[ParsedRow]) -> training.Encoded:
        encoded = plain_scoring(encoder, rows)
        kept = [rows[i] for i in encoded.kept]
        extra = side.matrix(kept, set(encoder.vocabularies["dong"]))
        return replace(encoded, X=np.hstack([encoded.X, extra]))

    def dataset(X: np.ndarray, y: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        with mock.patch.object(training, "FEATURES", FEATURES + SIDE_FEATURES):  # its feature names
            return plain_dataset(X, y, reference)

    return mock.patch.multiple(training, training_matrix=training_matrix, encode_for_scoring=encode_for_scoring,
                               _dataset=dataset)  # fmt: skip


def temporal_report(data: LabelledRows, year: int, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """What `train_eclo(data, seed=seed, holdout_from_year=year, params={"num_threads": 1})` reports as its
    `temporal` metadata (the same call, without the K-fold over all rows and the final fit it does afterwards)."""
    params = {**training.PARAMS, "seed": seed, "num_threads": 1}
    report, _, _ = training._temporal(data, year, 5, seed, params, log)
    return report


def side_gain_shares(data: LabelledRows, year: int, seed: int, side: SideCounts, report: dict[str, Any]) -> str:
    """How much the side columns are used: their share of the split gain in the two models the side variant
    fits on the years before `year` (the rounds its CV chose, as `_cross_validate` computes them)."""
    mean_best = np.mean(report["cv_on_training_years"]["best_iterations"], axis=0) * 1.1
    rounds = (max(1, int(round(mean_best[0]))), max(1, int(round(mean_best[1]))))
    past = data.subset(np.flatnonzero(data.years < year))
    with side_patches(side):
        fitted = training._fit(past, {**training.PARAMS, "seed": seed, "num_threads": 1}, rounds, seed)
    parts = []
    for name, booster in (("ECLO", fitted.regressor), ("severe", fitted.classifier)):
        gain = booster.feature_importance("gain")
        top = sorted(zip(gain[len(FEATURES) :], SIDE_FEATURES, strict=True), reverse=True)[:3]
        parts.append(f"{name} model: {gain[len(FEATURES) :].sum() / gain.sum():.1%} of the gain "
                     f"(most: {', '.join(f'{n} {g / gain.sum():.1%}' for g, n in top)})")  # fmt: skip
    return "; ".join(parts)


def metric(report: dict[str, Any], path: tuple[str, str]) -> float:
    return float(report[path[0]][path[1]])


def summary_table(results: dict[str, list[dict[str, Any]]], seeds: Sequence[int]) -> list[str]:
    lines = [
        f"| held-out metric ({len(seeds)} seeds: {', '.join(map(str, seeds))}) | baseline | with side counts "
        "| difference (side - baseline), per seed | better on |",
        "|---|---|---|---|---|",
    ]
    for name, path, higher in METRICS:
        base = np.array([metric(r, path) for r in results["baseline"]])
        side = np.array([metric(r, path) for r in results["side"]])
        diff = side - base
        better = int(((diff > 0) if higher else (diff < 0)).sum())
        lines.append(
            f"| {name} | {base.mean():.5f} ± {base.std(ddof=1):.5f} | {side.mean():.5f} ± {side.std(ddof=1):.5f} "
            f"| {diff.mean():+.5f} ± {diff.std(ddof=1):.5f} ({', '.join(f'{d:+.5f}' for d in diff)}) "
            f"| {better} of {len(seeds)} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "daegu"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--holdout-from-year", type=int, default=2014)
    parser.add_argument("--json", help="write every run's temporal report here (keep it outside the repository)")
    parser.add_argument("--verbose", action="store_true", help="print the per-fold lines of training")
    args = parser.parse_args(argv)
    folder = Path(args.data_dir)
    started = time.perf_counter()

    data = load_dacon_csv(folder / "accidents_2007_2015.csv.gz")
    known_dongs = {r.dong for r in data.rows if r.dong is not None}
    gus = {r.gu for r in data.rows}
    print(f"accidents: {len(data.rows)} rows ({data.report.summary()}), {len(known_dongs)} 동 in {len(gus)} 구/군")
    tables = [read_side_table(folder / f"daegu_{name}.csv", name, known_dongs)
              for name in ("cctv", "child_protection_zone", "parking")]  # fmt: skip
    fill_from_nearest(tables)
    for table in tables:
        outside = int((~table.frame["gu"].isin(gus)).sum())
        print(f"{table.name}: {len(table.frame)} rows; " + "; ".join(f"{k}: {v}" for k, v in table.placed.items())
              + f"; outside the accidents' 구/군 (군위군, none): {outside}")  # fmt: skip
    side = SideCounts.of(*(t.frame for t in tables), gus)
    matrix = side.matrix(data.rows)
    for j, name in enumerate(SIDE_FEATURES[: len(DONG_COLUMNS)]):
        column = matrix[:, j]
        print(f"  {name}: accident rows with a value > 0: {np.mean(column > 0):.1%}, mean {np.nanmean(column):.2f}")
    covered = sum(k in side.by_dong for k in known_dongs)
    print(f"  동 of the accidents with any side row: {covered} of {len(known_dongs)}")

    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "side": []}
    for seed in args.seeds:
        for variant in ("baseline", "side"):
            began = time.perf_counter()
            tag = f"[{variant} {seed}]"
            log = (lambda line, tag=tag: print(f"    {tag} {line}")) if args.verbose else (lambda _: None)
            if variant == "side":
                with side_patches(side):
                    report = temporal_report(data, args.holdout_from_year, seed, log)
            else:
                report = temporal_report(data, args.holdout_from_year, seed, log)
            assert report["train_years"][1] < args.holdout_from_year <= report["test_years"][0]  # no later rows
            results[variant].append(report)
            print(f"seed {seed} {variant:8s}: " + ", ".join(f"{n} {metric(report, p):.4f}" for n, p, _ in METRICS)
                  + f"; {report['test_rows']} held-out rows ({report['test_years'][0]}-{report['test_years'][1]}), "
                  f"trained on {report['train_years'][0]}-{report['train_years'][1]}; "
                  f"{time.perf_counter() - began:.0f}s", flush=True)  # fmt: skip
    print("\n".join(summary_table(results, args.seeds)))
    print("(mean ± standard deviation over the seeds; each seed sets the folds, the blanked rows and LightGBM's seed)")
    gains = side_gain_shares(data, args.holdout_from_year, args.seeds[0], side, results["side"][0])
    print(f"side columns, seed {args.seeds[0]}: {gains}")
    print(f"total {time.perf_counter() - started:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": args.seeds, "side_features": SIDE_FEATURES, **results},
                                              ensure_ascii=False, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
