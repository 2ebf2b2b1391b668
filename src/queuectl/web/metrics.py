"""GET /metrics in the Prometheus text format, written by the official client library."""

from __future__ import annotations

from itertools import accumulate
from typing import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..models import DEFAULT_QUEUE, STATES
from .context import Web
from .finished import DURATION_BUCKETS


class QueueCollector(Collector):
    """Reads the store at each scrape (through the managers; the counts at most once per
    JobCounts.min_interval, shared with the overview): nothing else is kept between scrapes
    but what FinishedJobs follows."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def collect(self) -> Iterator[Metric]:
        web = self.web
        web.finished.refresh()
        jobs = GaugeMetricFamily(
            "queuectl_jobs", "Jobs in the store, by state and queue.", labels=["state", "queue"]
        )
        # Every state of every queue that has jobs, zeros included; `default` even when empty,
        # so that a sum over the family is 0, not missing, on an empty store.
        queues = web.counts.read()[1] or {DEFAULT_QUEUE: dict.fromkeys(STATES, 0)}
        for queue, counts in queues.items():
            for state, count in counts.items():
                jobs.add_metric([state, queue], count)
        yield jobs
        yield GaugeMetricFamily(
            "queuectl_workers_active",
            "Workers idle, busy or stopping that heartbeated within stale_after.",
            value=len(web.workers().active()),
        )
        totals, buckets, total_seconds = web.finished.counted()
        finished = CounterMetricFamily(
            "queuectl_jobs_finished",
            "Jobs seen reaching a final state since this server started, by outcome.",
            labels=["outcome"],
        )
        for outcome, count in totals.items():
            finished.add_metric([outcome], count)
        yield finished
        cumulative = list(accumulate(buckets))
        # Spelt as the client's own histograms spell bounds: 1.0, 60.0, 3600.0.
        bounds = [repr(float(b)) for b in DURATION_BUCKETS] + ["+Inf"]
        yield HistogramMetricFamily(
            "queuectl_job_duration_seconds",
            "Run time of the jobs seen completing since this server started.",
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=total_seconds,
        )


def registry_for(web: Web) -> CollectorRegistry:
    """A private registry (not the process-wide default) holding only our collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(web))
    return registry


async def metrics(request: Request) -> Response:
    """GET /metrics."""
    registry: CollectorRegistry = request.app.state.registry
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
