"""The model lifecycle: a model's versions side by side; a trained version beside the champion and the baselines on
the same held-out rows; training a new version (ECLO from uploaded accident files, congestion from stored
readings) with its live progress; promoting, setting a challenger and rolling back (after a confirmation, with an
admin key: frontend/admin.py); the history of those moves; the challenger's shadow scores; the champion's drift."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import streamlit as st

from frontend.admin import admin_call, admin_client, require_admin
from frontend.client import ApiError
from frontend.connection import api_call, client
from frontend.model_lifecycle import (
    TRAINABLE,
    TRAINING_FINAL,
    bins_chart,
    comparison_caption,
    comparison_table,
    drift_chart,
    drift_rows,
    drift_table,
    history_table,
    job_text,
    jobs_table,
    newest_compared,
    number,
    short,
    trainable_datasets,
    version_label,
    versions_table,
)
from frontend.tables import MISSING, dataframe, utc

TRAINING_POLL_SECONDS = 1.5
LOG_LINES = 8
DATASETS_PAGE = "views/datasets.py"
# st.session_state: the chosen model; the alias move waiting for its confirmation; what the last action did
MODEL, PENDING, DONE = "models_page_model", "models_page_pending", "models_page_done"


def today() -> date:
    return datetime.now(UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


@st.cache_data(ttl=300, show_spinner=False)
def dataset_years(dataset_id: str, column: str, uploaded_at: str) -> tuple[int, int] | None:
    """The first and last accident year of an uploaded accident file: the least and greatest of its date column
    (a Dacon 사고일시 reads '2021-12-31 18', and compares as text when a bad row keeps it text) or of its
    accident_year; None when unknown."""
    del uploaded_at  # in the cache's key only: a file uploaded again
    query = {"aggregates": [{"op": "min", "column": column, "name": "first"},
                            {"op": "max", "column": column, "name": "last"}]}  # fmt: skip
    try:
        (row,) = client().query_dataset(dataset_id, query)["rows"]
        return int(str(row["first"])[:4]), int(str(row["last"])[:4])
    except (ApiError, ValueError, TypeError, KeyError):
        return None


def year_column(dataset: dict[str, Any]) -> str | None:
    return next((c for c in ("사고일시", "accident_year") if c in (dataset.get("columns") or [])), None)


st.title("Models")
st.caption("Each model's versions: the committed default and those trained here. The **champion** is what every "
           "process serves; a **challenger** is scored in its shadow on the single predictions, for comparison. A "
           "trained version is compared with the champion of its training time on the same held-out rows.")  # fmt: skip

with api_call():
    models = client().models()
names = [m["name"] for m in models]
if not names:
    st.info("The API serves no model.")
    st.stop()
current = st.session_state.get(MODEL)
name = st.selectbox("Model", names, index=names.index(current) if current in names else 0,
                    format_func=lambda n: f"{n} ({next(m.get('kind') for m in models if m['name'] == n)})")  # fmt: skip
st.session_state[MODEL] = name

with api_call():
    listing = client().model_versions(name)
    jobs = client().training_jobs(name)
    moves = client().alias_history(name)
versions = listing["versions"]
by_version = {v["version"]: v for v in versions}
kind = next((v["kind"] for v in versions if v.get("kind")), "")
champion, challenger = listing["champion"], listing["challenger"]
admin = admin_client()
sign_in_shown: list[str] = []  # the "Sign in as admin" form is shown once, in the first section that needs it


def admin_or_sign_in(section: str) -> Any:
    """The admin client; else the sign-in form (in the first section that asks) or a pointer to it."""
    if admin is not None:
        return admin
    if not sign_in_shown:
        sign_in_shown.append(section)
        return require_admin(section)
    st.info(f"{section} needs an admin key too: sign in as admin above.")
    return None


done = st.session_state.pop(DONE, None)
if done:
    st.success(done)

cols = st.columns(4)
cols[0].metric("Champion", short(champion), help=f"version {champion}: what every process serves")
cols[1].metric("Challenger", short(challenger), help=f"version {challenger}" if challenger else "none set")
cols[2].metric("Versions", f"{len(versions)}", help="the committed default and the trained versions kept")
cols[3].metric("Trained versions kept", f"{listing['keep_versions']}",
               help="the last MODEL_KEEP_VERSIONS trained versions cannot be deleted; nor an aliased one")  # fmt: skip

st.subheader("Versions")
side_by_side = versions_table(listing)
dataframe(side_by_side, height=35 * (len(side_by_side) + 1) + 3)  # every row, unscrolled
st.caption("Each version's figures are on its own held-out rows (its own later years or test windows): compare two "
           "versions on the same rows below.")  # fmt: skip

st.subheader("Compared on the same rows")
compared = [v for v in versions if v.get("comparison")]
if not compared:
    st.info("No trained version yet. A version trained here is scored beside the champion of its training time and "
            "the baselines on the same held-out rows.")  # fmt: skip
else:
    newest = newest_compared(listing)
    options = [v["version"] for v in compared]
    chosen = st.selectbox("Trained version", options, index=options.index(newest["version"]) if newest else 0,
                          format_func=lambda v: version_label(by_version[v]),
                          key=f"compare-{name}-{len(options)}")  # fmt: skip
    comparison = by_version[chosen]["comparison"]
    dataframe(comparison_table(kind, comparison), hide_index=True, column_config={
        "RMSLE": st.column_config.NumberColumn(format="%.4f"),
        "severe AUC": st.column_config.NumberColumn(format="%.3f"),
        "severe Brier": st.column_config.NumberColumn(format="%.4f"),
        "rows": st.column_config.NumberColumn(format="localized"),
        **{f"MAE +{m} min": st.column_config.NumberColumn(format="%.3f") for m in ("15", "30", "60")},
    })  # fmt: skip
    st.caption(comparison_caption(kind, comparison))
    for note in comparison.get("notes") or []:
        st.caption(f"· {note}")


@st.fragment(run_every=TRAINING_POLL_SECONDS)
def follow_training(model: str, job_id: str) -> None:
    """Redraws the running job's progress and last log lines; a full rerun once it is over (its version listed)."""
    with api_call():
        job = client().training_job(model, job_id)
    if job["status"] in TRAINING_FINAL:
        st.rerun()
    st.progress(float(job["fraction"]), text=job_text(job))
    st.code("\n".join(job["log"][-LOG_LINES:]) or "(no log line yet)", language=None)
    if admin is not None and st.button("Cancel the training", key=f"cancel-{job_id}"):
        with admin_call():
            admin.cancel_training(model, job_id)
        st.rerun()


