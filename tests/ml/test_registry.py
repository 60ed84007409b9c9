from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backend.ml.errors import ModelNotFound
from backend.ml.kinds import MODEL_KINDS
from backend.ml.protocol import PredictiveModel
from backend.ml.registry import ModelRegistry, get_registry, import_loader


def test_loads_once_across_threads(small_model_root: Path) -> None:
    registry = ModelRegistry(small_model_root, MODEL_KINDS)
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: registry.get("eclo"), range(32)))
    assert all(m is models[0] for m in models)
    assert registry.names() == ["eclo"]


def test_singleton_per_folder(small_model_root: Path) -> None:
    assert get_registry(small_model_root, MODEL_KINDS) is get_registry(small_model_root, MODEL_KINDS)


def test_unknown_model_lists_available(small_model_root: Path) -> None:
    with pytest.raises(ModelNotFound, match="available: eclo"):
        ModelRegistry(small_model_root, MODEL_KINDS).get("congestion")


def test_empty_folder_has_no_models(tmp_path: Path) -> None:
    assert ModelRegistry(tmp_path, MODEL_KINDS).names() == []


def test_a_second_kind_plugs_in_by_its_loader(two_kinds_model_root: Path) -> None:
    registry = ModelRegistry(
        two_kinds_model_root, {**MODEL_KINDS, "echo": import_loader("tests.fixtures.models:EchoModel.load")}
    )
    assert registry.names() == ["echo", "eclo"]
    echo = registry.get("echo")
    assert isinstance(echo, PredictiveModel) and isinstance(registry.get("eclo"), PredictiveModel)
    assert echo.kind == "echo" and echo.predict_one({"x": 4}).to_dict() == {"doubled": 8, "model_version": "echo-1"}


def test_a_loader_path_must_name_module_and_attribute() -> None:
    with pytest.raises(ValueError, match="module:attribute"):
        import_loader("tests.fixtures.models")


def test_a_kind_without_a_loader_is_skipped(two_kinds_model_root: Path) -> None:
    assert ModelRegistry(two_kinds_model_root, MODEL_KINDS).names() == ["eclo"]
