import httpx


def test_health_reports_every_component(api: httpx.Client) -> None:
    response = api.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["components"]) >= {"model", "redis", "broker", "workers"}
    assert "worker" in body["components"]["workers"]["detail"]


def test_live_and_ready(api: httpx.Client) -> None:
    assert api.get("/health/live").json() == {"status": "ok"}
    ready = api.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["components"]["model"]["status"] == "ok"
