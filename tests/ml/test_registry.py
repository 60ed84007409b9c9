from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backend.ml.errors import ModelNotFound
from backend.ml.registry import ModelRegistry, get_registry


def test_loads_once_across_threads(small_model_root: Path) -> None:
    registry = ModelRegistry(small_model_root)
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: registry.get("eclo"), range(32)))
    assert all(m is models[0] for m in models)
    assert registry.names() == ["eclo"]


def test_singleton_per_folder(small_model_root: Path) -> None:
    assert get_registry(small_model_root) is get_registry(small_model_root)


def test_unknown_model_lists_available(small_model_root: Path) -> None:
    with pytest.raises(ModelNotFound, match="available: eclo"):
        ModelRegistry(small_model_root).get("congestion")


def test_empty_folder_has_no_models(tmp_path: Path) -> None:
    assert ModelRegistry(tmp_path).names() == []