def eclo_form(trainer: Any) -> None:
    with api_call():
        items = client().datasets(size=100)["items"]
    usable, lacking = trainable_datasets(items)
    if lacking:
        st.caption(f"{lacking} uploaded file{'s' if lacking != 1 else ''} with outcomes lack the death and "
                   "serious-injury counts (사망자수, 중상자수) and cannot train a version.")  # fmt: skip
    if not usable:
        st.info("No uploaded accident file with outcomes (ECLO or the injury counts) yet: upload one on the Datasets "
                "page.")  # fmt: skip
        st.page_link(DATASETS_PAGE, label="Datasets", icon=":material/dataset:")
        return
    labels = {d["id"]: f"{d['name']} · {d['rows']:,} rows · uploaded {utc(d['uploaded_at'])} ({d['id'][:8]})"
              for d in usable}  # fmt: skip
    chosen = st.multiselect("Accident files with outcomes", list(labels), default=list(labels)[:1],
                            format_func=labels.__getitem__, key=f"train-datasets-{name}")  # fmt: skip
    spans = [dataset_years(d["id"], column, d["uploaded_at"]) if (column := year_column(d)) else None
             for d in usable if d["id"] in chosen]  # fmt: skip
    known = [s for s in spans if s is not None]
    first, last = (min(s[0] for s in known), max(s[1] for s in known)) if known else (None, None)
    suggested = last if last is not None and first is not None and last > first else today().year - 1
    year = st.number_input("First held-out year", min_value=2000, max_value=2100, value=suggested, step=1,
                           key=f"holdout-{name}-{suggested}",
                           help="the version is trained on the years before it and compared with the champion on "
                                "the rows of this year and after; at least 1,000 rows before, 100 from it")  # fmt: skip
    if first is not None:
        st.caption(f"The chosen files hold accidents of {first}-{last}.")
    if st.button("Train a new version", type="primary", disabled=not chosen, key=f"train-{name}"):
        with admin_call():
            trainer.train_model(name, {"dataset_ids": chosen, "holdout_from_year": int(year)})
        st.rerun()


