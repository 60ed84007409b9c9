"""Whole files: upload one (UTF-8 or CP949): an accident file (Dacon layout or the API's columns) is checked row by
row, scored on the workers with live progress and its results downloaded; any other table is kept to explore (the
Explore page). Read a file's validation report, share a read-only link, delete. Uploading, scoring, cancelling,
sharing and deleting ask for an admin key (frontend/admin.py); reading uses the dashboard's. Opened with
`?share=<token>`, the page shows that shared dataset read-only and nothing else."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from frontend.admin import admin_call, admin_client, require_admin
from frontend.client import ApiClient
from frontend.connection import api_call, client, public_api_url
from frontend.labels import plural
from frontend.settings import get_settings
from frontend.tables import utc

FINAL = ("success", "partial", "failure", "cancelled")
RUNNING = ("pending", "processing")
EXPLORE_PAGE = "views/explore.py"
TABLE = "table"  # a dataset's kind when it is no model's input: explored, never scored (the API answers 409)
UPLOAD_KINDS = {
    "auto": "auto: an accident file is checked against the model, any other table is kept as a table",
    "table": "table: keep it as a table to explore, whatever its columns",
    "eclo": "eclo: an accident file, refused unless it has the model's columns",
}


def _evaluation(job: dict[str, Any]) -> None:
    evaluation = job.get("evaluation")
    if not evaluation:
        return
    cols = st.columns(4)
    cols[0].metric("RMSLE of the model", f"{evaluation['rmsle']:.4f}")
    cols[1].metric(
        "RMSLE of a constant", f"{evaluation['constant_rmsle']:.4f}",
        help=f"always predicting the training mean, ECLO {evaluation['constant_eclo']:.2f}",
    )  # fmt: skip
    cols[2].metric("model / constant", f"{evaluation['ratio']:.3f}", help="below 1: the model does better")
    cols[3].metric("RMSLE of this file's own mean", f"{evaluation['file_mean_rmsle']:.4f}")
    st.caption(f"On the {evaluation['rows']:,} scored rows whose outcome (ECLO or injury counts) the file holds.")


def _downloads(results_url: str) -> None:
    """Links the browser follows to the API: for a share link's results, which need no key."""
    base = public_api_url()
    left, right = st.columns(2)
    left.link_button("Download results (CSV)", f"{base}{results_url}")
    right.link_button("Download results (Parquet)", f"{base}{results_url}?format=parquet")


def _fetched_downloads(dataset_id: str) -> None:
    """Results fetched by the dashboard (which holds the API key) when a button is clicked, not before."""
    left, right = st.columns(2)
    for column, label, format, mime in (
        (left, "Download results (CSV)", "csv", "text/csv"),
        (right, "Download results (Parquet)", "parquet", "application/vnd.apache.parquet"),
    ):
        column.download_button(
            label,
            data=lambda format=format: client().dataset_results(dataset_id, format),
            file_name=f"{dataset_id}-predictions.{format}",
            mime=mime,
            on_click="ignore",
        )


def _counts(dataset: dict[str, Any]) -> None:
    if dataset.get("kind") == TABLE:
        cols = st.columns(3)
        cols[0].metric("Rows", f"{dataset['rows']:,}")
        cols[1].metric("Columns", f"{len(dataset['columns']):,}")
        cols[2].metric("Size", f"{dataset['size_bytes'] / 1e6:.1f} MB")
        st.caption(f"{dataset['filename']} · a table (explored, not scored) · {dataset['encoding']} · uploaded "
                   f"{utc(dataset['uploaded_at'])} · id {dataset['id']} · SHA-256 "
                   f"{dataset['checksum'][:16]}…")  # fmt: skip
        return
    cols = st.columns(4)
    cols[0].metric("Rows", f"{dataset['rows']:,}")
    cols[1].metric("Valid", f"{dataset['valid_rows']:,}", help="checked against the model: these rows are scored")
    cols[2].metric("Invalid", f"{dataset['rows'] - dataset['valid_rows']:,}",
                   help=f"rows left out of scoring: {report_title(dataset)} in the validation report")  # fmt: skip
    cols[3].metric("Size", f"{dataset['size_bytes'] / 1e6:.1f} MB")
    st.caption(
        f"{dataset['filename']} · {dataset['layout']} layout · {dataset['encoding']} · checked against model "
        f"{dataset['model_name']} · uploaded {utc(dataset['uploaded_at'])} · id {dataset['id']} · SHA-256 "
        f"{dataset['checksum'][:16]}…"
    )


