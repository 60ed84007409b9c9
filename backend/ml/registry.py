"""The model registry: every model under the model folder, loaded once per process and shared."""

from __future__ import annotations

import threading
from pathlib import Path

from backend.ml.artifacts import model_dirs, read_metadata
from backend.ml.errors import ModelNotFound
from backend.ml.predictor import EcloModel

LOADERS = {"eclo": EcloModel.load}


class ModelRegistry:
    """Thread-safe and lazy: the first `get` loads every model folder; later calls only look up."""

    def __init__(self, model_dir: Path, num_threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self.num_threads = num_threads
        self._models: dict[str, EcloModel] | None = None
        self._lock = threading.Lock()

    def load(self) -> dict[str, EcloModel]:
        if self._models is None:
            with self._lock:
                if self._models is None:
                    models: dict[str, EcloModel] = {}
                    for folder in model_dirs(self.model_dir):
                        kind = read_metadata(folder).get("kind", folder.name)
                        loader = LOADERS.get(kind)
                        if loader is not None:
                            models[folder.name] = loader(folder, num_threads=self.num_threads)
                    self._models = models
        return self._models

    def get(self, name: str = "eclo") -> EcloModel:
        models = self.load()
        try:
            return models[name]
        except KeyError:
            raise ModelNotFound(name, sorted(models)) from None

    def names(self) -> list[str]:
        return sorted(self.load())

    def reload(self) -> None:
        with self._lock:
            self._models = None
        self.load()


_registries: dict[tuple[Path, int], ModelRegistry] = {}
_registries_lock = threading.Lock()


def get_registry(model_dir: Path, num_threads: int = 1) -> ModelRegistry:
    """The process-wide registry of a model folder (a singleton per folder)."""
    key = (Path(model_dir).resolve(), num_threads)
    with _registries_lock:
        if key not in _registries:
            _registries[key] = ModelRegistry(key[0], num_threads=num_threads)
        return _registries[key]