def congestion_form(trainer: Any) -> None:
    left, right = st.columns(2)
    since = left.date_input("Readings from (UTC day)", value=today() - timedelta(days=7), key=f"since-{name}")
    until = right.date_input("Readings to (UTC day, included)", value=today(), key=f"until-{name}")
    st.caption("The readings stored in that range, of the registered sensors: at least two days of them.")
    if until < since:
        st.warning("The last day is before the first.")
        return
    if st.button("Train a new version", type="primary", key=f"train-{name}"):
        body = {"since": day_start(since).isoformat(), "until": day_start(until + timedelta(days=1)).isoformat()}
        with admin_call():
            trainer.train_model(name, body)
        st.rerun()


st.subheader("Train a new version")
running = next((j for j in jobs if j["status"] not in TRAINING_FINAL), None)
if running is not None:
    st.markdown(f"Training job `{running['job_id']}`, asked {utc(running['created_at'])}:")
    follow_training(name, running["job_id"])
elif kind not in TRAINABLE:
    st.info(f"A model of kind {kind!r} cannot be trained here (only {', '.join(TRAINABLE)}).")
else:
    latest = jobs[0] if jobs else None
    if latest is not None and latest["status"] == "success":
        st.success(f"The last training ({utc(latest['finished_at'])}) made version {latest['version']}.")
    elif latest is not None:
        outcome = "failed" if latest["status"] == "failure" else "was cancelled"
        st.warning(f"The last training ({utc(latest['finished_at'] or latest['created_at'])}) {outcome}: "
                   f"{latest.get('error') or 'no reason given'}")  # fmt: skip
    trainer = admin_or_sign_in("Training a version")
    if trainer is not None:
        if kind == "eclo":
            eclo_form(trainer)
        else:
            congestion_form(trainer)
if jobs:
    with st.expander(f"Training jobs ({len(jobs)})"):
        dataframe(jobs_table(jobs), hide_index=True)


def describe(action: tuple[str, str, str | None]) -> str:
    what, _, version = action
    if what == "champion":
        return (f"Promote version {version} to champion? Every process serves it within a few seconds, in place of "
                f"{champion}.")  # fmt: skip
    if what == "challenger":
        return f"Set version {version} as the challenger? It is scored in the shadow of the champion's answers."
    if what == "remove":
        return f"Remove the challenger ({challenger})? Shadow scoring stops."
    return f"Roll the champion back from {champion} to {version}?"


def act(trainer: Any, action: tuple[str, str, str | None]) -> str:
    what, model, version = action
    if what == "remove":
        answer = trainer.remove_challenger(model)
        return f"The challenger {answer['previous']} is removed."
    if what == "rollback":
        answer = trainer.rollback_model(model)
    else:
        answer = trainer.move_alias(model, what, version)
    return (f"The {answer['alias']} of {model} moved from {answer['previous'] or 'the default'} to "
            f"{answer['version']}: every process follows within {answer['reload_seconds']:g} s.")  # fmt: skip


st.subheader("Champion and challenger")
mover = admin_or_sign_in("Promoting, setting a challenger or rolling back")
if mover is not None:
    options = [v["version"] for v in versions]
    # keyed by the count too: a version just trained is the one chosen
    chosen = st.selectbox("Version", options, index=len(options) - 1, key=f"alias-version-{name}-{len(options)}",
                          format_func=lambda v: version_label(by_version[v]))  # fmt: skip
    target = listing.get("rollback_to")
    buttons = st.container(horizontal=True)
    asked: tuple[str, str, str | None] | None = None
    if buttons.button("Promote to champion", disabled=chosen == champion, key=f"promote-{name}"):
        asked = ("champion", name, chosen)
    if buttons.button("Set as challenger", disabled=chosen in (champion, challenger), key=f"challenge-{name}"):
        asked = ("challenger", name, chosen)
    if buttons.button("Remove the challenger", disabled=challenger is None, key=f"unchallenge-{name}"):
        asked = ("remove", name, None)
    if buttons.button("Roll back the champion", disabled=target is None, key=f"rollback-{name}",
                         help=f"back to {target}" if target else "the champion has no earlier version"):  # fmt: skip
        asked = ("rollback", name, target)
    if asked is not None:
        st.session_state[PENDING] = asked
    pending = st.session_state.get(PENDING)
    if pending is not None and pending[1] == name:
        with st.container(border=True):
            st.warning(describe(pending))
            answer = st.container(horizontal=True)
            if answer.button("Confirm", type="primary", key=f"confirm-{name}"):
                st.session_state.pop(PENDING, None)
                with admin_call():
                    st.session_state[DONE] = act(mover, pending)
                st.rerun()
            if answer.button("Cancel", key=f"cancel-move-{name}"):
                st.session_state.pop(PENDING, None)
                st.rerun()
