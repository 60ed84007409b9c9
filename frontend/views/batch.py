"""A CSV of up to 100 rows scored as a batch by the workers, with a live progress bar."""

import io
import time

import pandas as pd
import streamlit as st

from frontend.client import ApiError, ApiUnavailable
from frontend.common import FIELDS, client, model_or_stop, show_api_error, show_unavailable

MAX_ROWS = 100
POLL_SECONDS = 0.3
POLL_TIMEOUT_SECONDS = 120
TEMPLATE = pd.DataFrame(
    [
        ["맑음", "건조", "교차로", "차대차", "", "중구", "월요일", 14, 2024, 12, 9],
        ["비", "젖음/습기", "단일로 - 기타", "차대사람", "", "대구광역시 수성구 범어동", "금요일", 22, 2024, 12, 13],
        ["흐림", "건조", "교차로 - 교차로안", "차량단독", "출근시간대", "달서구", "화요일", 8, 2024, 12, 10],
    ],
    columns=list(FIELDS),
)
INTEGER_FIELDS = ("accident_hour", "accident_year", "accident_month", "accident_day")

st.title("Batch scoring")
model = model_or_stop()
allowed = model["allowed_values"]
st.download_button(
    "Download the CSV template", TEMPLATE.to_csv(index=False).encode("utf-8"), "eclo_batch_template.csv", "text/csv"
)


def row_issues(row: dict) -> str:
    """What the API will reject in this row (it scores the others)."""
    issues = [f"{f} missing" for f in FIELDS if f != "time_period" and row.get(f) in (None, "")]
    for field in ("weather", "road_surface", "road_type", "accident_type", "district", "day_of_week", "time_period"):
        value = row.get(field)
        if value not in (None, "") and value not in allowed[field] and not _known_district(field, value):
            issues.append(f"{field} '{value}' unknown")
    for field in INTEGER_FIELDS:
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
        for field in INTEGER_FIELDS:
            if row.get(field, "").lstrip("-").isdigit():
                row[field] = int(row[field])
        if not row.get("time_period"):
            row.pop("time_period", None)
        rows.append(row)
    return rows


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
    preview["issues"] = [row_issues(row) for row in rows]
    flagged = int((preview["issues"] != "").sum())
    st.subheader(f"Preview: {len(rows)} rows")
    if flagged:
        st.warning(f"{flagged} row(s) have issues: the API will report them by row and score the others.")
    st.dataframe(preview, hide_index=True)

    if st.button(f"Score {len(rows)} rows", type="primary"):
        try:
            accepted = client().submit_batch(rows)
            bar = st.progress(0.0, text="queued")
            deadline = time.monotonic() + POLL_TIMEOUT_SECONDS
            while True:
                status = client().batch(accepted["poll_url"])
                done, total = status["progress"]["done"], status["progress"]["total"]
                bar.progress(done / total, text=f"{status['status']}: {done} of {total} rows")
                if status["status"] in ("success", "partial", "failure") or time.monotonic() > deadline:
                    break
                time.sleep(POLL_SECONDS)
            st.session_state["batch"] = (rows, status)
        except ApiUnavailable as exc:
            show_unavailable(exc)
        except ApiError as exc:
            show_api_error(exc)

if "batch" in st.session_state:
    rows, status = st.session_state["batch"]
    if status["status"] not in ("success", "partial", "failure"):
        st.warning(f"The batch is still {status['status']}; poll it later at {status['batch_id']}.")
    else:
        table = pd.DataFrame(rows)
        table["eclo"] = None
        table["risk_level"] = None
        table["error"] = None
        for result in status["results"]:
            table.loc[result["index"], ["eclo", "risk_level"]] = [round(result["eclo"], 3), result["risk_level"]]
        for error in status["errors"]:
            table.loc[error["index"], "error"] = error["message"]
        st.success(f"Batch {status['status']}: {len(status['results'])} results, {len(status['errors'])} errors.")
        st.dataframe(table, hide_index=True)
        st.download_button(
            "Download the results (CSV)",
            table.to_csv(index=False).encode("utf-8"),
            "eclo_batch_results.csv",
            "text/csv",
        )
