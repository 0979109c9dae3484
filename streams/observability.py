"""Health, readiness and Prometheus metrics of a stream worker, served by faust's own web server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily

from switchboard.observability import METRICS_CONTENT_TYPE, StageMetrics, ready_gauge

__all__ = ["METRICS_CONTENT_TYPE", "ConsumerLagCollector", "DispatchMetrics", "StageMetrics", "install_endpoints",
           "is_ready"]


class ConsumerLagCollector:
    """switchboard_consumer_lag per source partition: records fetched-known but not yet handed to the agents.

    Computed at scrape time from faust's monitor: the partition's high-water mark at the last fetch that
    returned records, minus the next offset after the last record read. Only partitions the consumer owns now
    are reported: the monitor keeps a lost partition's offsets, which would otherwise stay at their last value.
    """

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def lags(self) -> dict[Any, int]:
        """Records behind per owned partition (faust's TP)."""
        monitor, owned = self._app.monitor, set(self._app.consumer.assignment())
        return {tp: max(0, monitor.tp_end_offsets.get(tp, read + 1) - (read + 1))
                for tp, read in dict(monitor.tp_read_offsets).items() if tp in owned}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("switchboard_consumer_lag", "Records behind the high-water mark",
                                labels=["topic", "partition"])
        for tp, behind in self.lags().items():
            lag.add_metric([tp.topic, str(tp.partition)], behind)
        yield lag


def is_ready(app: faust.App) -> bool:
    """Ready: table recovery has completed and no rebalance is under way."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # on TableManager, not on its interface
    return bool(recovery.completed.is_set()) and not app.rebalancing


def install_endpoints(app: faust.App, registry: CollectorRegistry, *, ready_lag: int | None = None) -> None:
    """Adds /healthz (the process serves), /readyz (recovered, not rebalancing, lag under ready_lag) and /metrics."""
    lag = ConsumerLagCollector(app)
    registry.register(lag)
    ready_now = ready_gauge(registry)

    def readiness() -> tuple[bool, dict[str, Any]]:
        worst = max(lag.lags().values(), default=0)
        ready = is_ready(app) and (ready_lag is None or worst <= ready_lag)
        return ready, {"status": "ready" if ready else "not ready", "rebalancing": bool(app.rebalancing),
                       "largest_lag": worst, "ready_lag": ready_lag}

    @app.page("/healthz")
    async def healthz(view: Any, request: Any) -> Any:
        return view.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(view: Any, request: Any) -> Any:
        ready, body = readiness()
        return view.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        ready_now.set(1 if readiness()[0] else 0)
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
        self.throttled = Counter("switchboard_rate_limited_total", "Times a sender account's token bucket made "
                                 "jobs wait", ["sender"], registry=registry)
        self.retries = Counter("switchboard_retries_total", "Attempts scheduled again after a failure, by stage",
                               ["stage"], registry=registry)
        self._partitions: dict[str, int] = {}  # sender account -> the sb.dispatch partition its gauges come from

    def sender_state(self, sender: str, partition: int, queued: int, circuit_open: bool) -> None:
        """Sets a sender account's gauges, remembering which partition (hence which owner) they belong to."""
        self._partitions[sender] = partition
        self.queued.labels(sender).set(queued)
        self.circuit_open.labels(sender).set(int(circuit_open))

    def forget_partitions(self, partitions: set[int]) -> list[str]:
        """Removes the gauges of every sender account on these partitions (lost in a rebalance); their new
        owner sets them again. Returns the accounts removed."""
        gone = [sender for sender, partition in self._partitions.items() if partition in partitions]
        for sender in gone:
            del self._partitions[sender]
            self.queued.remove(sender)
            self.circuit_open.remove(sender)
        return gone
