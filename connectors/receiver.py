"""The webhook receiver service: verifies each provider POST on its raw bytes and stores it in Kafka before 200."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web

from connectors._driver import ChannelDriver
from connectors._receiver_http import (
    CONFIG,
    MAX_BODY_BYTES,
    METRICS,
    SINK,
    FailuresAccessLogger,
    ReceiverConfig,
    ReceiverMetrics,
    handle_get,
    handle_post,
    json_errors,
)
from connectors._receiver_sinks import (
    CONTENT_SHA256,
    RAW_TOPIC,
    REJECTS_TOPIC,
    InMemoryWebhookSink,
    KafkaWebhookSink,
    RawWebhookSink,
    SinkRecord,
)
from connectors.registry import get_driver
from switchboard.observability import HttpMetrics, Observability, kafka_reachable, until_stopped
from switchboard.serving import serving
from switchboard.tracing import http_middleware

__all__ = [
    "CONTENT_SHA256",
    "MAX_BODY_BYTES",
    "RAW_TOPIC",
    "REJECTS_TOPIC",
    "InMemoryWebhookSink",
    "KafkaWebhookSink",
    "RawWebhookSink",
    "ReceiverConfig",
    "ReceiverMetrics",
    "SinkRecord",
    "build_receiver_app",
    "run_receiver",
]

_log = logging.getLogger(__name__)


def build_receiver_app(config: ReceiverConfig, sink: RawWebhookSink,
                       observability: Observability | None = None) -> web.Application:
    """GET and POST {config.path}/{channel}, /healthz, /readyz and /metrics; the caller starts and stops the sink
    and the drivers. Readiness checks Kafka when the sink is a KafkaWebhookSink."""
    observability = observability or Observability("receiver")
    if isinstance(sink, KafkaWebhookSink):
        observability.readiness.add("kafka", lambda: kafka_reachable(sink.client))
    app = web.Application(middlewares=[http_middleware, HttpMetrics(observability.registry).middleware, json_errors])
    app[CONFIG] = config
    app[SINK] = sink
    app[METRICS] = ReceiverMetrics(observability)
    route = f"{config.path.rstrip('/')}/{{channel}}"
    app.router.add_get(route, handle_get)
    app.router.add_post(route, handle_post)
    observability.add_routes(app)
    return app


def drivers_from_environment(channels: Sequence[str]) -> dict[str, ChannelDriver]:
    """One driver per channel from the registry, secrets from the environment (SWITCHBOARD_<CHANNEL>_...)."""
    return {channel: get_driver(channel).from_settings({}) for channel in channels}


async def run_receiver(bootstrap: str, *, host: str = "127.0.0.1", port: int = 8088,
                       channels: Sequence[str] = ("whatsapp",), prefix: str = "", partitions: int = 6,
                       stop: asyncio.Event | None = None) -> None:
    """Serves until `stop` is set (by default: SIGINT or SIGTERM): topics created first, then the port opened;
    everything closed at the end."""
    drivers = drivers_from_environment(channels)
    sink = KafkaWebhookSink(bootstrap, prefix=prefix, partitions=partitions)
    await sink.start()
    try:
        async with serving(build_receiver_app(ReceiverConfig(drivers), sink), host, port, shutdown_timeout=5.0,
                           access_log_class=FailuresAccessLogger) as url:
            print(f"webhook receiver on {url}/webhooks/{{{','.join(drivers)}}} "
                  f"writing to {sink.raw_topic} and {sink.rejects_topic} at {bootstrap}", flush=True)
            await until_stopped(stop)
            _log.info("webhook receiver stopping")
    finally:
        await sink.stop()
        for driver in drivers.values():
            await driver.aclose()
