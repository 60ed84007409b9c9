"""Model input drift: a model's reference distributions (what it was trained on, kept in its metadata) against the
inputs and outputs recorded for its single predictions, field by field, as a population stability index (PSI).

A reference holds, per field, either the shares of its deciles (numeric) or of its categories (categorical); the
recorded values are binned the same way. Pure numpy and scipy: the recorded rows come in as plain mappings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import stats

from backend.ml.eclo.features import split_district, split_road_type

NUMERIC = "numeric"
CATEGORICAL = "categorical"
BINS = 10
MAX_CATEGORIES = 100
OTHER = "(other)"
UNSEEN = "(unseen)"
SHARE_FLOOR = 1e-4
MIN_ROWS = 30
DEFAULT_THRESHOLD = 0.2
DECIMALS = 6

FIELD_KINDS: dict[str, dict[str, str]] = {
    "eclo": {
        "weather": CATEGORICAL,
        "road_surface": CATEGORICAL,
        "road_type": CATEGORICAL,
        "accident_type": CATEGORICAL,
        "district": CATEGORICAL,
        "day_of_week": CATEGORICAL,
        "accident_hour": NUMERIC,
        # Not the month: a window of days holds one or two months, a training year all twelve; that is the
        # season, not drift.
    },
    "congestion": {"sensor_id": CATEGORICAL, "speed_now": NUMERIC, "hour": NUMERIC},
}
CONGESTION_SPEED = "speed_mph_15"  # the forecast at the first horizon (15 minutes ahead)
# What a single prediction's record keeps of the answer (ECLO: the expected ECLO and the risk level).
PREDICTION_FIELDS: dict[str, tuple[str, ...]] = {"eclo": ("eclo",), "congestion": (CONGESTION_SPEED,)}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _category(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _numbers(values: Sequence[Any]) -> np.ndarray:
    found = [_number(v) for v in values]
    return np.array([v for v in found if v is not None], dtype=np.float64)


def _categories(values: Sequence[Any]) -> list[str]:
    return [c for c in (_category(v) for v in values) if c is not None]


def _share(part: float, whole: int) -> float:
    return round(part / whole, DECIMALS) if whole else 0.0


def _decile_edges(values: np.ndarray) -> list[float]:
    """The inner edges of the reference's deciles, deduplicated (a field with few distinct values has fewer bins).
    Values of the sample, not interpolations (hours get edges at whole hours), rounded before any share is counted
    on them, so that the stored edges are the ones the shares were counted on."""
    quantiles = np.quantile(values, np.arange(1, BINS) / BINS, method="lower")
    return sorted({float(f"{q:.6g}") for q in quantiles})


def _bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts in the bins (-inf, e1], (e1, e2], ..., (ek, +inf)."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return np.bincount(index, minlength=len(edges) + 1)


def _numeric_reference(values: Sequence[Any]) -> dict[str, Any]:
    numbers = _numbers(values)
    n = len(numbers)
    edges = _decile_edges(numbers) if n else []
    counts = _bin_counts(numbers, edges) if n else np.zeros(0)
    return {
        "kind": NUMERIC,
        "n": n,
        "missing_share": _share(len(values) - n, len(values)),
        "mean": round(float(numbers.mean()), DECIMALS) if n else None,
        "edges": edges,  # inner edges: the first bin is open to -inf, the last to +inf
        "shares": [_share(c, n) for c in counts],
    }


def _categorical_reference(values: Sequence[Any]) -> dict[str, Any]:
    found = _categories(values)
    n = len(found)
    ranked = sorted(Counter(found).items(), key=lambda item: (-item[1], item[0]))
    shares = {category: _share(count, n) for category, count in ranked[:MAX_CATEGORIES]}
    pooled = sum(count for _, count in ranked[MAX_CATEGORIES:])
    if pooled:
        shares[OTHER] = _share(pooled, n)
    return {"kind": CATEGORICAL, "n": n, "missing_share": _share(len(values) - n, len(values)), "shares": shares}


def build_reference(
    columns: Mapping[str, Sequence[Any]], kinds: Mapping[str, str], predictions: Mapping[str, Sequence[float]]
) -> dict[str, Any]:
    """The reference distributions of the fields in `kinds` (numeric or categorical) and of the predictions
    (numeric); JSON-serialisable. None, NaN and empty values are skipped and counted in `missing_share`."""
    fields: dict[str, Any] = {}
    for field, kind in kinds.items():
        values = list(columns.get(field, ()))
        if kind == NUMERIC:
            fields[field] = _numeric_reference(values)
        elif kind == CATEGORICAL:
            fields[field] = _categorical_reference(values)
        else:
            raise ValueError(f"{field}: kind must be {NUMERIC!r} or {CATEGORICAL!r}, got {kind!r}")
    lengths = [len(v) for v in columns.values()]
    return {
        "rows": max(lengths, default=0),
        "fields": fields,
        "predictions": {name: _numeric_reference(list(values)) for name, values in predictions.items()},
    }


def _edge_text(edge: float) -> str:
    return f"{edge:g}"


def _numeric_buckets(reference: Mapping[str, Any], values: Sequence[Any]) -> tuple[list[str], list[float], np.ndarray]:
    edges = list(reference.get("edges", []))
    if not edges:  # a reference without values
        return [], [], np.zeros(0, dtype=np.int64)
    labels = [f"<= {_edge_text(edges[0])}"]
    labels += [f"({_edge_text(low)}, {_edge_text(high)}]" for low, high in zip(edges, edges[1:], strict=False)]
    labels.append(f"> {_edge_text(edges[-1])}")
    return labels, [float(s) for s in reference["shares"]], _bin_counts(_numbers(values), edges)


def _categorical_buckets(
    reference: Mapping[str, Any], values: Sequence[Any]
) -> tuple[list[str], list[float], np.ndarray, int]:
    """Every kept category of the reference, then one bucket for the values outside them: "(unseen)", or "(other)"
    when the reference pooled its rare categories (a recorded value among those cannot be told from a new one, and
    both belong to the same share of the reference)."""
    shares = dict(reference.get("shares", {}))
    pooled = shares.pop(OTHER, 0.0)
    kept = list(shares)
    position = {category: i for i, category in enumerate(kept)}
    counts = np.zeros(len(kept) + 1, dtype=np.int64)
    for category in _categories(values):
        counts[position.get(category, len(kept))] += 1
    labels = [*kept, OTHER if pooled else UNSEEN]
    # Pooled: a value outside the kept categories may be one of the pooled ones; how many are new is unknown.
    unseen = None if pooled else int(counts[-1])
    return labels, [*(float(s) for s in shares.values()), float(pooled)], counts, unseen


def _psi(reference_shares: np.ndarray, recorded_shares: np.ndarray) -> float:
    expected = np.maximum(reference_shares, SHARE_FLOOR)
    actual = np.maximum(recorded_shares, SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _p_value(counts: np.ndarray, reference_shares: np.ndarray) -> float | None:
    """Pearson's chi-square of the recorded counts against the reference's shares (floored as in the PSI, then
    renormalised), on the same bins. Chosen over a two-sample KS test: the reference keeps binned shares, not its
    sample, and KS neither applies to categories nor to binned (tied) values; one test serves both kinds."""
    if len(counts) < 2 or counts.sum() == 0:
        return None
    expected = np.maximum(reference_shares, SHARE_FLOOR)
    expected = expected / expected.sum() * counts.sum()
    p = float(stats.chisquare(counts, expected).pvalue)
    return p if math.isfinite(p) else None


def _compare_field(
    name: str, reference: Mapping[str, Any], values: Sequence[Any] | None, threshold: float
) -> dict[str, Any]:
    kind = reference.get("kind", NUMERIC)
    values = list(values) if values is not None else []
    unseen: int | None = None
    if kind == CATEGORICAL:
        labels, ref_shares, counts, unseen = _categorical_buckets(reference, values)
    else:
        labels, ref_shares, counts = _numeric_buckets(reference, values)
    recorded_numbers = _numbers(values) if kind == NUMERIC else None
    n = len(recorded_numbers) if recorded_numbers is not None else len(_categories(values))
    reference_array = np.asarray(ref_shares, dtype=np.float64)
    recorded_array = counts / n if n else np.zeros(len(counts))
    psi = round(_psi(reference_array, recorded_array), DECIMALS) if n and len(counts) else None
    note = None
    if not reference.get("n"):
        note = "the reference has no values of this field"
        psi = None
    elif n == 0:
        note = "no recorded values of this field"
    elif n < MIN_ROWS:
        note = f"too few recorded values to judge ({n} < {MIN_ROWS})"
    p_value = _p_value(counts, reference_array) if psi is not None else None
    return {
        "field": name,
        "kind": kind,
        "n": n,
        "missing_share": _share(len(values) - n, len(values)),
        "psi": psi,
        "p_value": None if p_value is None else float(f"{p_value:.6g}"),
        "drifted": psi is not None and n >= MIN_ROWS and psi >= threshold,
        "note": note,
        "unseen_share": _share(unseen, n) if unseen is not None else None,
        "mean": round(float(recorded_numbers.mean()), DECIMALS) if recorded_numbers is not None and n else None,
        "reference_mean": reference.get("mean") if kind == NUMERIC else None,
        "bins": [
            {"label": label, "reference_share": round(r, DECIMALS), "recorded_share": round(float(a), DECIMALS)}
            for label, r, a in zip(labels, ref_shares, recorded_array, strict=True)
        ],
    }


def compare(
    reference: Mapping[str, Any],
    columns: Mapping[str, Sequence[Any]],
    predictions: Mapping[str, Sequence[float]],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Each field of the reference (and each prediction) against its recorded values: PSI = sum((r - e) ln(r / e))
    over the reference's bins, shares floored at 1e-4; drifted when PSI >= threshold on at least MIN_ROWS values.
    A field absent from `columns` is reported with n 0."""
    fields = [_compare_field(name, ref, columns.get(name), threshold) for name, ref in reference["fields"].items()]
    outputs = [
        _compare_field(name, ref, predictions.get(name), threshold)
        for name, ref in reference.get("predictions", {}).items()
    ]
    lengths = [len(v) for v in (*columns.values(), *predictions.values())]
    return {
        "fields": fields,
        "predictions": outputs,
        "drifted_share": _share(sum(f["drifted"] for f in fields), len(fields)),
        "rows": max(lengths, default=0),
        "threshold": threshold,
    }


