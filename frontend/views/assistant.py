"""Ask an LLM about the service's data: it answers with the service's own tools (forecasts, the risk ranking, the
datasets' queries), each call shown with its inputs, output and time. Conversations are kept by the API per key;
the Anthropic key is the user's own, kept in this browser session only and sent with each question."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from frontend.client import ApiError, ApiUnavailable
from frontend.connection import api_call, caller_key, client, show_error
from frontend.sign_in import LLM_KEY  # st.session_state (the password widget's): this browser session only

MODEL = "assistant_model"
DATASET = "assistant_dataset"
CURRENT = "assistant_conversation"  # the open conversation's id; none: the next question starts one
MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
NO_DATASET = ""
LISTED = 30  # conversations in the sidebar
TITLE_CHARS = 48
# A tool output's lists of rows worth a bar chart, in this order; then any other list of rows.
ROW_KEYS = ("rows", "ranking", "forecasts", "items", "slowest", "values", "bins")
VALUE_COLUMNS = ("count", "rows", "p_severe", "relative_risk", "eclo", "mean_eclo", "speed_mph", "value", "mean")
MAX_BARS = 30


# Reads, cached per key (`caller`) like the other pages'; the conversations are read afresh on each run.
@st.cache_data(ttl=15, show_spinner=False)
def _datasets(caller: str | None) -> list[dict[str, Any]]:
    return list(client().datasets(size=100)["items"])


def chart_of(output: Any) -> tuple[pd.DataFrame, str, str, str] | None:
    """A tool output's rows worth a bar chart: (the rows, the label column, the value column, the output's key).
    The rows: the first list of objects (`rows`, `ranking`, `forecasts`, ... first) with a numeric column; the
    label: its first text column (else its first numeric one, else the row's number)."""
    if not isinstance(output, dict):
        return None
    keys = [k for k in ROW_KEYS if k in output] + [k for k in output if k not in ROW_KEYS]
    for key in keys:
        rows = output[key]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            continue
        frame = pd.DataFrame(rows[:MAX_BARS])
        numeric = [
            c
            for c in frame.columns
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        ]
        if not numeric:
            continue
        texts = [c for c in frame.columns if c not in numeric and frame[c].map(lambda v: isinstance(v, str)).all()]
        if texts:
            label = texts[0]
        elif len(numeric) > 1:
            label = numeric[0]
        else:
            frame["#"], label = range(1, len(frame) + 1), "#"
        candidates = [c for c in numeric if c != label]
        value = next((c for c in VALUE_COLUMNS if c in candidates), candidates[-1] if candidates else None)
        if value is None:
            continue
        frame[label] = frame[label].astype(str)
        return frame, label, value, key
    return None


def step_label(step: dict[str, Any]) -> str:
    elapsed = step.get("elapsed_ms")
    shown = f" · {elapsed:,.0f} ms" if isinstance(elapsed, int | float) else ""
    return f"#{step['order']} {step['name']}{shown}{' · error' if step.get('is_error') else ''}"


def usage_caption(message: dict[str, Any]) -> str:
    usage = message.get("usage") or {}
    parts = [f"{usage.get('input_tokens', 0):,} tokens in · {usage.get('output_tokens', 0):,} out"]
    if message.get("model"):
        parts.append(message["model"])
    if message.get("cached"):
        parts.append("cached answer (the same first question was answered before)")
    return " · ".join(parts)


def _step(step: dict[str, Any], where: str) -> None:
    with st.expander(step_label(step), icon=":material/build:"):
        st.markdown("**Input**")
        st.json(step.get("input") or {}, expanded=True)
        st.markdown("**Output**" + (" (the tool failed)" if step.get("is_error") else ""))
        output = step.get("output")
        if isinstance(output, dict | list):
            st.json(output, expanded=1)
        else:
            st.text(str(output))
        found = chart_of(output)
        if found is not None:
            frame, label, value, key = found
            figure = px.bar(frame, x=label, y=value, title=f"{key}: {value} by {label}", height=300)
            figure.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
            st.plotly_chart(figure, key=f"chart-{where}-{step['order']}")


def _message(message: dict[str, Any], where: str) -> None:
    with st.chat_message(message["role"]):
        st.markdown(message["content"] or "_(no text)_")
        if message["role"] != "assistant":
            return
        for step in message.get("steps") or []:
            _step(step, where)
        st.caption(usage_caption(message))


def _open(conversation_id: str | None) -> None:
    """Open a conversation (none: the next question starts a new one)."""
    if conversation_id:
        st.session_state[CURRENT] = st.query_params["conversation"] = conversation_id
    else:
        st.session_state.pop(CURRENT, None)
        st.query_params.pop("conversation", None)


def _title(conversation: dict[str, Any]) -> str:
    title = " ".join((conversation.get("title") or "Untitled").split())
    return title if len(title) <= TITLE_CHARS else f"{title[: TITLE_CHARS - 1]}…"


def _sidebar(datasets: dict[str, dict[str, Any]], current: dict[str, Any] | None) -> tuple[str | None, str]:
    """The LLM key and model, the dataset of a new conversation, and the conversations; (the key, the model)."""
    with st.sidebar:
        st.subheader("Assistant", divider="gray")
        key = st.text_input(
            "Anthropic API key",
            type="password",
            key=LLM_KEY,
            persist_state="session",
            placeholder="sk-ant-…",
            help="Yours: sent with each question to this service's API (X-Anthropic-API-Key), which passes it to "
            "Anthropic for that question only and never stores it. It is kept in this browser session only. "
            "Leave it empty when the server has a key of its own.",
        )
        kept = st.session_state.get(MODEL)
        model = st.selectbox(
            "Model",
            MODELS + ([kept] if kept and kept not in MODELS else []),
            key=MODEL,
            persist_state="session",
            accept_new_options=True,
            help="Any model name of the provider may be typed in.",
        )
        ids = [NO_DATASET, *datasets]
        if st.session_state.get(DATASET) not in ids:
            st.session_state.pop(DATASET, None)
        st.selectbox(
            "Dataset to talk about",
            ids,
            key=DATASET,
            persist_state="session",
            format_func=lambda i: datasets[i]["name"] if i else "none",
            on_change=_open,
            args=(None,),
            help="A new conversation is about this dataset: the model is given its profile first. Choosing one "
            "starts a new conversation.",
        )
        st.button("New conversation", icon=":material/add_comment:", on_click=_open, args=(None,), width="stretch")
        with api_call():
            listed = client().conversations(size=LISTED)
        if listed["items"]:
            st.caption(f"Conversations ({listed['total']:,})" if listed["total"] > LISTED else "Conversations")
        for item in listed["items"]:
            chosen = current is not None and item["id"] == current["id"]
            st.button(
                _title(item),
                key=f"conversation-{item['id']}",
                on_click=_open,
                args=(item["id"],),
                type="primary" if chosen else "tertiary",
                help=f"{item['messages']} messages · last active {item['updated_at'][:16].replace('T', ' ')} UTC"
                + (f" · dataset {item['dataset_id']}" if item.get("dataset_id") else ""),
                width="stretch",
            )
        if current is not None and st.button("Delete this conversation", icon=":material/delete:", width="stretch"):
            with api_call():
                client().delete_conversation(current["id"])
            _open(None)
            st.rerun()
    return key or None, model or MODELS[0]


def _ask(question: str, conversation: dict[str, Any] | None, llm_key: str | None, model: str) -> None:
    """The question, then its answer as it streams: each tool call in a status box, the text as it comes. Saved,
    the page runs again to show it as kept; a refused question shows the API's message."""
    with st.chat_message("user"):
        st.markdown(question)
    created = conversation is None
    if conversation is None:
        with api_call():
            conversation = client().create_conversation(st.session_state.get(DATASET) or None)
    with st.chat_message("assistant"):
        status = st.status("Thinking…", expanded=True)
        text = st.empty()
        running: dict[int, Any] = {}
        answer, failure, saved = "", None, None
        try:
            for event, data in client().ask_stream(conversation["id"], question, model, llm_key):
                if event == "tool_call":
                    status.update(label=f"Calling {data['name']}…")
                    running[data["order"]] = status.empty()
                    running[data["order"]].markdown(f"`#{data['order']}` **{data['name']}** running…")
                elif event == "tool_result":
                    shown = running.get(data["order"]) or status.empty()
                    marker = ":red[:material/error:]" if data.get("is_error") else ":green[:material/check:]"
                    shown.markdown(f"{marker} `#{data['order']}` **{data['name']}** · {data['elapsed_ms']:,.0f} ms")
                elif event == "text":
                    answer += data.get("delta", "")
                    text.markdown(answer + "▌")
                elif event == "done":
                    saved = data
                elif event == "error":
                    failure = (data.get("error") or {}).get(
                        "message"
                    ) or f"the answer failed (HTTP {data.get('status')})"
        except ApiUnavailable as exc:
            failure = exc.message
        except ApiError as exc:
            failure = exc.message
        if saved is None:
            status.update(label="The question was not answered", state="error", expanded=bool(running))
            text.markdown(answer)
            st.error(failure or "the answer ended without being saved")
            if created:  # nothing was saved in it: not kept as an empty conversation
                try:
                    client().delete_conversation(conversation["id"])
                except ApiError:
                    _open(conversation["id"])
            return
        calls = len(running)
        status.update(label=f"{calls} tool call{'s' if calls != 1 else ''}" if calls else "Answered without tools",
                      state="complete", expanded=False)  # fmt: skip
    _open(saved["conversation_id"])
    st.rerun()


def page() -> None:
    st.title("Assistant")
    st.markdown(
        "Ask about accident severity, congestion or an uploaded dataset in plain words: the model answers with this "
        "service's own tools (predictions, forecasts, the risk ranking, queries of a dataset), each call shown with "
        "what it asked and what it got."
    )
    try:
        datasets = {d["id"]: d for d in _datasets(caller_key())}
    except ApiUnavailable as exc:
        show_error(exc)
    except ApiError:
        datasets = {}  # the key may not read datasets: conversations without one still work
    wanted = st.session_state.get(CURRENT) or st.query_params.get("conversation")
    current = None
    if wanted:
        try:
            current = client().conversation(wanted)
        except ApiError as exc:
            if exc.status not in (404, 422):
                show_error(exc)
            _open(None)
    llm_key, model = _sidebar(datasets, current)

    if current is not None:
        about = (
            datasets.get(current["dataset_id"], {}).get("name", current["dataset_id"])
            if current["dataset_id"]
            else None
        )
        st.caption(f"**{_title(current)}**" + (f" · about the dataset {about}" if about else ""))
        for message in current["messages"]:
            _message(message, f"{current['id']}-{message['position']}")
    elif st.session_state.get(DATASET):
        st.caption(f"A new conversation about the dataset {datasets[st.session_state[DATASET]]['name']}.")
    if not llm_key:
        st.info(
            "Enter your Anthropic API key in the sidebar to ask (unless the server has a key of its own). It stays in "
            "this browser session and is sent with each question only.",
            icon=":material/key:",
        )
    question = st.chat_input("Ask about traffic, accidents or a dataset", max_chars=8000)
    if question:
        _ask(question, current, llm_key, model)


# Streamlit runs a page as __main__; imported (the tests), the module gives its helpers only.
if __name__ == "__main__":
    page()
