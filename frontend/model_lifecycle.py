"""What the Models page shows of the lifecycle API's answers: the versions side by side, a new version beside the
champion and the baselines on the same held-out rows, the drift report by PSI band, the training job's line. Pure
functions of the answers (tested without Streamlit)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from frontend.tables import MISSING, utc

TRAINING_FINAL = ("success", "failure", "cancelled")
TRAINABLE = ("eclo", "congestion")
SEVERE_COLUMNS = ("사망자수", "중상자수")  # an ECLO version learns the chance of a death or serious injury from them
MINUTES = ("15", "30", "60")
# PSI bands: below 0.1 stable, 0.1 to 0.2 worth a look, 0.2 and over drifted (the API's default threshold).
PSI_BANDS = ((0.1, "#2e7d32", "PSI < 0.1: stable"), (0.2, "#f9a825", "0.1 ≤ PSI < 0.2: shifting"),
             (math.inf, "#c62828", "PSI ≥ 0.2: drifted"))  # fmt: skip
NO_PSI = ("#9e9e9e", "no PSI")
LOG_FLOOR = 1e-4  # a PSI of 0 drawn on a log axis
MAX_BINS = 30  # a field's bins drawn at most (a sensor id field has one per sensor)


def number(value: Any, digits: int = 4) -> str:
    if value is None or isinstance(value, bool):
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else MISSING
    return str(value)


def _dig(mapping: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def short(version: str | None) -> str:
    return (version or MISSING)[:8]


def version_label(version: dict[str, Any]) -> str:
    """'1ac1f27c34c7bdc2 · challenger', '6dc9c908c471b145 · champion · default'."""
    roles = [*version["aliases"], *(["default"] if version.get("is_default") else [])]
    return " · ".join([version["version"], *roles])


def _span(pair: Any) -> str:
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        return MISSING
    first, last = pair
    return str(first) if first == last else f"{first}-{last}"


def _trained_on(version: dict[str, Any]) -> str:
    """'127,826 rows, 2007-2015'; a congestion version trained here: '178,848 readings of 207 sensors' (its range of
    stored readings is under data)."""
    data = version.get("training_data") or {}
    if data.get("readings"):
        return f"{data['readings']:,} readings of {data.get('sensors', '?')} sensors"
    rows = data.get("rows")
    parts = [f"{rows:,} rows" if isinstance(rows, int) else None]
    if data.get("years"):
        parts.append(_span(data["years"]))
    if data.get("time_range"):
        first, last = data["time_range"]
        parts.append(f"{str(first)[:16]} to {str(last)[:16]}")
    return ", ".join(p for p in parts if p) or MISSING


def _source(version: dict[str, Any]) -> str:
    data = version.get("training_data") or {}
    if data.get("dataset_ids"):
        ids = data["dataset_ids"]
        return f"{len(ids)} uploaded file{'s' if len(ids) != 1 else ''}: " + ", ".join(short(i) for i in ids)
    if data.get("since") and data.get("until"):
        return f"stored readings {utc(data['since'])} to {utc(data['until'])}"
    source = str(data.get("data_source") or "the committed model")
    return source.split(" (", 1)[0] if len(source) > 50 else source  # the file, without its description


def _by_horizon(metrics: dict[str, Any], pattern: str, digits: int = 2, share: bool = False) -> str:
    values = [metrics.get(pattern.format(m)) for m in MINUTES]
    if all(v is None for v in values):
        return MISSING
    return " / ".join(MISSING if v is None else f"{v:.1%}" if share else f"{v:.{digits}f}" for v in values)


def _eclo_rows(version: dict[str, Any]) -> dict[str, str]:
    metrics = version.get("metrics") or {}
    temporal, cv = metrics.get("temporal") or {}, metrics.get("cv") or {}
    eclo, severe = temporal.get("eclo") or {}, temporal.get("severe") or {}
    held_out = MISSING
    if temporal.get("test_years"):
        held_out = f"{_span(temporal['test_years'])} (trained on {_span(temporal.get('train_years'))})"
    return {
        "held-out years": held_out,
        "RMSLE, held-out": number(eclo.get("rmsle")),
        "RMSLE of its training mean": number(eclo.get("constant_training_mean_rmsle")),
        "severe AUC, held-out": number(severe.get("auc"), 3),
        "severe Brier (constant)": f"{number(severe.get('brier'))} ({number(severe.get('brier_constant'))})",
        "RMSLE, K-fold CV": number(cv.get("rmsle")),
    }


def _congestion_rows(version: dict[str, Any]) -> dict[str, str]:
    metrics = version.get("metrics") or {}
    return {
        "MAE +15/30/60 min (mph)": _by_horizon(metrics, "mae_{}"),
        "copy-last MAE": _by_horizon(metrics, "baseline_last_mae_{}"),
        "historical average MAE": _by_horizon(metrics, "baseline_ha_mae_{}"),
        "RMSE +15/30/60 min": _by_horizon(metrics, "rmse_{}"),
        "10-90% band holds": _by_horizon(metrics, "coverage_{}", share=True),
    }


def versions_table(listing: dict[str, Any]) -> pd.DataFrame:
    """One column per version (oldest first), one row per fact: aliases, training, its own evaluation."""
    columns: dict[str, dict[str, str]] = {}
    for version in listing["versions"]:
        roles = [*version["aliases"], *(["committed default"] if version.get("is_default") else [])]
        rows = {
            "aliases": ", ".join(roles) or MISSING,
            "trained at": utc(version.get("trained_at")) or MISSING,
            "trained on": _trained_on(version),
            "data": _source(version),
        }
        if version.get("kind") == "eclo":
            rows.update(_eclo_rows(version))
        elif version.get("kind") == "congestion":
            rows.update(_congestion_rows(version))
        rows["can be deleted"] = "yes" if version.get("deletable") else "no"
        columns[version["version"]] = rows
    return pd.DataFrame(columns)


def newest_compared(listing: dict[str, Any]) -> dict[str, Any] | None:
    return next((v for v in reversed(listing["versions"]) if v.get("comparison")), None)


def comparison_table(kind: str, comparison: dict[str, Any]) -> pd.DataFrame:
    """The new version, the champion of its training time and the baselines, scored on the same rows."""
    if kind == "eclo":
        new, champion = comparison.get("new") or {}, comparison.get("champion")

        def scored(model: str, figures: dict[str, Any]) -> dict[str, Any]:
            return {"model": model, "version": figures.get("version"), "RMSLE": figures.get("rmsle"),
                    "severe AUC": figures.get("severe_auc"), "severe Brier": figures.get("severe_brier"),
                    "rows": figures.get("rows")}  # fmt: skip

        rows = [scored("new", new), *([scored("champion at training", champion)] if champion else [])]
        rows += [
            {"model": "constant: new's training mean", "RMSLE": new.get("constant_rmsle"), "rows": new.get("rows")},
            {"model": "constant: new's last training year", "RMSLE": new.get("last_year_rmsle"),
             "rows": new.get("rows")},
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=["model", "version", "RMSLE", "severe AUC", "severe Brier", "rows"])
    rows = []
    for role, label in (("new", "new"), ("champion", "champion at training"), ("copy_last", "copy-last"),
                        ("historical_average", "historical average")):  # fmt: skip
        figures = comparison.get(role)
        if isinstance(figures, dict):
            mae = figures.get("mae") or {}
            rows.append({"model": label, "version": figures.get("version"),
                         **{f"MAE +{m} min": mae.get(m) for m in MINUTES}})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "version", *(f"MAE +{m} min" for m in MINUTES)])


def comparison_caption(kind: str, comparison: dict[str, Any]) -> str:
    if kind == "eclo":
        left = _dig(comparison, "left_out", "rows") or 0
        return (f"Held-out {_span(comparison.get('held_out_years'))}: {number(comparison.get('rows'))} of "
                f"{number(comparison.get('held_out_rows'))} rows compared ({number(left)} left out: refused by one "
                "model or the other). RMSLE and Brier: lower is better; AUC: higher is better.")  # fmt: skip
    windows = comparison.get("test_windows") or {}
    first, last = (windows.get("time_range") or [None, None])[:2]
    sensors = _dig(comparison, "sensors", "compared")
    left = _dig(comparison, "left_out", "windows") or 0
    return (f"Test windows {str(first)[:16]} to {str(last)[:16]}: {number(comparison.get('windows'))} windows of "
            f"{number(sensors)} sensors compared ({number(left)} left out). MAE in mph: lower is better.")  # fmt: skip


def psi_band(psi: float | None) -> tuple[str, str]:
    """(colour, label) of a PSI."""
    if psi is None:
        return NO_PSI
    return next((color, label) for bound, color, label in PSI_BANDS if psi < bound)


def psi_text(psi: float) -> str:
    """'0.114', '0.0003' (never '0.000' for a small one)."""
    return f"{psi:.3f}" if psi >= 0.01 else f"{psi:.2g}"


def drift_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every field and answer of the report, answers marked."""
    return [{**f, "label": f["field"]} for f in report["fields"]] + [
        {**f, "label": f"answer: {f['field']}"} for f in report["predictions"]
    ]