# The columns of recorded request bodies and answers, per model kind.


def _eclo_category(field: str, value: Any) -> str | None:
    """District and road type at their coarse level (구/군, major class): the API takes either the coarse or the
    full value, and a client sending one form rather than the other is no drift of the inputs."""
    text = _category(value)
    if text is None or not isinstance(value, str):
        return text
    if field == "district":
        return split_district(text)[0]
    if field == "road_type":
        return split_road_type(text)[0] or None
    return text


def _eclo_columns(inputs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {field: [] for field in FIELD_KINDS["eclo"]}
    for body in inputs:
        body = body if isinstance(body, Mapping) else {}
        for field, kind in FIELD_KINDS["eclo"].items():
            value = body.get(field)
            columns[field].append(_number(value) if kind == NUMERIC else _eclo_category(field, value))
    return columns


def _moment(stamp: Any) -> datetime | None:
    """A reading's time as the model reads it: ISO-8601 at its wall-clock time in its own zone; epoch seconds as
    UTC (as the request schema reads them)."""
    if isinstance(stamp, str) and len(stamp) <= 40:
        try:
            return datetime.fromisoformat(stamp)
        except ValueError:
            return None
    number = _number(stamp) if not isinstance(stamp, str) else None
    if number is None or not 0 <= number < 32_503_680_000:  # before the year 3000
        return None
    return datetime.fromtimestamp(number, UTC)


def _speed(reading: Mapping[str, Any]) -> float | None:
    speed = reading.get("speed_mph")
    nested = reading.get("traffic_data")
    if speed is None and isinstance(nested, Mapping):
        speed = nested.get("speed_mph")
    number = _number(speed)
    return number if number is not None and number > 0 else None  # 0 mph is a missing reading


def _newest(readings: Any) -> tuple[float | None, float | None]:
    """The speed of the newest reading with a speed (0 is missing), and the hour of the newest reading."""
    dated: list[tuple[datetime, Mapping[str, Any]]] = []
    for reading in readings if isinstance(readings, list) else []:
        if isinstance(reading, Mapping) and (moment := _moment(reading.get("timestamp"))) is not None:
            dated.append((moment.replace(tzinfo=None), reading))
    if not dated:
        return None, None
    dated.sort(key=lambda pair: pair[0])
    speeds = [s for _, r in dated if (s := _speed(r)) is not None]
    return (speeds[-1] if speeds else None), float(dated[-1][0].hour)


def _congestion_columns(inputs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """`recent` is the request's readings (`readings` the model row's); without them the server read the stored
    readings, which the record does not hold: speed and hour are then missing."""
    columns: dict[str, list[Any]] = {field: [] for field in FIELD_KINDS["congestion"]}
    for body in inputs:
        body = body if isinstance(body, Mapping) else {}
        sensor = body.get("sensor_id")
        columns["sensor_id"].append(_category(sensor) if isinstance(sensor, str | int) else None)
        readings = body.get("recent") if body.get("recent") is not None else body.get("readings")
        speed, hour = _newest(readings)
        columns["speed_now"].append(speed)
        columns["hour"].append(hour)
    return columns


def input_columns(kind: str, inputs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The drift fields of recorded request bodies, one value per body (None where it has none); {} for a kind
    without drift fields."""
    if kind == "eclo":
        return _eclo_columns(inputs)
    if kind == "congestion":
        return _congestion_columns(inputs)
    return {}


def _first_forecast_speed(output: Any) -> float | None:
    forecasts = output.get("forecasts") if isinstance(output, Mapping) else None
    if not isinstance(forecasts, list) or not forecasts or not isinstance(forecasts[0], Mapping):
        return None
    return _number(forecasts[0].get("speed_mph"))


def prediction_columns(kind: str, outputs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The drift fields of recorded answers: ECLO's eclo and p_severe; congestion's speed at the first horizon."""
    if kind == "eclo":
        return {
            name: [_number(o.get(name)) if isinstance(o, Mapping) else None for o in outputs]
            for name in PREDICTION_FIELDS["eclo"]
        }
    if kind == "congestion":
        return {CONGESTION_SPEED: [_first_forecast_speed(o) for o in outputs]}
    return {}


def reference_for(kind: str, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> dict:
    return build_reference(input_columns(kind, inputs), FIELD_KINDS.get(kind, {}), prediction_columns(kind, outputs))


def reference_for_eclo(api_bodies: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> dict:
    return reference_for("eclo", api_bodies, outputs)


def reference_for_congestion(bodies: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> dict:
    return reference_for("congestion", bodies, outputs)


def drift_of(
    kind: str,
    reference: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """`compare` of recorded request bodies and answers of a model kind, on the fields the kind compares (a
    reference may keep more)."""
    kept = {
        **reference,
        "fields": {k: v for k, v in reference.get("fields", {}).items() if k in FIELD_KINDS.get(kind, {})},
        "predictions": {
            k: v for k, v in reference.get("predictions", {}).items() if k in PREDICTION_FIELDS.get(kind, ())
        },  # fmt: skip
    }
    return compare(kept, input_columns(kind, inputs), prediction_columns(kind, outputs), threshold)
