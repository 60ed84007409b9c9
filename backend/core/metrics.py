"""Prometheus metrics of the service (prometheus-client's default registry)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PREDICTIONS = Counter("predictions_total", "Single predictions answered", ["model", "version", "cached"])
CACHE_LOOKUPS = Counter("prediction_cache_lookups_total", "Prediction cache lookups", ["result"])
READINGS = Counter("readings_total", "Sensor readings received, by outcome and source", ["outcome", "source"])
BATCHES_SUBMITTED = Counter("batches_submitted_total", "Batches accepted for the workers", ["model"])
ASSISTANT_CACHE = Counter("assistant_cache_total", "Assistant first questions looked up in the cache", ["result"])
ASSISTANT_STEPS = Counter("assistant_tool_calls_total", "Tools the assistant called", ["tool", "outcome"])
SHADOW_SCORES = Counter(
    "shadow_scores_total",
    "Single predictions offered to the challenger, by outcome (scored, skipped, failed)",
    ["model", "outcome"],
)
MODEL_DRIFT_SHARE = Gauge("model_drift_share", "Share of input fields drifted, as last computed", ["model"])
MODEL_DRIFT_PSI = Gauge("model_drift_psi", "PSI of each input field and prediction, as last computed",
                        ["model", "field"])  # fmt: skip
RATE_LIMITED = Counter("rate_limited_total", "Requests refused (429) by their API key's rate limit")
RATE_LIMIT_UNCHECKED = Counter(
    "rate_limit_unchecked_total", "Requests let through without their rate limit checked (Redis did not answer)"
)

Metric = TypeVar("Metric", Counter, Histogram)


@lru_cache(maxsize=4096)
def series(metric: Metric, *values: str) -> Metric:
    """`metric.labels(*values)`, remembered: prometheus-client looks the series up on every call, and a single
    prediction makes four."""
    return metric.labels(*values)


class ServiceCollector(Collector):
    """Numbers read at scrape time from shared state: batches by final status and pending batches (Redis,
    written by every worker), the records written or lost by this process's database recorder, and the live
    feed's lag."""

    def __init__(
        self,
        batch_stats: Callable[[], tuple[dict[str, int], int]],
        recorder_stats: Callable[[], dict],
        feed_lag: Callable[[], float] | None = None,
    ) -> None:
        self.batch_stats = batch_stats
        self.recorder_stats = recorder_stats
        self.feed_lag = feed_lag

    def collect(self) -> Iterator[Any]:
        try:
            finished, active = self.batch_stats()
        except Exception:  # Redis down: these series are absent from this scrape, /health says why
            finished, active = None, None
        if finished is not None:
            family = CounterMetricFamily("batches_finished", "Batches finished, by final status", labels=["status"])
            for status in ("success", "partial", "failure"):
                family.add_metric([status], finished.get(status, 0))
            yield family
            yield GaugeMetricFamily("batches_pending", "Batches queued or running", value=active)
        stats = self.recorder_stats()
        records = CounterMetricFamily("db_records", "Records written to the database, by outcome", labels=["outcome"])
        for outcome in ("written", "failed", "spilled", "dropped"):
            records.add_metric([outcome], stats[outcome])
        yield records
        yield GaugeMetricFamily("db_records_queued", "Records waiting to be written", value=stats["queued"])
        yield GaugeMetricFamily(
            "db_records_spill_bytes",
            "Records waiting in the spill file for the database, in bytes",
            value=stats["spill_bytes"],
        )
        if self.feed_lag is not None:
            try:
                lag = self.feed_lag()
            except Exception:  # Redis down: absent from this scrape
                return
            yield GaugeMetricFamily(
                "readings_feed_lag_seconds", "Age of the oldest reading of the live feed not yet stored", value=lag
            )
