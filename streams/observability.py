"""Health, readiness and Prometheus metrics of a stream worker, served by faust's own web server."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

# The exposition format's media type; aiohttp refuses a charset inside content_type, so it is left out.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


class StageMetrics:
    """RED metrics of one pipeline stage: events (rate), errors, and processing duration."""

    def __init__(self, stage: str, registry: CollectorRegistry) -> None:
        self.stage = stage
        events, errors, duration = _stage_families(registry)
        self._events = events.labels(stage)
        self._errors = errors.labels(stage)
        self._duration = duration.labels(stage)

    @contextmanager
    def observe(self) -> Iterator[None]:
        """Counts and times the enclosed processing of one event; an exception counts as an error."""
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self._errors.inc()
            raise
        self._events.inc()
        self._duration.observe(time.perf_counter() - started)


_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Counter, Counter, Histogram]] = \
    weakref.WeakKeyDictionary()


def _stage_families(registry: CollectorRegistry) -> tuple[Counter, Counter, Histogram]:
    """One set of metric families per registry, shared by its stages (a family may be registered once)."""
    if registry not in _FAMILIES:
        _FAMILIES[registry] = (
            Counter("switchboard_stage_events_total", "Events processed by a stage", ["stage"], registry=registry),
            Counter("switchboard_stage_errors_total", "Events a stage failed to process", ["stage"],
                    registry=registry),
            Histogram("switchboard_stage_duration_seconds", "Time to process one event", ["stage"],
                      registry=registry),
        )
    return _FAMILIES[registry]


class ConsumerLagCollector:
    """switchboard_consumer_lag per source partition: records fetched-known but not yet handed to the agents.

    Computed at scrape time from faust's monitor: the partition's high-water mark at the last fetch that
    returned records, minus the next offset after the last record read.
    """

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("switchboard_consumer_lag", "Records behind the high-water mark",
                                labels=["topic", "partition"])
        monitor = self._app.monitor
        for tp, read in dict(monitor.tp_read_offsets).items():
            end = monitor.tp_end_offsets.get(tp, read + 1)
            lag.add_metric([tp.topic, str(tp.partition)], max(0, end - (read + 1)))
        yield lag


def is_ready(app: faust.App) -> bool:
    """Ready: table recovery has completed and no rebalance is under way."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # on TableManager, not on its interface
    return bool(recovery.completed.is_set()) and not app.rebalancing


def install_endpoints(app: faust.App, registry: CollectorRegistry) -> None:
    """Adds /healthz (the process serves), /readyz (recovered, not rebalancing) and /metrics."""
    registry.register(ConsumerLagCollector(app))

    @app.page("/healthz")
    async def healthz(view: Any, request: Any) -> Any:
        return view.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(view: Any, request: Any) -> Any:
        ready = is_ready(app)
        body = {"status": "ready" if ready else "not ready", "rebalancing": bool(app.rebalancing)}
        return view.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        return view.bytes(generate_latest(registry), content_type=METRICS_CONTENT_TYPE)


class DispatchMetrics:
    """What operators watch in the dispatcher: outcomes per channel, dead letters, backlog and open circuits."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter("switchboard_dispatch_outcomes_total", "Send attempts by channel and outcome",
                                ["channel", "outcome"], registry=registry)
        self.dead_letters = Counter("switchboard_dead_letters_total", "Records parked in sb.deadletters, by stage",
                                    ["stage"], registry=registry)
        self.queued = Gauge("switchboard_dispatch_queued", "Jobs waiting for a token, the pair gap or a closed "
                            "circuit, per sender account", ["sender"], registry=registry)
        self.circuit_open = Gauge("switchboard_circuit_open", "1 while a sender account's circuit is open or "
                                  "half-open, else 0", ["sender"], registry=registry)