def report_title(dataset: dict[str, Any]) -> str:
    """'115 problems in 114 rows': the report lists problems, and a row can have several."""
    if dataset.get("kind") == TABLE or not dataset["problems"]:
        return "no problems"
    return f"{plural(dataset['problems'], 'problem')} in {plural(dataset['rows'] - dataset['valid_rows'], 'row')}"


def _report(report: dict[str, Any]) -> None:
    if report["total"] == 0:
        st.success("Every row is valid.")
        return
    st.dataframe(pd.DataFrame(report["items"]), hide_index=True)
    st.caption(f"Page {report['page']} of {report['pages']} of {plural(report['total'], 'problem')} (a row can "
               "have several); rows are counted from 1 below the header.")  # fmt: skip


token = st.query_params.get("share")
if token:
    st.title("Shared dataset")
    with api_call():
        shared = client().shared_dataset(token, size=200)
    dataset, job = shared["dataset"], shared["job"]
    st.subheader(dataset["name"])
    _counts(dataset)
    if job is not None and shared["predictions_url"]:
        st.success(f"Scored {job['progress']['done']:,} rows with model {job['model']}")
        _evaluation(job)
        _downloads(shared["predictions_url"])
    elif dataset.get("kind") == TABLE:
        st.info("A table: it is explored, not scored.")
    else:
        st.info("Not scored yet.")
    st.subheader(f"Validation report ({report_title(dataset)})")
    _report(dataset["report"])
    st.caption("A read-only view through a share link.")
    st.stop()

st.title("Datasets")
st.markdown(
    "Upload a CSV, UTF-8 or CP949. An accident file (the Dacon `train.csv`/`test.csv` columns or the API's field "
    "names `weather, road_surface, …`) is checked row by row against the model; bad rows are listed and left out of "
    "scoring, which spreads the file over every worker. Any other table (speed cameras, child protection zones, "
    "parking lots…) is kept as a table: explore it on the Explore page."
)

with api_call():
    listing = client().datasets(size=100)


def _upload_form(admin: ApiClient) -> bool:
    """The upload form, sending with the admin key; whether a file was stored."""
    with st.form("upload", border=False):
        upload = st.file_uploader("CSV file", type=["csv"])
        name = st.text_input("Name", max_chars=200, placeholder="e.g. Daegu 2022, Suseong-gu")
        left, right = st.columns(2)
        encoding = left.selectbox("Encoding", ["auto", "utf-8", "cp949"], help="auto: a BOM, else UTF-8, else CP949")
        kind = right.selectbox("Kind", list(UPLOAD_KINDS), format_func=UPLOAD_KINDS.__getitem__,
                               help="what the file is: auto tells an accident file from any other table")  # fmt: skip
        if not (st.form_submit_button("Upload and check", type="primary") and upload is not None):
            return False
        with st.spinner(f"Checking {upload.name}…"), admin_call():
            stored = admin.upload_dataset(upload.name, upload.getvalue(), name or upload.name, encoding, kind)
        st.session_state["dataset"] = stored["id"]
        if stored.get("kind") == TABLE:
            st.success(f"{stored['name']}: a table of {stored['rows']:,} rows and {len(stored['columns'])} columns, "
                       "to explore")  # fmt: skip
        else:
            st.success(f"{stored['name']}: {stored['valid_rows']:,} of {stored['rows']:,} rows are valid")
    return True


with st.expander("Upload a file", expanded=not listing["items"]):
    uploader = require_admin("Uploading a file")
    if uploader is not None and _upload_form(uploader):
        with api_call():
            listing = client().datasets(size=100)
if not listing["items"]:
    st.info("No dataset yet: upload a file above.")
    st.stop()

st.subheader(plural(listing["total"], "dataset"))
table = pd.DataFrame(listing["items"])
table["invalid"] = table["rows"] - table["valid_rows"]
table["layout"] = table["layout"].fillna("–")  # a table has none
table["uploaded"] = table["uploaded_at"].map(lambda stamp: utc(stamp, seconds=True))
table["id"] = table["id"].str[:8]  # as the Dataset box names it; the whole id is under the counts below
table = table.rename(columns={"valid_rows": "valid", "has_outcomes": "outcomes"})
shown = ["name", "uploaded", "kind", "rows", "valid", "invalid", "layout", "encoding", "outcomes", "id"]
st.dataframe(table[shown], hide_index=True, height=min(35 * (len(table) + 1) + 3, 260), column_config={
    "name": st.column_config.TextColumn(width=270),
    "outcomes": st.column_config.CheckboxColumn(help="the file holds the outcome (ECLO or injury counts)"),
    "valid": st.column_config.NumberColumn(help="rows checked against the model: scored"),
    "invalid": st.column_config.NumberColumn(help="rows left out of scoring (see the validation report)"),
    "id": st.column_config.TextColumn(help="its first 8 characters"),
})  # fmt: skip
items = {item["id"]: item for item in listing["items"]}
ids = list(items)
current = st.session_state.get("dataset")
chosen = st.selectbox(
    "Dataset",
    ids,
    index=ids.index(current) if current in ids else 0,
    # the upload time and id tell apart files uploaded under one name
    format_func=lambda i: (
        f"{items[i]['name']} · {items[i]['kind']} · uploaded {utc(items[i]['uploaded_at'])} ({i[:8]})"
    ),
)
st.session_state["dataset"] = chosen


