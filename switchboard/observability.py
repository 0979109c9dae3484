"""Health, readiness and Prometheus metrics shared by every long-running part (aiohttp, no faust)."""

from __future__ import annotations

import asyncio
import signal
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

__all__ = [
    "ACK_BUCKETS",
    "METRICS_CONTENT_TYPE",
    "ConsumerLag",
    "HttpMetrics",
    "Observability",
    "PartMetrics",
    "Readiness",
    "StageMetrics",
    "kafka_reachable",
    "serve_endpoints",
    "until_stopped",
]

# The exposition format's media type; aiohttp refuses a charset inside content_type, so it is left out.
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4"
# Webhook acknowledgements must stay well under the providers' timeouts (Meta: about 20 s): fine buckets below 1 s.
ACK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
Check = Callable[[], Awaitable[tuple[bool, str]]]


class StageMetrics:
    """RED metrics of one stage: events (rate), errors, and processing duration."""

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

    def done(self, seconds: float) -> None:
        """Counts one event processed elsewhere (a task) that took `seconds`."""
        self._events.inc()
        self._duration.observe(seconds)

    def error(self) -> None:
        """Counts a failure that was handled without an exception (a 5xx answered, a record parked)."""
        self._errors.inc()


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


class PartMetrics:
    """What every part counts besides its stage: dead letters and retries by stage (the pipeline's names)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_letters = Counter("switchboard_dead_letters_total", "Records parked in sb.deadletters, by stage",
                                    ["stage"], registry=registry)
        self.retries = Counter("switchboard_retries_total", "Attempts scheduled again after a failure, by stage",
                               ["stage"], registry=registry)
        self.ready = ready_gauge(registry)


def ready_gauge(registry: CollectorRegistry) -> Gauge:
    """switchboard_ready: what /readyz would answer, evaluated at each scrape (a part can be up and not ready)."""
    return Gauge("switchboard_ready", "1 while the part is ready (/readyz answers 200), else 0; set at each scrape",
                 registry=registry)


class HttpMetrics:
    """HTTP RED: requests by route, method and status, and their duration; an aiohttp middleware records them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("switchboard_http_requests_total", "HTTP requests answered",
                                ["route", "method", "status"], registry=registry)
        self.duration = Histogram("switchboard_http_request_duration_seconds", "Time to answer an HTTP request",
                                  ["route", "method"], registry=registry)
        # Labelled children by label values: labels() takes a lock and builds a key on every call.
        self._counted: dict[tuple[str, str, str], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Times every request; the route is the matched pattern (never the raw path: ids would explode it)."""
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as answered:
            status = answered.status
            raise
        finally:
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            self._count(name, request.method, status, time.perf_counter() - started)

    def _count(self, route: str, method: str, status: int, seconds: float) -> None:
        counted = self._counted.get((route, method, str(status)))
        if counted is None:
            counted = self._counted[(route, method, str(status))] = self.requests.labels(route, method, str(status))
        timed = self._timed.get((route, method))
        if timed is None:
            timed = self._timed[(route, method)] = self.duration.labels(route, method)
        counted.inc()
        timed.observe(seconds)


class _LagSource(Protocol):
    """The part of aiokafka's consumer the lag needs: what it owns now and each partition's high-water mark."""

    def assignment(self) -> Any: ...

    def highwater(self, partition: Any) -> int | None: ...


@dataclass(eq=False)  # registered in a CollectorRegistry, which keys collectors by identity
class ConsumerLag:
    """switchboard_consumer_lag per owned partition: high-water mark minus the next offset to process.

    Computed at scrape time over the consumer's current assignment, so a partition lost in a rebalance
    disappears from the series instead of keeping its last value.
    """

    consumer: Callable[[], _LagSource | None]
    processed: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to process per partition

    def done(self, topic: str, partition: int, offset: int) -> None:
        """Records that the record at `offset` is finished."""
        self.processed[(topic, partition)] = offset + 1

    def lags(self) -> dict[tuple[str, int], int]:
        consumer = self.consumer()
        if consumer is None:
            return {}
        lags: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            key = (str(tp.topic), int(tp.partition))
            if end is not None:
                lags[key] = max(0, end - self.processed.get(key, end))
        return lags

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("switchboard_consumer_lag", "Records behind the high-water mark",
                                labels=["topic", "partition"])
        for (topic, partition), behind in sorted(self.lags().items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag

    def describe(self) -> Iterable[Metric]:
        return []


async def kafka_reachable(client: Callable[[], Any], timeout: float = 5.0) -> tuple[bool, str]:
    """A metadata request through an aiokafka client the part already holds: it answers with brokers."""
    current = client()
    if current is None:
        return False, "not connected yet"
    try:
        cluster = await asyncio.wait_for(current.fetch_all_metadata(), timeout)
    except Exception as error:  # any failure means "not reachable"; the answer names it
        return False, f"metadata request failed: {type(error).__name__}"
    brokers = len(cluster.brokers())
    return brokers > 0, f"{brokers} broker(s)"


@dataclass
class Readiness:
    """Named checks; ready when every one passes. Each answers (ok, detail) and must not raise."""

    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def add_flag(self, name: str, flag: Callable[[], bool], detail: str) -> None:
        """A check over a synchronous condition (state recovered, started)."""
        async def check() -> tuple[bool, str]:
            ok = flag()
            return ok, detail if ok else f"not yet: {detail}"
        self.add(name, check)

    def add_lag(self, lag: ConsumerLag, threshold: int) -> None:
        """Ready while no owned partition is more than `threshold` records behind."""
        async def check() -> tuple[bool, str]:
            worst = max(lag.lags().values(), default=0)
            return worst <= threshold, f"largest lag {worst} (threshold {threshold})"
        self.add("consumer_lag", check)

    async def evaluate(self) -> tuple[bool, dict[str, dict[str, object]]]:
        results = await asyncio.gather(*(check() for check in self.checks.values()))
        report = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in zip(self.checks, results, strict=True)}
        return all(ok for ok, _ in results), report


@dataclass
class Observability:
    """One part's registry, readiness checks and stage metrics; adds /healthz, /readyz and /metrics to an app."""

    part: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    readiness: Readiness = field(default_factory=Readiness)
    before_scrape: list[Callable[[], None]] = field(default_factory=list)  # bring counters up to date

    def __post_init__(self) -> None:
        self.counts = PartMetrics(self.registry)

    def stage(self, name: str) -> StageMetrics:
        return StageMetrics(name, self.registry)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "part": self.part})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, report = await self.readiness.evaluate()
        body = {"status": "ready" if ready else "not ready", "part": self.part, "checks": report}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        ready, _ = await self.readiness.evaluate()
        self.counts.ready.set(1 if ready else 0)
        for update in self.before_scrape:
            update()
        return web.Response(body=generate_latest(self.registry), content_type=METRICS_CONTENT_TYPE)


async def serve_endpoints(observability: Observability, host: str, port: int) -> web.AppRunner:
    """A separate small server for parts that serve no HTTP of their own (consumers); the caller cleans it up."""
    http = HttpMetrics(observability.registry)
    app = web.Application(middlewares=[http.middleware])
    observability.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def until_stopped(stop: asyncio.Event | None = None) -> None:
    """Returns once `stop` is set; without one, on SIGINT or SIGTERM (a part running alone owns its signals)."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    await stop.wait()
