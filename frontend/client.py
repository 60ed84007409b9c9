"""The dashboard's only way to the API: a `requests.Session` with tenacity retries.

3 attempts with exponential backoff on connection errors, timeouts, 5xx and 429 (waiting what `Retry-After`
asks, when it asks); never a retry on another 4xx. A timeout on every call. API errors become `ApiError`
carrying the message of the API's error envelope. The assistant's streamed answer (`ask_stream`) is the exception: a
question may have reached the LLM once sent, so it is only retried when it never left (the connection refused).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

RETRY_AFTER_CAP_SECONDS = 30.0
LLM_KEY_HEADER = "X-Anthropic-API-Key"
# A streamed answer may wait this many times the timeout between two events (a long LLM turn, a slow tool).
STREAM_TIMEOUT_FACTOR = 12


class ApiError(Exception):
    """The API answered with an error (or did not answer at all: `status` None)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or []


class ApiUnavailable(ApiError):
    """The API could not be reached (connection refused, timeout, or 5xx/429 after every attempt)."""


class _Retryable(Exception):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return min(float(value), RETRY_AFTER_CAP_SECONDS) if value is not None else None
    except ValueError:
        return None


def _envelope(response: requests.Response) -> ApiError:
    try:
        error = response.json()["error"]
        return ApiError(error["message"], response.status_code, error.get("code"), error.get("details"))
    except (ValueError, KeyError, TypeError):
        return ApiError(f"the API answered HTTP {response.status_code}", response.status_code)


def _never_sent(exc: BaseException) -> bool:
    """Whether the request failed before it left: no connection was made (refused, or it timed out connecting)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _lines(raw: Any) -> Iterator[bytes]:
    """A streamed body's lines as they arrive: each read takes what has come (`read1`), never waiting to fill a
    buffer, so that an event is seen as soon as it is sent."""
    pending = b""
    while piece := raw.read1(65536):
        pending += piece
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def sse_events(lines: Iterable[bytes]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as (event, its JSON data): `event:` and `data:` lines, each event ended by a blank line;
    comments (`:`) skipped."""
    event, data = "message", []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r")
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    if data:
        yield event, json.loads("\n".join(data))


class ApiClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        session: requests.Session | None = None,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.session = session or requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self._backoff = wait_exponential(multiplier=backoff_seconds, max=8)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Retryable):
            asked = _retry_after(error.response)
            if asked is not None:
                return asked
        return self._backoff(state)

    def _send(self, method: str, path: str, accept: tuple[int, ...], **kwargs: Any) -> requests.Response:
        response = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
        if response.status_code not in accept and (response.status_code >= 500 or response.status_code == 429):
            raise _Retryable(response)
        return response

    def request(self, method: str, path: str, accept: tuple[int, ...] = (), raw: bool = False, **kwargs: Any) -> Any:
        """JSON of a 2xx answer (or of a status in `accept`), its bytes when `raw`; ApiError otherwise."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable | requests.ConnectionError | requests.Timeout)),
            reraise=True,
        )
        try:
            response = retrying(self._send, method, path, accept, **kwargs)
        except _Retryable as exc:
            error = _envelope(exc.response)
            raise ApiUnavailable(
                f"{error.message} (after {self.attempts} attempts)", error.status, error.code, error.details
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ApiUnavailable(f"cannot reach the API at {self.base_url} ({type(exc).__name__})") from exc
        if response.status_code >= 400 and response.status_code not in accept:
            raise _envelope(response)
        if raw:
            return response.content
        return response.json() if response.content else None

    # The API, endpoint by endpoint.
    def whoami(self) -> dict[str, Any]:
        """The key this client sends: its id, name and scopes (401 for none, or an unknown or revoked one)."""
        return self.request("GET", "/api/keys/me")

    def keys(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/keys")

    def create_key(self, name: str, scopes: list[str]) -> dict[str, Any]:
        """The new key's description, with the key itself (`key`), which the API shows this once."""
        return self.request("POST", "/api/keys", json={"name": name, "scopes": scopes})

    def revoke_key(self, key_id: str) -> None:
        self.request("DELETE", f"/api/keys/{quote(key_id, safe='')}")

    def models(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/models")["models"]

    def model(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/models/{name}")

    # The model lifecycle: versions, training jobs, the champion and challenger aliases, shadow scores, drift.
    def model_versions(self, name: str) -> dict[str, Any]:
        """Every version (oldest first) with its training data, metrics, comparison and aliases."""
        return self.request("GET", f"/api/models/{quote(name, safe='')}/versions")

    def train_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Start a training job (admin): ECLO `dataset_ids` and `holdout_from_year`, congestion `since` and
        `until` (ISO with zone); {job_id, status, poll_url}."""
        return self.request("POST", f"/api/models/{quote(name, safe='')}/versions", json=body)

    def training_jobs(self, name: str) -> list[dict[str, Any]]:
        """The model's latest training jobs, newest first."""
        return self.request("GET", f"/api/models/{quote(name, safe='')}/training")["jobs"]

    def training_job(self, name: str, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/models/{quote(name, safe='')}/training/{quote(job_id, safe='')}")

    def cancel_training(self, name: str, job_id: str) -> dict[str, Any]:
        path = f"/api/models/{quote(name, safe='')}/training/{quote(job_id, safe='')}/cancel"
        return self.request("POST", path)

    def move_alias(self, name: str, alias: str, version: str) -> dict[str, Any]:
        """Point `champion` or `challenger` at a version (admin); {alias, version, previous, reload_seconds}."""
        path = f"/api/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}"
        return self.request("PUT", path, json={"version": version})

    def remove_challenger(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/models/{quote(name, safe='')}/aliases/challenger")

    def rollback_model(self, name: str) -> dict[str, Any]:
        """Move the champion back to the version it pointed at before its last move (admin)."""
        return self.request("POST", f"/api/models/{quote(name, safe='')}/rollback")

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        """Every move of the model's aliases, newest first."""
        return self.request("GET", f"/api/models/{quote(name, safe='')}/aliases/history")["moves"]

    def shadow_summary(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/models/{quote(name, safe='')}/shadow")

    def model_drift(self, name: str, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        """The champion's drift report over [since, until) (zoned times; the API's defaults: the last 7 days)."""
        given = {"since": since and since.isoformat(), "until": until and until.isoformat()}
        params = {key: value for key, value in given.items() if value}
        return self.request("GET", f"/api/models/{quote(name, safe='')}/drift", params=params)

    def predict_eclo(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/predict/eclo", json=row)

    def submit_batch(self, rows: list[dict[str, Any]], model: str = "eclo") -> dict[str, Any]:
        return self.request("POST", f"/api/predict/{model}/batch", json={"items": rows})

    def batch(self, poll_url: str) -> dict[str, Any]:
        return self.request("GET", poll_url)

    def health(self) -> dict[str, Any]:
        """The health report; a 503 is an answer too (it names what is down)."""
        return self.request("GET", "/health", accept=(503,))

    def predictions(
        self,
        page: int = 1,
        size: int = 20,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of records, newest first, with the `total` that match (more than it when `total_exact` is
        false) and the `next` cursor (`since`, `until`: UTC, no zone)."""
        params = {"page": page, "size": size, "cursor": cursor, **record_filters(model, since, until)}  # None: left out
        return self.request("GET", "/api/predictions", params=params)

    def predictions_csv(
        self, model: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> bytes:
        """Every matching record as the API's CSV, oldest first."""
        return self.request("GET", "/api/predictions.csv", params=record_filters(model, since, until), raw=True)

    # Congestion: sensors, readings, forecasts.
    def sensors(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/traffic/sensors")

    def sensor(self, sensor_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/traffic/sensors/{quote(sensor_id, safe='')}")

    def sensor_readings(
        self, sensor_id: str, since: str, until: str, cursor: str | None = None, size: int = 1000
    ) -> dict[str, Any]:
        """A page of the sensor's readings, oldest first; the page after it is asked with the answer's `next`."""
        params = {"since": since, "until": until, "size": size, "cursor": cursor}
        return self.request("GET", f"/api/traffic/sensors/{quote(sensor_id, safe='')}/readings", params=params)

    def speed_profile(self, sensor_id: str, weekday: int, weeks: int = 8) -> dict[str, Any]:
        params = {"weekday": weekday, "weeks": weeks}
        return self.request("GET", f"/api/traffic/sensors/{quote(sensor_id, safe='')}/profile", params=params)

    def network_forecast(self) -> dict[str, Any]:
        return self.request("GET", "/api/traffic/forecast")

    def predict_congestion(self, sensor_id: str) -> dict[str, Any]:
        return self.request("POST", "/api/predict/congestion", json={"sensor_id": sensor_id})

    def ingest_readings(self, readings: list[dict[str, Any]]) -> dict[str, Any]:
        return self.request("POST", "/api/traffic/readings", json={"readings": readings})

    def load_sample_readings(self, hours: int = 24) -> dict[str, Any]:
        """The demo's readings of the last `hours`, stored by the API (admin)."""
        return self.request("POST", "/api/traffic/readings/sample", params={"hours": hours})

    # Datasets: whole files, scored by the workers in chunks.
    def upload_dataset(
        self, filename: str, data: bytes, name: str = "", encoding: str = "auto", kind: str = "auto"
    ) -> dict[str, Any]:
        """`kind`: "auto" (an accident file is checked against the model, any other table kept as a table),
        "table", or a model's name ("eclo")."""
        files = {"file": (filename, data, "text/csv")}
        fields = {"name": name, "encoding": encoding, "kind": kind}
        return self.request("POST", "/api/datasets", files=files, data=fields)

    def datasets(self, page: int = 1, size: int = 50) -> dict[str, Any]:
        return self.request("GET", "/api/datasets", params={"page": page, "size": size})

    def dataset(self, dataset_id: str, page: int = 1, size: int = 50) -> dict[str, Any]:
        return self.request("GET", f"/api/datasets/{quote(dataset_id, safe='')}", params={"page": page, "size": size})

    def delete_dataset(self, dataset_id: str) -> None:
        self.request("DELETE", f"/api/datasets/{quote(dataset_id, safe='')}")

    def score_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/datasets/{quote(dataset_id, safe='')}/predict")

    def dataset_job(self, dataset_id: str) -> dict[str, Any] | None:
        """The latest job, or None when the dataset has never been scored."""
        try:
            return self.request("GET", f"/api/datasets/{quote(dataset_id, safe='')}/predictions")
        except ApiError as exc:
            if exc.status == 404 and "has not been scored" in exc.message:
                return None
            raise

    def cancel_dataset_job(self, dataset_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/datasets/{quote(dataset_id, safe='')}/predictions")

    def dataset_results(self, dataset_id: str, format: str = "csv") -> bytes:
        path = f"/api/datasets/{quote(dataset_id, safe='')}/predictions.csv"
        return self.request("GET", path, params={"format": format}, raw=True)

    def share_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/datasets/{quote(dataset_id, safe='')}/share")

    def shared_dataset(self, token: str, page: int = 1, size: int = 50) -> dict[str, Any]:
        return self.request("GET", f"/api/shared/{quote(token, safe='')}", params={"page": page, "size": size})

    # Explore: any dataset through its columnar copy, never the whole file.
    def dataset_profile(self, dataset_id: str) -> dict[str, Any]:
        """Rows, each column's type, missing share, distinct count, summary and top values; the coordinates."""
        return self.request("GET", f"/api/datasets/{quote(dataset_id, safe='')}/profile")

    def query_dataset(self, dataset_id: str, query: dict[str, Any]) -> dict[str, Any]:
        """A structured query (filters, group_by, aggregates, order_by, limit, time, crosstab): columns, rows."""
        return self.request("POST", f"/api/datasets/{quote(dataset_id, safe='')}/query", json=query)

    def dataset_column(self, dataset_id: str, name: str, bins: int = 20) -> dict[str, Any]:
        """A column's distribution: histogram bins for numbers and dates, value counts for the rest."""
        path = f"/api/datasets/{quote(dataset_id, safe='')}/columns/{quote(name, safe='')}"
        return self.request("GET", path, params={"bins": bins})

    def dataset_points(self, dataset_id: str, columns: Sequence[str] = (), cap: int | None = None) -> dict[str, Any]:
        """The rows with coordinates as points (`lat`, `lon`, `row`, the columns asked), sampled down to `cap`."""
        params: dict[str, Any] = {"columns": list(columns)}
        if cap is not None:
            params["cap"] = cap
        return self.request("GET", f"/api/datasets/{quote(dataset_id, safe='')}/points", params=params)

    def dataset_near(
        self, dataset_id: str, other: str, radius_m: float = 500.0, limit: int = 1000, columns: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Per row, the rows of `other` within `radius_m`; for an accident file and a table with addresses, per 동."""
        params = {"other": other, "radius_m": radius_m, "limit": limit, "columns": list(columns)}
        return self.request("GET", f"/api/datasets/{quote(dataset_id, safe='')}/near", params=params)

    # The assistant: conversations with an LLM that calls the service's tools.
    def conversations(self, page: int = 1, size: int = 20) -> dict[str, Any]:
        """A page of this key's conversations, the latest active first (`messages`: how many)."""
        return self.request("GET", "/api/assistant/conversations", params={"page": page, "size": size})

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """A conversation with its messages, each answer with its tool steps and usage."""
        return self.request("GET", f"/api/assistant/conversations/{quote(conversation_id, safe='')}")

    def create_conversation(self, dataset_id: str | None = None, title: str | None = None) -> dict[str, Any]:
        body = {name: value for name, value in (("dataset_id", dataset_id), ("title", title)) if value}
        return self.request("POST", "/api/assistant/conversations", json=body)

    def delete_conversation(self, conversation_id: str) -> None:
        self.request("DELETE", f"/api/assistant/conversations/{quote(conversation_id, safe='')}")

    def ask_stream(
        self, conversation_id: str, content: str, model: str | None = None, llm_key: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Ask a question; the answer's server-sent events as they come: ("tool_call", {order, name, input}),
        ("tool_result", {..., output, is_error, elapsed_ms}), ("text", {delta}), then ("done", {conversation_id,
        message}) or ("error", {status, error}). `llm_key`: the user's own LLM key, sent for this request only.

        Never retried once sent (the LLM may have been asked): only a connection that was never made is tried
        again. A refused question (no LLM key, an unknown conversation) is an ApiError before any event."""
        path = f"/api/assistant/conversations/{quote(conversation_id, safe='')}/messages"
        body: dict[str, Any] = {"content": content, **({"model": model} if model else {})}
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
        if llm_key:
            headers[LLM_KEY_HEADER] = llm_key
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._backoff,
            retry=retry_if_exception(_never_sent),
            reraise=True,
        )
        try:
            response = retrying(
                self.session.post,
                f"{self.base_url}{path}",
                params={"stream": "true"},
                json=body,
                headers=headers,
                stream=True,
                timeout=(self.timeout, self.timeout * STREAM_TIMEOUT_FACTOR),
            )
        except requests.RequestException as exc:
            if _never_sent(exc):
                raise ApiUnavailable(f"cannot reach the API at {self.base_url} ({type(exc).__name__})") from exc
            raise ApiError(f"the API did not answer the question ({type(exc).__name__})") from exc
        with response:
            if response.status_code >= 400:
                raise _envelope(response)
            try:
                yield from sse_events(_lines(response.raw))
            except (requests.RequestException, HTTPError, OSError) as exc:
                raise ApiError(f"the answer stopped before its end ({type(exc).__name__})") from exc


def record_filters(model: str | None, since: datetime | None, until: datetime | None) -> dict[str, str]:
    """The query parameters of `GET /api/predictions` and `/api/predictions.csv`: only those given."""
    given = {"model": model, "since": since and since.isoformat(), "until": until and until.isoformat()}
    return {name: value for name, value in given.items() if value}
