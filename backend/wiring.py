"""What the API and the workers are built from, by the same functions: settings -> the model registry, the
one prediction entry, Redis, the batch and dataset-job record stores, file storage and the database. The API
opens them in its lifespan, each worker child after the fork."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.core.redis import sync_redis
from backend.core.storage import FileStorage, storage_from_settings
from backend.db.lifecycle import read_aliases
from backend.db.recorder import SpillFile
from backend.db.session import make_engine, session_factory
from backend.ml.kinds import MODEL_KINDS
from backend.ml.protocol import ModelLoader
from backend.ml.registry import ModelRegistry, ModelWatcher, get_registry, import_loader
from backend.ml.versions import ModelVersions
from backend.predictions.entry import Predictions
from backend.predictions.kinds import servings
from backend.stores.batches import BatchStore
from backend.stores.dataset_files import DatasetFiles
from backend.stores.dataset_jobs import DatasetJobStore


def model_loaders(settings: Settings) -> dict[str, ModelLoader]:
    """The kinds this code serves, plus any named in MODEL_PLUGINS (kind -> 'module:loader')."""
    return {**MODEL_KINDS, **{kind: import_loader(path) for kind, path in settings.model_plugins.items()}}


def model_versions(settings: Settings, storage: FileStorage) -> ModelVersions:
    """The trained versions, in the storage. A training writes beside them when they are in DATA_DIR (so a process
    sharing the folder removes what a killed training left), else in a temporary folder of its host: with
    STORAGE_URL nothing is written under DATA_DIR."""
    work_dir = settings.versions_dir if settings.storage_location is None else None
    return ModelVersions(settings.model_dir, storage, work_dir=work_dir)


def open_registry(settings: Settings, storage: FileStorage | None = None) -> ModelRegistry:
    """The process-wide registry; predictions use one thread each (the API's event loop, a worker child)."""
    versions = model_versions(settings, storage if storage is not None else storage_from_settings(settings))
    return get_registry(settings.model_dir, model_loaders(settings), num_threads=1, versions=versions)


def model_watcher(registry: ModelRegistry, sessions: sessionmaker[Session], settings: Settings) -> ModelWatcher:
    """Serves the alias table's champions in this process, re-read every MODEL_RELOAD_SECONDS."""

    def aliases() -> dict[str, dict[str, str]]:
        with sessions() as session:
            return read_aliases(session)

    return ModelWatcher(registry, aliases, settings.model_reload_seconds)


@dataclass
class Resources:
    settings: Settings
    registry: ModelRegistry
    redis: redis.Redis
    batches: BatchStore
    engine: Engine
    sessions: sessionmaker[Session]
    dataset_jobs: DatasetJobStore
    dataset_files: DatasetFiles
    spill: SpillFile
    predictions: Predictions
    watcher: ModelWatcher

    def start_models(self) -> None:
        """Load the models, serve the champions the alias table names, and follow its moves."""
        self.registry.load()
        self.watcher.start()

    def close(self) -> None:
        self.watcher.stop()
        self.engine.dispose()
        self.redis.close()


def open_resources(settings: Settings) -> Resources:
    client = sync_redis(settings.redis_url, settings)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    storage = storage_from_settings(settings)
    registry = open_registry(settings, storage)
    return Resources(
        settings=settings,
        registry=registry,
        redis=client,
        batches=BatchStore.from_settings(client, settings),
        engine=engine,
        sessions=sessions,
        dataset_jobs=DatasetJobStore(client, settings.key_prefix, settings.batch_result_ttl_seconds),
        dataset_files=DatasetFiles(storage),
        spill=SpillFile(settings.data_dir / "spill" / "records.jsonl", settings.spill_max_bytes),
        # The workers' entry: no cache, no prediction records (a batch and a dataset job are their own records).
        predictions=Predictions(registry, servings(sessions, settings.congestion_min_readings)),
        watcher=model_watcher(registry, sessions, settings),
    )