def drift_chart(report: dict[str, Any]) -> go.Figure:
    """A bar per field (and per answer) with a PSI, coloured by its band; the threshold as a dashed line. The axis is
    logarithmic once a PSI passes 5 times the threshold, so that one field far off leaves the others readable."""
    rows = [r for r in drift_rows(report) if r.get("psi") is not None]
    threshold = float(report.get("threshold") or 0.2)
    largest = max([r["psi"] for r in rows], default=0.0)
    log = largest > 5 * threshold
    figure = go.Figure()
    for _, color, label in PSI_BANDS:
        band = [r for r in rows if psi_band(r["psi"])[1] == label]
        figure.add_trace(go.Bar(
            x=[max(r["psi"], LOG_FLOOR) if log else r["psi"] for r in band], y=[r["label"] for r in band],
            orientation="h", name=label, marker_color=color, text=[psi_text(r["psi"]) for r in band],
            textposition="outside", cliponaxis=False,
            customdata=[[r["psi"], r.get("n"), r.get("p_value")] for r in band],
            hovertemplate="%{y}: PSI %{customdata[0]:.4f}<br>%{customdata[1]:,} values, p-value %{customdata[2]:.3g}"
                          "<extra></extra>",
        ))  # fmt: skip
    figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"threshold {threshold:g}",
                                line={"dash": "dash", "color": "#444"}))  # fmt: skip
    figure.add_vline(x=threshold, line_dash="dash", line_color="#444")
    if log:
        smallest = min(max(r["psi"], LOG_FLOOR) for r in rows)
        axis = {"type": "log", "range": [math.log10(min(smallest, threshold / 10)) - 0.2, math.log10(largest) + 0.4],
                "dtick": 1, "title": "population stability index (PSI, log scale)"}  # fmt: skip
    else:
        axis = {"range": [0, max(largest, threshold * 1.5) * 1.15], "title": "population stability index (PSI)"}
    order = [r["label"] for r in rows]
    figure.update_layout(
        height=max(220, 34 * len(rows) + 120), margin={"l": 10, "r": 40, "t": 40, "b": 10}, barmode="overlay",
        xaxis=axis, yaxis={"categoryorder": "array", "categoryarray": order[::-1]},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
    )  # fmt: skip
    return figure


