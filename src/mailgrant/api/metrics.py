"""GET /metrics: Prometheus' text format, for a key with the `metrics` scope.

The counters and histograms every process adds to (common.metrics: refreshes, fetches,
messages stored, broker requests), summed over the processes by prometheus-client's
multiprocess collector when PROMETHEUS_MULTIPROC_DIR is set (common.metrics_dir), plus gauges
read from the database at scrape time: objects by kind and health, the poll lag, the workers
alive and the age of each one's beat. A scrape costs a few aggregate queries, whatever the
number of objects."""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from mailgrant.api.services import apikey_authenticate
from mailgrant.common.metrics_dir import VARIABLE
from mailgrant.worker.status import health_counts, poll_lag_seconds, workers_alive

SCOPE = "metrics"


class DatabaseCollector(Collector):
    """The gauges that are the database's state, read when scraped."""

    def collect(self) -> Iterator[Metric]:
        objects = GaugeMetricFamily(
            "mailgrant_objects",
            "Grants, clients, mailboxes and LDAP directories by health (switched off: disabled).",
            labels=["kind", "health"],
        )
        for kind, by_health in health_counts().items():
            for health, n in by_health.items():
                objects.add_metric([kind, health], n)
        yield objects
        yield GaugeMetricFamily(
            "mailgrant_poll_lag_seconds",
            "How late the most overdue mailbox poll is (0: none is due).",
            value=poll_lag_seconds(),
        )
        workers = workers_alive()
        yield GaugeMetricFamily(
            "mailgrant_workers_alive",
            "Workers whose heartbeat is within their lease.",
            value=len(workers),
        )
        beats = GaugeMetricFamily(
            "mailgrant_worker_beat_age_seconds",
            "Seconds since each alive worker's last heartbeat.",
            labels=["worker"],
        )
        for worker in workers:
            beats.add_metric([worker.name], worker.beat_age_seconds)
        yield beats


class _ThisProcess(Collector):
    """The default registry's metrics, when each process is on its own (no multiprocess
    folder: tests, `runserver`)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def metrics_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    folder = os.environ.get(VARIABLE)
    if folder:
        MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    return registry


def _problem(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"code": code, "message": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="mailgrant"'
    return response


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return _problem(401, "unauthorized", "An API key with the 'metrics' scope is needed.")
    found = apikey_authenticate(key=key.strip())
    if found is None:
        return _problem(401, "unauthorized", "This API key is unknown, revoked or expired.")
    if SCOPE not in found.scopes:
        return _problem(403, "forbidden", "This API key lacks the 'metrics' scope.")
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
