"""The POST /v1/events handler: authenticate, bound, verify, dedupe, validate, produce, then answer 202."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from connectors._ingest_clients import IngestClient, IngestClients
from connectors._ingest_errors import Refused, error_body
from connectors._ingest_events import EncodedEvent, encode_events, parse_body
from connectors._ingest_idempotency import IdempotencyCache, idempotency_key
from connectors._ingest_signing import REPLAY_WINDOW_SECONDS, SignedHeaders, verify_signature
from connectors._ingest_sink import EventSink, OutgoingRecord, Placement, SinkUnavailable
from connectors._privacy import mask_phone
from schemas import Codec
from schemas.codec import default_codec
from switchboard.observability import StageMetrics

__all__ = ["MAX_BODY_BYTES", "MAX_RECORD_BYTES", "STATE", "IngestService", "handle_events", "json_errors"]

MAX_BODY_BYTES: Final = 1024 * 1024
# Kafka's default max.message.bytes is 1 MiB including the batch overhead; stay clearly under it.
MAX_RECORD_BYTES: Final = 1_000_000
_CHUNK: Final = 64 * 1024
_PHONE_LIKE: Final = re.compile(r"\+?\d{7,}")
REPLAYED_HEADER: Final = "Idempotent-Replayed"

SIGNED: Final = web.RequestKey("signed", SignedHeaders)  # kept on the request so refusals can log the client

_log = logging.getLogger("connectors.ingest")


@dataclass
class IngestService:
    """Everything one ingestion endpoint needs; the sink is the only way out to Kafka."""

    sink: EventSink
    clients: IngestClients
    topic_prefix: str = ""
    max_body_bytes: int = MAX_BODY_BYTES
    replay_window: float = REPLAY_WINDOW_SECONDS
    write_timeout: float = 10.0  # seconds for the broker's acknowledgements before answering 503
    clock: Callable[[], float] = time.time
    codec: Codec = field(default_factory=default_codec)
    idempotency: IdempotencyCache = field(default_factory=IdempotencyCache)
    stage: StageMetrics | None = None  # one event per accepted request's write; a failed write is an error

    async def ingest(self, request: web.Request) -> web.Response:
        """The whole request: any Refused on the way means nothing was produced (503: maybe partly, same ids)."""
        client = self._authenticated(request)
        raw = await read_bounded(request, self.max_body_bytes, _too_large)
        verify_signature(request[SIGNED], client.secret.get().reveal(), request.method, request.path, raw)
        key, digest = idempotency_key(request.headers), hashlib.sha256(raw).hexdigest()
        replay = self.idempotency.lookup(client.client_id, key, digest) if key else None
        if replay is not None:
            return web.json_response(replay, status=202, headers={REPLAYED_HEADER: "true"})
        answer = await self._accept(client, raw)
        if key:
            self.idempotency.store(client.client_id, key, digest, answer)
        return web.json_response(answer, status=202)

    def _authenticated(self, request: web.Request) -> IngestClient:
        signed = SignedHeaders(request.headers)
        request[SIGNED] = signed
        client = self.clients.get(signed.client_id)
        if client is None:
            raise Refused("unknown_client", "no client with this X-Switchboard-Client id")
        signed.check_window(self.clock(), self.replay_window)
        return client

    async def _accept(self, client: IngestClient, raw: bytes) -> dict[str, Any]:
        encoded = encode_events(parse_body(raw), client.tenant, self.codec)
        _check_record_sizes(encoded)
        placements = await self._produce([e.record(self.topic_prefix, f"client:{client.client_id}") for e in encoded])
        _log.info("ingest: client %s, %d events accepted", client.client_id, len(encoded))
        return {"accepted": [_accepted(e, p) for e, p in zip(encoded, placements, strict=True)]}

    async def _produce(self, records: Sequence[OutgoingRecord]) -> list[Placement]:
        try:
            with self.stage.observe() if self.stage is not None else contextlib.nullcontext():
                async with asyncio.timeout(self.write_timeout):
                    return await self.sink.produce(records)
        except (SinkUnavailable, TimeoutError) as error:
            _log.warning("ingest: Kafka did not acknowledge %d records (%s)", len(records), type(error).__name__)
            raise Refused("kafka_unavailable", "Kafka did not acknowledge the events; retry with the same "
                          "Idempotency-Key (a retry yields the same event ids)") from None


STATE: Final = web.AppKey("ingest", IngestService)


async def handle_events(request: web.Request) -> web.Response:
    """POST /v1/events."""
    try:
        return await request.app[STATE].ingest(request)
    except Refused as refused:
        return _refusal(request, refused)


def _refusal(request: web.Request, refused: Refused) -> web.Response:
    signed = request.get(SIGNED)
    # Codes and client ids only: messages and details may quote event values (names, phone numbers).
    _log.info("ingest: refused %s %s for client %s", refused.status, refused.code,
              signed.client_id if signed is not None else "-")
    headers = {"Retry-After": "1"} if refused.status == 503 else None
    return web.json_response(refused.body(), status=refused.status, headers=headers)


@web.middleware
async def json_errors(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """An unexpected exception becomes 500 in the same error shape; the log is scrubbed of phone-like numbers."""
    try:
        return await handler(request)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        code = re.sub(r"\W+", "_", http.reason.lower())  # 404 not_found, 405 method_not_allowed
        return web.json_response(error_body(code, http.reason), status=http.status)
    except Exception as error:
        trace = _PHONE_LIKE.sub(lambda m: mask_phone(m.group()), "".join(traceback.format_exception(error)))
        _log.error("ingest: %s %s failed (%s): %s", request.method, request.path, type(error).__name__, trace)
        return web.json_response(error_body("internal_error", "the server failed; retry later"), status=500)


def _check_record_sizes(encoded: list[EncodedEvent]) -> None:
    big = [{"index": i, "bytes": len(e.value)} for i, e in enumerate(encoded) if len(e.value) > MAX_RECORD_BYTES]
    if big:
        raise Refused("body_too_large", f"events over {MAX_RECORD_BYTES} bytes once encoded", big)


def _accepted(event: EncodedEvent, placement: Placement) -> dict[str, Any]:
    return {"event_id": event.event_id, "topic": placement.topic, "partition": placement.partition,
            "offset": placement.offset}


async def read_bounded(request: web.Request, limit: int, too_large: Callable[[int], Exception]) -> bytes:
    """The body, refused with `too_large(limit)` without reading it all when it is (declared or found) over
    `limit`: a client cannot make us buffer more than that, whatever it declares."""
    if (request.content_length or 0) > limit:
        raise too_large(limit)
    body = bytearray()
    while chunk := await request.content.read(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> Refused:
    return Refused("body_too_large", f"the body is over {limit} bytes; send fewer events per request")
