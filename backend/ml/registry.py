"""The model registry: every model under the model folder, loaded once per process and shared.

It knows model kinds only through a `kind -> loader` table (`backend.ml.kinds.MODEL_KINDS` by default) and
types its models by the `PredictiveModel` protocol. With a `ModelVersions` it also serves trained versions: the
champion of each name (what `get(name)` answers), its challenger, and any version asked for by number (a batch
keeps the version it was submitted under). Which versions are champion and challenger is told from outside
(`apply_aliases`, by `ModelWatcher`): the registry reads no database.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

from backend.ml.artifacts import model_dirs, read_metadata
from backend.ml.errors import ModelNotFound, VersionNotFound
from backend.ml.protocol import ModelLoader, PredictiveModel
from backend.ml.versions import ModelVersions

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PINNED_VERSIONS = 8  # versions kept loaded for batches that started under an earlier champion

# name -> alias -> version, as the alias table holds them.
Aliases = Mapping[str, Mapping[str, str]]


class ModelRegistry:
    """Thread-safe and lazy: the first `get` loads every model folder; later calls only look up."""

    def __init__(
        self,
        model_dir: Path,
        loaders: Mapping[str, ModelLoader],
        num_threads: int = 1,
        versions: ModelVersions | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.loaders = dict(loaders)
        self.num_threads = num_threads
        self.versions = versions
        self._models: dict[str, PredictiveModel] | None = None
        self._defaults: dict[str, PredictiveModel] = {}
        self._challengers: dict[str, PredictiveModel] = {}
        self._pinned: OrderedDict[tuple[str, str], PredictiveModel] = OrderedDict()
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
                    self._defaults = dict(models)
                    self._models = models
        return self._models

    def get(self, name: str, version: str | None = None) -> PredictiveModel:
        """The champion of `name`, or with `version` that version (VersionNotFound when there is none)."""
        models = self.load()
        try:
            served = models[name]
        except KeyError:
            raise ModelNotFound(name, sorted(models)) from None
        if version is None or version == served.version:
            return served
        return self._version(name, version)

    def default_version(self, name: str) -> str:
        """The version of the model folder `name` under the model folder: what is served without a champion."""
        self.get(name)  # ModelNotFound
        return self._defaults[name].version

    def challenger(self, name: str) -> PredictiveModel | None:
        return self._challengers.get(name)

    def names(self) -> list[str]:
        return sorted(self.load())

    def _version(self, name: str, version: str) -> PredictiveModel:
        with self._lock:
            model = self._pinned.get((name, version))
            if model is not None:
                self._pinned.move_to_end((name, version))
                return model
        for known in (self._defaults.get(name), self._challengers.get(name)):
            if known is not None and known.version == version:
                return known
        model = self._load_version(name, version)
        with self._lock:
            self._pinned[(name, version)] = model
            while len(self._pinned) > PINNED_VERSIONS:
                self._pinned.popitem(last=False)
        return model

    def _load_version(self, name: str, version: str) -> PredictiveModel:
        if self.versions is None:
            raise VersionNotFound(name, version)
        found = self.versions.get(name, version)
        loader = self.loaders.get(str(found.metadata.get("kind", name)))
        if loader is None:
            raise VersionNotFound(name, version)
        model = loader(self.versions.local_folder(found), num_threads=self.num_threads)
        model.name = name
        return model

    def apply_aliases(self, aliases: Aliases) -> list[str]:
        """Serve each name's champion (its default when it has none) and load its challenger; a version that
        cannot be loaded leaves what is served as it was (logged). Returns what changed, for the log."""
        models = self.load()
        changes: list[str] = []
        served = dict(models)
        challengers: dict[str, PredictiveModel] = {}
        for name in models:
            wanted = aliases.get(name, {})
            champion = wanted.get(CHAMPION) or self._defaults[name].version
            if served[name].version != champion:
                try:
                    served[name] = self.get(name, champion)
                    changes.append(f"{name}: champion {champion}")
                except Exception:
                    log.exception("model %s: cannot serve version %s; still serving %s", name, champion,
                                  served[name].version)  # fmt: skip
            challenger = wanted.get(CHALLENGER)
            if challenger and challenger != served[name].version:
                try:
                    challengers[name] = self.get(name, challenger)
                except Exception:
                    log.exception("model %s: cannot load challenger %s", name, challenger)
        if {n: m.version for n, m in challengers.items()} != {n: m.version for n, m in self._challengers.items()}:
            changes.append("challengers: " + (", ".join(f"{n} {m.version}" for n, m in challengers.items()) or "none"))
        with self._lock:
            self._models = served
            self._challengers = challengers
        return changes


class ModelWatcher:
    """Applies the alias table to a registry now and then every `interval` seconds, on a thread of its own (so a
    promotion reaches every process without a restart, and never loads a model on a request's path)."""

    def __init__(self, registry: ModelRegistry, read_aliases: Callable[[], Aliases], interval: float) -> None:
        self.registry = registry
        self.read_aliases = read_aliases
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        try:
            aliases = self.read_aliases()
        except Exception as exc:  # the database is down: keep serving what is served
            log.warning("model aliases unreadable (%s); serving the models as they are", type(exc).__name__)
            return
        for change in self.registry.apply_aliases(aliases):
            log.info("model registry: %s", change)

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def import_loader(path: str) -> ModelLoader:
    """`package.module:attribute` (e.g. `tests.fixtures.models:EchoModel.load`) -> the loader it names."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"a model loader is given as 'module:attribute', got {path!r}")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target  # type: ignore[return-value]


_registries: dict[tuple[Path, int, tuple[str, ...], str | None], ModelRegistry] = {}
_registries_lock = threading.Lock()


def get_registry(
    model_dir: Path, loaders: Mapping[str, ModelLoader], num_threads: int = 1, versions: ModelVersions | None = None
) -> ModelRegistry:
    """The process-wide registry of a model folder (a singleton per folder, set of kinds and place of the trained
    versions; `versions` is used when it makes the registry)."""
    key = (Path(model_dir).resolve(), num_threads, tuple(sorted(loaders)), versions.location if versions else None)
    with _registries_lock:
        if key not in _registries:
            _registries[key] = ModelRegistry(key[0], loaders, num_threads=num_threads, versions=versions)
        return _registries[key]
