"""The model registry: every model under the model folder, loaded once per process and shared.

It knows model kinds only through a `kind -> loader` table (`backend.ml.kinds.MODEL_KINDS` by default) and
types its models by the `PredictiveModel` protocol.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from pathlib import Path

from backend.ml.artifacts import model_dirs, read_metadata
from backend.ml.errors import ModelNotFound
from backend.ml.protocol import ModelLoader, PredictiveModel


class ModelRegistry:
    """Thread-safe and lazy: the first `get` loads every model folder; later calls only look up."""

    def __init__(self, model_dir: Path, loaders: Mapping[str, ModelLoader], num_threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self.loaders = dict(loaders)
        self.num_threads = num_threads
        self._models: dict[str, PredictiveModel] | None = None
        self._lock = threading.Lock()

    def load(self) -> dict[str, PredictiveModel]:
        if self._models is None:
            with self._lock:
                if self._models is None:
                    models: dict[str, PredictiveModel] = {}
                    for folder in model_dirs(self.model_dir):
                        kind = read_metadata(folder).get("kind", folder.name)
                        loader = self.loaders.get(kind)
                        if loader is not None:
                            models[folder.name] = loader(folder, num_threads=self.num_threads)
                    self._models = models
        return self._models

    def get(self, name: str) -> PredictiveModel:
        models = self.load()
        try:
            return models[name]
        except KeyError:
            raise ModelNotFound(name, sorted(models)) from None

    def names(self) -> list[str]:
        return sorted(self.load())


def import_loader(path: str) -> ModelLoader:
    """`package.module:attribute` (e.g. `tests.fixtures.models:EchoModel.load`) -> the loader it names."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"a model loader is given as 'module:attribute', got {path!r}")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target  # type: ignore[return-value]


_registries: dict[tuple[Path, int, tuple[str, ...]], ModelRegistry] = {}
_registries_lock = threading.Lock()


def get_registry(model_dir: Path, loaders: Mapping[str, ModelLoader], num_threads: int = 1) -> ModelRegistry:
    """The process-wide registry of a model folder (a singleton per folder and set of kinds)."""
    key = (Path(model_dir).resolve(), num_threads, tuple(sorted(loaders)))
    with _registries_lock:
        if key not in _registries:
            _registries[key] = ModelRegistry(key[0], loaders, num_threads=num_threads)
        return _registries[key]