st.markdown("**History**")
if moves:
    dataframe(history_table(moves), hide_index=True, height=min(35 * (len(moves) + 1) + 3, 300))
else:
    st.caption("The aliases have never moved: the champion is the committed default.")

st.subheader("Shadow scores")
with api_call():
    shadow = client().shadow_summary(name)
if shadow["challenger"] is None:
    st.info("No challenger: set one above, and every single prediction is also scored by it, off the answer's path.")
elif not shadow["count"]:
    st.info(f"The challenger {shadow['challenger']} has scored no single prediction yet.")
else:
    cols = st.columns(5)
    cols[0].metric("Predictions compared", f"{shadow['count']:,}")
    cols[1].metric("Mean absolute difference", number(shadow["mean_abs_difference"], 3))
    cols[2].metric("Mean difference", number(shadow["mean_difference"], 3), help="challenger minus champion")
    cols[3].metric("Largest difference", number(shadow["largest_difference"], 3))
    share = shadow["level_differs_share"]
    cols[4].metric("Level differs", MISSING if share is None else f"{share:.1%}",
                   help="share of predictions whose level (risk, congestion) differs")  # fmt: skip
    st.caption(f"Challenger {shadow['challenger']} against champion {shadow['champion']} on {shadow['compared']}, "
               f"{utc(shadow['first'])} to {utc(shadow['last'])}.")  # fmt: skip

st.subheader("Drift")
left, right = st.columns(2)
drift_from = left.date_input("Recorded from (UTC day)", value=today() - timedelta(days=6), key=f"drift-from-{name}")
drift_to = right.date_input("Recorded to (UTC day, included)", value=today(), key=f"drift-to-{name}")
if drift_to < drift_from:
    st.warning("The last day is before the first.")
    st.stop()
with api_call():
    report = client().model_drift(name, day_start(drift_from), day_start(drift_to + timedelta(days=1)))
fields = report["fields"]
drifted = [f["field"] for f in fields if f.get("drifted")]
cols = st.columns(3)
cols[0].metric("Recorded rows", f"{report['rows']:,}", help="single predictions (and scored datasets) of the window")
cols[1].metric("Input fields drifted", f"{len(drifted)} of {len(fields)}", help=", ".join(drifted) or None)
cols[2].metric("PSI threshold", f"{report['threshold']:g}")
st.caption(f"The champion {report['version']}'s inputs and answers recorded from {utc(report['since'])} to "
           f"{utc(report['until'])}, against the sample of its training data it keeps.")  # fmt: skip
if report.get("note"):
    st.info(report["note"])
if any(r.get("psi") is not None for r in drift_rows(report)):
    st.plotly_chart(drift_chart(report), width="stretch")
dataframe(drift_table(report), hide_index=True, column_config={
    "field": st.column_config.TextColumn(width="medium"),
    "values": st.column_config.NumberColumn(format="localized"),
    "PSI": st.column_config.NumberColumn(format="%.4f"),
    "p-value": st.column_config.NumberColumn(format="%.3g"),
    "drifted": st.column_config.CheckboxColumn(help=f"PSI ≥ {report['threshold']:g} on enough values"),
    "unseen share": st.column_config.NumberColumn(format="percent", help="recorded values the training never saw"),
    "note": st.column_config.TextColumn(width="large"),
})  # fmt: skip
with_bins = [r for r in drift_rows(report) if r.get("bins") and r.get("n")]
if with_bins:
    labels = [r["label"] for r in with_bins]
    worst = max(range(len(with_bins)), key=lambda i: with_bins[i].get("psi") or 0)
    shown = st.selectbox("Field's bins", labels, index=worst, key=f"drift-field-{name}")
    st.plotly_chart(bins_chart(with_bins[labels.index(shown)]), width="stretch")