def drift_table(report: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"field": r["label"], "kind": r.get("kind"), "values": r.get("n"), "PSI": r.get("psi"),
          "p-value": r.get("p_value"), "drifted": bool(r.get("drifted")), "unseen share": r.get("unseen_share"),
          "note": r.get("note")} for r in drift_rows(report)],
        columns=["field", "kind", "values", "PSI", "p-value", "drifted", "unseen share", "note"],
    )  # fmt: skip


def shown_bins(field: dict[str, Any], most: int = MAX_BINS) -> list[dict[str, Any]]:
    """A field's bins in their order; of a field with many (sensors, 동), the `most` largest in either share."""
    bins = list(field.get("bins") or [])
    if len(bins) <= most:
        return bins
    largest = sorted(range(len(bins)), key=lambda i: -max(bins[i]["reference_share"], bins[i]["recorded_share"]))
    return [bins[i] for i in sorted(largest[:most])]


def bins_chart(field: dict[str, Any]) -> go.Figure:
    """A field's bins (each a category, even one that reads as a number: sensor ids): the training reference's
    share beside the recorded share."""
    bins = shown_bins(field)
    labels = [str(b["label"]) for b in bins]
    figure = go.Figure([
        go.Bar(x=labels, y=[b["reference_share"] for b in bins], name="training reference", marker_color="#90a4ae"),
        go.Bar(x=labels, y=[b["recorded_share"] for b in bins], name="recorded",
               marker_color=psi_band(field.get("psi"))[0]),
    ])  # fmt: skip
    psi = MISSING if field.get("psi") is None else f"{field['psi']:.3f}"
    title = f"{field['field']}: PSI {psi}"
    if len(bins) < len(field.get("bins") or []):
        title += f" (the {len(bins)} largest of {len(field['bins'])} bins)"
    figure.update_layout(title=title, barmode="group", height=340, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         xaxis={"type": "category"}, yaxis={"tickformat": ".0%", "title": "share"},
                         legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"})  # fmt: skip
    return figure


def job_text(job: dict[str, Any]) -> str:
    """'running: training (45%)'."""
    stage = f": {job['stage']}" if job.get("stage") else ""
    return f"{job['status']}{stage} ({float(job.get('fraction') or 0):.0%})"


def jobs_table(jobs: list[dict[str, Any]]) -> pd.DataFrame:
    def asked(request: dict[str, Any]) -> str:
        if request.get("dataset_ids"):
            ids = request["dataset_ids"]
            return f"{', '.join(short(i) for i in ids)}; held out from {request.get('holdout_from_year')}"
        if request.get("since"):
            return f"readings {utc(request['since'])} to {utc(request.get('until'))}"
        return MISSING

    return pd.DataFrame(
        [{"started": utc(j.get("created_at")), "status": j["status"], "stage": j.get("stage"),
          "version": j.get("version"), "trained on": asked(j.get("request") or {}), "error": j.get("error")}
         for j in jobs],
        columns=["started", "status", "stage", "version", "trained on", "error"],
    )  # fmt: skip


def history_table(moves: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"moved at": utc(m["moved_at"], seconds=True), "alias": m["alias"], "from": m.get("from_version"),
          "to": m.get("to_version"), "by key": m.get("moved_by")} for m in moves],
        columns=["moved at", "alias", "from", "to", "by key"],
    )  # fmt: skip


def trainable_datasets(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The uploaded accident files an ECLO version can learn from (outcomes, with the death and serious-injury
    counts), and how many others hold outcomes without those counts."""
    files = [d for d in items if d.get("kind") != "table" and d.get("has_outcomes")]
    usable = [d for d in files if all(c in (d.get("columns") or []) for c in SEVERE_COLUMNS)]
    return usable, len(files) - len(usable)
