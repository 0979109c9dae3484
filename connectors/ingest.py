"""ERP ingestion: POST /v1/events, signed per client, validated against the event schemas, in Kafka before 202."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web

from connectors._ingest_clients import CLIENTS_ENV, ClientsError, IngestClient, IngestClients, load_clients
from connectors._ingest_errors import CODES, Refused
from connectors._ingest_events import MAX_EVENTS
from connectors._ingest_http import MAX_BODY_BYTES, STATE, IngestService, handle_events, json_errors
from connectors._ingest_idempotency import IdempotencyCache
from connectors._ingest_signing import (
    CLIENT_HEADER,
    IDEMPOTENCY_HEADER,
    REPLAY_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ingest_signature,
    signed_headers,
)
from connectors._ingest_sink import (
    EventSink,
    InMemoryEventSink,
    KafkaEventSink,
    OutgoingRecord,
    Placement,
    SinkUnavailable,
)
from schemas import EVENT_TOPICS
from switchboard.observability import HttpMetrics, Observability, kafka_reachable, until_stopped
from switchboard.serving import serving
from switchboard.topics import AUDIT_LOG_CONFIG, TopicSpec, ensure_topics
from switchboard.tracing import AccessLogger, http_middleware

__all__ = [
    "CLIENTS_ENV",
    "CLIENT_HEADER",
    "CODES",
    "EVENTS_PATH",
    "IDEMPOTENCY_HEADER",
    "MAX_BODY_BYTES",
    "MAX_EVENTS",
    "REPLAY_WINDOW_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ClientsError",
    "EventSink",
    "IdempotencyCache",
    "InMemoryEventSink",
    "IngestClient",
    "IngestClients",
    "IngestService",
    "KafkaEventSink",
    "OutgoingRecord",
    "Placement",
    "Refused",
    "SinkUnavailable",
    "business_topic_spec",
    "ingest_app",
    "ingest_signature",
    "load_clients",
    "run_ingest",
    "signed_headers",
]

EVENTS_PATH = "/v1/events"
_log = logging.getLogger(__name__)


def ingest_app(producer_sink: EventSink, clients: IngestClients, *, topic_prefix: str = "",
               max_body_bytes: int = MAX_BODY_BYTES, replay_window: float = REPLAY_WINDOW_SECONDS,
               write_timeout: float = 10.0, idempotency: IdempotencyCache | None = None,
               clock: Callable[[], float] | None = None,
               observability: Observability | None = None) -> web.Application:
    """POST /v1/events over this sink, /healthz, /readyz and /metrics; the caller starts and stops the sink.
    Readiness checks Kafka when the sink is a KafkaEventSink."""
    observability = observability or Observability("ingest")
    if isinstance(producer_sink, KafkaEventSink):
        observability.readiness.add("kafka", lambda: kafka_reachable(producer_sink.client))
    service = IngestService(producer_sink, clients, topic_prefix, max_body_bytes, replay_window, write_timeout,
                            clock=clock or time.time, idempotency=idempotency or IdempotencyCache(),
                            stage=observability.stage("ingest"))
    app = web.Application(middlewares=[http_middleware, HttpMetrics(observability.registry).middleware, json_errors])
    app[STATE] = service
    app.router.add_post(EVENTS_PATH, handle_events)
    observability.add_routes(app)
    return app


def business_topic_spec(prefix: str, partitions: int, replication: int = -1) -> TopicSpec:
    """<prefix>sb.events.business as the event model lays it out: kept forever, never compacted."""
    return TopicSpec(prefix + EVENT_TOPICS["business"].name, partitions, replication, AUDIT_LOG_CONFIG)


async def run_ingest(bootstrap: str, clients: IngestClients, *, host: str = "127.0.0.1", port: int = 8090,
                     prefix: str = "", partitions: int = 6, replication: int = -1,
                     stop: asyncio.Event | None = None) -> None:
    """Serves until `stop` is set (by default: SIGINT or SIGTERM): the topic is ensured and the producer started
    before the port opens."""
    await ensure_topics(bootstrap, [business_topic_spec(prefix, partitions, replication)])
    async with KafkaEventSink(bootstrap) as sink, serving(ingest_app(sink, clients, topic_prefix=prefix), host, port,
                                                          shutdown_timeout=5.0, access_log_class=AccessLogger) as url:
        print(f"ingestion on {url}{EVENTS_PATH} for {len(clients)} client(s), writing to "
              f"{prefix}{EVENT_TOPICS['business'].name} at {bootstrap}", flush=True)
        await until_stopped(stop)
        _log.info("ingestion stopping")
