import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from backend.core.config import Settings
from backend.dev.processes import free_port
from backend.main import create_app
from tests.fixtures.batches import submit, wait_for_batch


def test_health_reports_every_component(api: httpx.Client) -> None:
    response = api.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["components"]) >= {"model", "redis", "broker", "workers", "feed"}
    assert body["components"]["feed"]["status"] == "ok" and "consumer seen" in body["components"]["feed"]["detail"]
    assert "worker" in body["components"]["workers"]["detail"]


def test_live_and_ready(api: httpx.Client) -> None:
    assert api.get("/health/live").json() == {"status": "ok"}
    ready = api.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["components"]["model"]["status"] == "ok"


def _sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_count_requests_predictions_and_batches(api: httpx.Client, classic_row: dict, csv_rows: list) -> None:
    before = api.get("/metrics").text
    classic_row["accident_hour"] = 21
    for _ in range(3):
        assert api.post("/api/predict/eclo", json=classic_row).status_code == 200
    assert api.post("/api/predict/eclo", json={**classic_row, "weather": "?"}).status_code == 422
    wait_for_batch(api, submit(api, csv_rows[:5])["batch_id"])
    after = api.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    route = {"method": "POST", "route": "/api/predict/{model}"}

    def delta(name: str, **labels: str) -> float:
        return _sample(after.text, name, **labels) - _sample(before, name, **labels)

    assert delta("http_requests_total", status="200", **route) == 3
    assert delta("http_requests_total", status="422", **route) == 1
    assert delta("http_request_duration_seconds_count", **route) == 4
    assert delta("predictions_total", model="eclo", cached="true") == 2
    assert delta("prediction_cache_lookups_total", result="hit") == 2
    assert delta("batches_submitted_total", model="eclo") == 1
    assert delta("batches_finished_total", status="success") == 1
    assert _sample(after.text, "batches_pending") == 0
    unmatched = api.get("/no/such/path")
    assert unmatched.status_code == 404
    assert _sample(api.get("/metrics").text, "http_requests_total", route="unmatched", status="404") >= 1


def test_a_crowd_of_health_calls_leaves_batches_working(api: httpx.Client, csv_rows: list) -> None:
    """200 /health calls at once used to take every broker connection (a Celery ping each) and lock batch
    submission up; the report is now computed once a second from heartbeats, whoever asks."""
    url = str(api.base_url)

    def probe(_: int) -> tuple[int, float]:
        started = time.perf_counter()
        status = httpx.get(f"{url}/health", timeout=30).status_code
        return status, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=200) as pool:
        answers = list(pool.map(probe, range(200)))
    assert {status for status, _ in answers} == {200}
    assert wait_for_batch(api, submit(api, csv_rows[:5])["batch_id"], timeout=30)["status"] == "success"


def test_503_bodies_name_the_dependency_never_its_address(app_settings: Settings, classic_row: dict) -> None:
    port = free_port()
    settings = app_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        batch = client.post("/api/predict/eclo/batch", json={"items": [classic_row]})
        results = client.get("/api/predict/batch/" + "0" * 32 + "/results")
    assert health.status_code == batch.status_code == 503
    assert {d["dependency"] for d in health.json()["error"]["details"]} >= {"redis", "broker", "workers"}
    assert batch.json()["error"]["details"] == [{"dependency": "redis"}]
    for response in (health, batch, results):
        assert str(port) not in response.text and "127.0.0.1" not in response.text, response.text
