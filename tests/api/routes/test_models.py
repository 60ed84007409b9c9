import httpx

from backend.ml.eclo.model import EcloModel


def test_models_lists_vocabularies_and_metrics(api: httpx.Client, small_model: EcloModel) -> None:
    response = api.get("/api/models")
    assert response.status_code == 200
    models = {m["name"]: m for m in response.json()["models"]}
    assert set(models) == {"eclo", "congestion"}
    model = models["eclo"]
    assert model["name"] == "eclo" and model["version"] == small_model.version
    assert model["metrics"]["cv_rmsle"] == small_model.metadata["cv_rmsle"]
    assert model["allowed_values"]["weather"] == small_model.metadata["vocabularies"]["weather"]
    assert "중구" in model["allowed_values"]["district"]
    assert [band["level"] for band in model["risk_levels"]] == ["low", "moderate", "high", "severe"]


def test_unknown_model_is_404(api: httpx.Client) -> None:
    response = api.get("/api/models/nope")
    assert response.status_code == 404
    assert "available: congestion, eclo" in response.json()["error"]["message"]
