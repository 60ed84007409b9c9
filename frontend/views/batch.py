"""A CSV of up to 100 rows scored as a batch by the workers; a fragment follows its progress live."""

import io

import pandas as pd
import streamlit as st

from frontend.connection import api_call, client
from frontend.labels import plural
from frontend.model_inputs import input_fields, model_or_stop
from frontend.settings import get_settings
from frontend.spreadsheet import csv_bytes
from frontend.tables import dataframe

MAX_ROWS = 100
FINAL = ("success", "partial", "failure")
EXAMPLES = {
    "weather": ["맑음", "비", "흐림"],
    "road_surface": ["건조", "젖음/습기", "건조"],
    "road_type": ["교차로", "단일로 - 기타", "교차로 - 교차로안"],
    "accident_type": ["차대차", "차대사람", "차량단독"],
    "time_period": ["", "", "출근시간대"],
    "district": ["중구", "대구광역시 수성구 범어동", "달서구"],
    "day_of_week": ["월요일", "금요일", "화요일"],
    "accident_hour": [14, 22, 8],
    "accident_year": [2024, 2024, 2024],
    "accident_month": [12, 12, 12],
    "accident_day": [9, 13, 10],
}

st.title("Batch scoring")
model = model_or_stop()
allowed = model["allowed_values"]
fields = input_fields(model)
names = [f["name"] for f in fields]
integers = [f["name"] for f in fields if f.get("kind") == "integer"]
template = pd.DataFrame({name: EXAMPLES.get(name, ["", "", ""]) for name in names})
st.download_button("Download the CSV template", csv_bytes(template), "eclo_batch_template.csv", "text/csv")


def row_issues(row: dict) -> str:
    """What the API will reject in this row (it scores the others); the API stays the authority."""
    issues = [f"{f['name']} missing" for f in fields if f.get("required") and row.get(f["name"]) in (None, "")]
    for field in (f["name"] for f in fields if f.get("kind") == "category"):
        value = row.get(field)
        if value not in (None, "") and value not in allowed[field] and not _known_district(field, value):
            issues.append(f"{field} '{value}' unknown")
    for field in integers:
        if row.get(field) not in (None, "") and not isinstance(row[field], int):
            issues.append(f"{field} not a whole number")
    return "; ".join(issues)


def _known_district(field: str, value: str) -> bool:
    parts = value.split()
    return (
        field == "district"
        and len(parts) == 3
        and parts[0].endswith("광역시")
        and " ".join(parts[1:]) in allowed[field]
    )


def read_rows(data: bytes) -> list[dict]:
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    rows = []
    for record in frame.to_dict("records"):
        row = {k.strip(): v.strip() for k, v in record.items()}
        for field in integers:
            if row.get(field, "").lstrip("-").isdigit():
                row[field] = int(row[field])
        if not row.get("time_period"):
            row.pop("time_period", None)
        rows.append(row)
    return rows


def problem_of(error: dict) -> str:
    """What the API refused in a row: each field's reason ("district: unknown value 'Atlantis'; …"), else its
    message."""
    reasons = [f"{d['field']}: {d['message']}" if d.get("field") else d["message"]
               for d in error.get("details") or [] if isinstance(d, dict) and d.get("message")]  # fmt: skip
    return "; ".join(reasons) or error["message"]


def results_table(rows: list[dict], status: dict) -> pd.DataFrame:
    """One line per row sent, in order: its answer (or the API's reason for refusing it), then the row itself."""
    answers = {r["index"]: r for r in status["results"]}
    errors = {e["index"]: problem_of(e) for e in status["errors"]}
    lines = []
    for index, row in enumerate(rows):
        answer = answers.get(index)
        lines.append({
            "row": index + 1,
            "risk_level": answer["risk_level"] if answer else None,
            "p_severe": round(answer["p_severe"], 3) if answer else None,
            "relative_risk": round(answer["relative_risk"], 3) if answer else None,
            "eclo": round(answer["eclo"], 3) if answer else None,
            "problem": errors.get(index, ""),
            "notes": "; ".join(answer.get("notes", [])) if answer else "",
            **row,
        })  # fmt: skip
    table = pd.DataFrame(lines)
    return table.drop(columns=[c for c in ("problem", "notes") if not table[c].any()])  # shown when there are any


def progress_bar(status: dict) -> None:
    done, total = status["progress"]["done"], status["progress"]["total"]
    st.progress(done / total, text=f"{status['status']}: {done} of {total} rows")


@st.fragment(run_every=get_settings().batch_poll_seconds)
def follow_batch() -> None:
    """Polls the running batch and redraws only its progress bar; a full rerun shows the results once done."""
    rows, accepted = st.session_state["following"]
    with api_call():
        status = client().batch(accepted["poll_url"])
    progress_bar(status)
    if status["status"] in FINAL:
        del st.session_state["following"]
        st.session_state["batch"] = (rows, status)
        st.rerun()


uploaded = st.file_uploader(f"A CSV with the template's columns, up to {MAX_ROWS} rows", type=["csv"])
if uploaded is not None:
    try:
        rows = read_rows(uploaded.getvalue())
    except (ValueError, UnicodeDecodeError) as exc:
        st.error(f"That file is not a readable UTF-8 CSV: {exc}")
        st.stop()
    if not rows:
        st.warning("The file has a header but no rows.")
        st.stop()
    if len(rows) > MAX_ROWS:
        st.error(
            f"The file has {len(rows)} rows; a batch holds at most {MAX_ROWS}. "
            f"Split it into {-(-len(rows) // MAX_ROWS)} files of up to {MAX_ROWS} rows."
        )
        st.stop()
    preview = pd.DataFrame(rows)
    preview.insert(0, "issues", [row_issues(row) for row in rows])  # first: the columns after it run off the page
    flagged = int((preview["issues"] != "").sum())
    st.subheader(f"Preview: {len(rows)} rows")
    if flagged:
        st.warning(f"{plural(flagged, 'row')} {'has' if flagged == 1 else 'have'} issues: the API will report them "
                   "by row and score the others.")  # fmt: skip
    st.dataframe(preview, hide_index=True, column_config={"district": st.column_config.TextColumn(width="medium")})

    if st.button(f"Score {len(rows)} rows", type="primary"):
        with api_call():
            accepted = client().submit_batch(rows)
        st.session_state.pop("batch", None)
        st.session_state["following"] = (rows, accepted)

if "following" in st.session_state:
    follow_batch()
elif "batch" in st.session_state:
    rows, status = st.session_state["batch"]
    progress_bar(status)
    table = results_table(rows, status)
    results, errors = len(status["results"]), len(status["errors"])
    message = f"Batch {status['status']}: {plural(results, 'result')}, {plural(errors, 'error')}."
    (st.success if not errors else st.warning)(message)
    # The answers first: the row's own columns follow, as sent.
    dataframe(table, hide_index=True, column_config={
        "row": st.column_config.NumberColumn(width=50),
        "risk_level": "risk",
        "p_severe": st.column_config.NumberColumn("severe", format="percent", help="chance of a death or serious "
                                                  "injury"),
        "relative_risk": st.column_config.NumberColumn("× average", format="%.2f", help="relative risk"),
        "eclo": st.column_config.NumberColumn("ECLO", format="%.2f", help="expected ECLO"),
        "district": st.column_config.TextColumn(width="medium"),
    })  # fmt: skip
    st.download_button("Download the results (CSV)", csv_bytes(table), "eclo_batch_results.csv", "text/csv")
