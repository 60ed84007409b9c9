"""Shared fixtures: a small model trained once per session from the generator, through the real CLI path."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.ml.dacon import load_dacon_csv
from backend.ml.datagen import write_dacon_csv
from backend.ml.predictor import EcloModel
from backend.ml.train import save_artifacts, train_eclo

CLASSIC_ROW = {
    "weather": "맑음",
    "road_surface": "건조",
    "road_type": "교차로",
    "accident_type": "차대차",
    "time_period": "낮",
    "district": "중구",
    "day_of_week": "월요일",
    "accident_hour": 14,
    "accident_year": 2024,
    "accident_month": 12,
    "accident_day": 10,
}


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dacon_csv(tmp_path_factory.mktemp("data") / "train.csv", n_rows=6000, seed=7)


@pytest.fixture(scope="session")
def small_model_root(tmp_path_factory: pytest.TempPathFactory, small_csv: Path) -> Path:
    """A model folder (root/eclo) trained on the small generated CSV."""
    root = tmp_path_factory.mktemp("models")
    rows, eclo, report = load_dacon_csv(small_csv)
    result = train_eclo(rows, eclo, folds=3, seed=7, log=lambda _: None)
    save_artifacts(result, root / "eclo", str(small_csv), report)
    return root


@pytest.fixture(scope="session")
def small_model(small_model_root: Path) -> EcloModel:
    return EcloModel.load(small_model_root / "eclo")


@pytest.fixture
def classic_row() -> dict:
    return dict(CLASSIC_ROW)
