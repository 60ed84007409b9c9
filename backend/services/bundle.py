"""The services an API process answers with, opened from its resources by one function: the REST routes, the MCP
server's tools and the assistant's tool loop all call these same objects."""

from __future__ import annotations

from dataclasses import dataclass

from backend.core.redis import async_redis
from backend.db.recorder import Recorder
from backend.predictions.caches import LocalPredictionCache, PredictionCache
from backend.predictions.entry import Predictions
from backend.predictions.shadow import ShadowScorer
from backend.services.congestion import CongestionService
from backend.services.datasets import DatasetService
from backend.services.explore import ExploreService
from backend.services.keys import KeyDirectory
from backend.services.models import ModelLifecycle
from backend.services.readings import SensorDirectory
from backend.services.upload_check import UploadChecker
from backend.tasks.shadow import send_shadow_scores
from backend.wiring import Resources


@dataclass
class Services:
    resources: Resources
    recorder: Recorder
    predictions: Predictions
    congestion: CongestionService
    sensors: SensorDirectory
    datasets: DatasetService
    explore: ExploreService
    api_keys: KeyDirectory | None  # None: AUTH_ENABLED=false
    cache_client: object | None
    shadow: ShadowScorer
    lifecycle: ModelLifecycle

    async def aclose(self) -> None:
        self.shadow.stop()
        self.recorder.stop()
        self.datasets.checker.close()
        if self.cache_client is not None:
            await self.cache_client.aclose()  # type: ignore[attr-defined]
        if self.api_keys is not None:
            await self.api_keys.aclose()


def open_services(resources: Resources) -> Services:
    """The one prediction entry with the caches and the recorder, and the services over the same resources."""
    settings = resources.settings
    cache_client = async_redis(settings.cache_redis_url, settings) if settings.cache_enabled else None
    shared_cache = PredictionCache(cache_client, settings.key_prefix, settings.cache_ttl_seconds)
    local_cache = LocalPredictionCache(settings.cache_local_entries if settings.cache_enabled else 0)
    recorder = Recorder(resources.sessions, resources.spill)
    recorder.start()
    servings = resources.predictions.servings
    shadow = ShadowScorer(
        resources.registry, send_shadow_scores, settings.shadow_queue_size, settings.shadow_sample_rate
    )
    shadow.start()
    return Services(
        resources=resources,
        recorder=recorder,
        predictions=Predictions(
            resources.registry, servings, {"local": local_cache, "shared": shared_cache}, recorder, shadow
        ),
        congestion=CongestionService(resources.registry, resources.sessions, servings["congestion"]),
        sensors=SensorDirectory(resources.sessions),
        datasets=DatasetService(resources, UploadChecker(settings)),
        explore=ExploreService(resources),
        api_keys=KeyDirectory.for_api(resources.sessions, settings) if settings.auth_enabled else None,
        cache_client=cache_client,
        shadow=shadow,
        lifecycle=ModelLifecycle(resources),
    )