def _job_panel(dataset: dict[str, Any], job: dict[str, Any] | None) -> None:
    admin = require_admin("Scoring (or cancelling a job)")
    if admin is not None and (job is None or job["status"] not in RUNNING):
        again = "" if job is None else " again"
        if st.button(f"Score {dataset['valid_rows']:,} valid rows{again}", type="primary"):
            with admin_call():
                admin.score_dataset(dataset["id"])
            st.rerun()
    if job is None:
        return
    if job["status"] in RUNNING:
        follow_job(dataset["id"])
        return
    done, total = job["progress"]["done"], job["progress"]["total"]
    seconds = _seconds(job)
    if job["status"] in ("success", "partial"):
        st.success(f"Scored {done:,} rows" + (f" in {seconds:.1f} s" if seconds else ""))
    else:
        reason = f": {job['error']}" if job.get("error") else "."
        st.warning(f"The last job is {job['status']} after {done:,} of {total:,} rows{reason}")
    _evaluation(job)
    if job.get("results_url"):
        _fetched_downloads(dataset["id"])


def _seconds(job: dict[str, Any]) -> float | None:
    if not job.get("started_at") or not job.get("finished_at"):
        return None
    return (pd.Timestamp(job["finished_at"]) - pd.Timestamp(job["started_at"])).total_seconds()


@st.fragment(run_every=get_settings().batch_poll_seconds * 3)
def follow_job(dataset_id: str) -> None:
    """Redraws the progress of the running job; a full rerun once it is final."""
    with api_call():
        job = client().dataset_job(dataset_id)
    if job is None or job["status"] in FINAL:
        st.rerun()
    done, total = job["progress"]["done"], job["progress"]["total"]
    st.progress(done / total if total else 0.0, text=f"{job['status']}: {done:,} of {total:,} rows")
    admin = admin_client()
    if admin is not None and st.button("Cancel the job"):
        with admin_call():
            admin.cancel_dataset_job(dataset_id)
        st.rerun()


with api_call():
    dataset = client().dataset(chosen, size=200)
    job = client().dataset_job(chosen)
_counts(dataset)

if dataset.get("kind") == TABLE:
    exploring, report_tab, sharing = st.tabs(["Explore", f"Validation report ({report_title(dataset)})",
                                              "Share / delete"])  # fmt: skip
    with exploring:
        st.info("A table is explored, not scored: its columns, charts, a map of its points and what lies near another "
                "dataset's points are on the Explore page.")  # fmt: skip
        st.page_link(EXPLORE_PAGE, label=f"Explore {dataset['name']}", icon=":material/query_stats:")
else:
    scoring, report_tab, sharing = st.tabs(
        ["Scoring", f"Validation report ({report_title(dataset)})", "Share / delete"]
    )
    with scoring:
        _job_panel(dataset, job)
        st.page_link(EXPLORE_PAGE, label=f"Explore {dataset['name']}", icon=":material/query_stats:")
with report_tab:
    report = dataset["report"]
    if report["pages"] > 1:
        page = st.number_input("Page", min_value=1, max_value=report["pages"], value=1)
        if page != 1:
            with api_call():
                report = client().dataset(chosen, page=int(page), size=200)["report"]
    _report(report)
with sharing:
    admin = require_admin("Sharing or deleting a dataset")
    if admin is None:
        st.stop()
    if st.button("Create a read-only link"):
        with admin_call():
            share = admin.share_dataset(chosen)
        st.session_state["share"] = (chosen, share)
    if st.session_state.get("share", (None,))[0] == chosen:
        share = st.session_state["share"][1]
        page_url = str(st.context.url or "").split("?")[0]
        st.code(f"{page_url}?share={share['token']}", language=None)
        st.caption(f"This page, read-only. For programs, the API's own link: `{public_api_url()}{share['url']}`.")
        st.caption(f"Anyone with the link can read the dataset and its results until {utc(share['expires_at'])}.")
    confirm = st.checkbox("I want to delete this dataset, its results and its links")
    if st.button("Delete", disabled=not confirm):
        with admin_call():
            admin.delete_dataset(chosen)
        st.session_state.pop("dataset", None)
        st.rerun()
