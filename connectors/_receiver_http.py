"""The receiver's aiohttp handlers: GET handshake, POST verify → parse-check → durable write → answer."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import Counter, Histogram

from connectors._callback_reference import QUERY_HEADER, QUERY_RECORD_HEADER
from connectors._driver import ChannelDriver
from connectors._errors import MalformedWebhook, WebhookRejected
from connectors._hub import SIGNATURE_HEADER, header_value
from connectors._privacy import mask_phone
from connectors._receiver_sinks import CONTENT_SHA256, RawWebhookSink
from switchboard.observability import ACK_BUCKETS, Observability, StageMetrics
from switchboard.tracing import AccessLogger, record_headers

__all__ = ["MAX_BODY_BYTES", "FailuresAccessLogger", "ReceiverConfig", "ReceiverMetrics", "handle_get", "handle_post",
           "json_errors"]

MAX_BODY_BYTES: Final = 1024 * 1024
_CHUNK = 64 * 1024
_PHONE_LIKE = re.compile(r"\+?\d{7,}")
SLOW_ANSWER_SECONDS: Final = 1.0  # an accepted webhook answered later than this is access-logged all the same

_log = logging.getLogger("connectors.receiver")


@dataclass(frozen=True)
class ReceiverConfig:
    """The channels served (name -> driver) and the receiver's limits."""

    drivers: Mapping[str, ChannelDriver]
    max_body_bytes: int = MAX_BODY_BYTES  # a larger body is refused with 413 (and kept, truncated, as a reject)
    max_reject_body_bytes: int = 64 * 1024  # how much of a refused body the rejects topic keeps
    write_timeout: float = 10.0  # seconds for the sink's acknowledgement before answering 500
    path: str = "/webhooks"


class _TooLarge(WebhookRejected):
    """The body is over the receiver's size limit."""

    http_status = 413


class ReceiverMetrics:
    """The receiver's stage (a stored body is an event, a failed write an error), acknowledgement latency and
    refusals by reason."""

    def __init__(self, observability: Observability) -> None:
        self.stage: StageMetrics = observability.stage("receiver")
        self.ack = Histogram("switchboard_webhook_ack_seconds", "From a webhook's arrival to its 200 (stored in "
                             "Kafka)", ["channel"], buckets=ACK_BUCKETS, registry=observability.registry)
        self.rejected = Counter("switchboard_webhooks_rejected_total", "Webhooks refused, by channel and reason",
                                ["channel", "reason"], registry=observability.registry)
        self._ack_children: dict[str, Histogram] = {}

    def acknowledged(self, channel: str, seconds: float) -> None:
        """Observes one 200; the labelled child is looked up once per channel (labels() costs a lock and a
        tuple key every time)."""
        child = self._ack_children.get(channel)
        if child is None:
            child = self._ack_children[channel] = self.ack.labels(channel)
        child.observe(seconds)


class FailuresAccessLogger(AccessLogger):
    """The access log of a webhook receiver: refusals, errors and slow answers only. An accepted webhook is
    counted by the metrics (switchboard_http_requests_total, switchboard_webhook_ack_seconds); a line for each of
    thousands per second cost a quarter of the receiver's CPU."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status < 400 and time < SLOW_ANSWER_SECONDS:
            return
        super().log(request, response, time)


SINK: Final = web.AppKey("sink", RawWebhookSink)
CONFIG: Final = web.AppKey("config", ReceiverConfig)
METRICS: Final = web.AppKey("metrics", ReceiverMetrics)


async def handle_get(request: web.Request) -> web.Response:
    """The subscription handshake: 200 with the challenge, 403 on a wrong token, 404 for a channel without one."""
    driver = request.app[CONFIG].drivers.get(request.match_info["channel"])
    if driver is None:
        return _error(404, "unknown_channel")
    try:
        challenge = driver.answer_handshake(request.query)
    except WebhookRejected as refused:
        return _error(refused.http_status, _reason(refused))
    if challenge is None:
        return _error(404, "no_handshake")
    return web.Response(text=challenge)


async def handle_post(request: web.Request) -> web.Response:
    """Verifies the raw body with the channel's driver and answers 200 only after the sink stored it."""
    config, sink, metrics = request.app[CONFIG], request.app[SINK], request.app[METRICS]
    channel = request.match_info["channel"]
    driver = config.drivers.get(channel)
    if driver is None:
        return _error(404, "unknown_channel")
    arrived = time.perf_counter()
    received_at = str(time.time_ns() // 1_000_000)
    raw = await _read_bounded(request, config.max_body_bytes)
    try:
        _check(driver, request, raw, config.max_body_bytes)
    except WebhookRejected as refused:
        metrics.rejected.labels(channel, _reason(refused)).inc()
        await _keep_reject(sink, config, channel, refused, request, raw, received_at)
        return _error(refused.http_status, _reason(refused))
    headers = {"channel": channel, "received_at": received_at, "signature-verified": "true",
               CONTENT_SHA256: hashlib.sha256(raw).hexdigest(),
               **{name: value.decode() for name, value in record_headers()}}  # the request's trace, child span
    if query := _raw_query(request):
        headers[QUERY_RECORD_HEADER] = query  # a per-message callback URL's: it names the message (sb_ref)
    with metrics.stage.observe():
        async with asyncio.timeout(config.write_timeout):
            await sink.accept(channel, raw, headers)
    metrics.acknowledged(channel, time.perf_counter() - arrived)
    return web.json_response({"status": "accepted"})


@web.middleware
async def json_errors(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Any unexpected exception becomes a 500 with a JSON body; the log carries no body and no full number."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as error:
        channel = request.match_info.get("channel", "?")
        trace = _scrub("".join(traceback.format_exception(error)))
        _log.error("webhook %s %s failed (%s): %s", request.method, channel, type(error).__name__, trace)
        return _error(500, "internal_error")


def _raw_query(request: web.Request) -> str:
    """The query string exactly as requested (still percent-encoded: a signature is over the URL as sent)."""
    return request.raw_path.partition("?")[2]


def _with_query(request: web.Request) -> CIMultiDict[str]:
    """The request's headers with its raw query under QUERY_HEADER, replacing any a client sent by that name."""
    headers = CIMultiDict(request.headers)
    headers[QUERY_HEADER] = _raw_query(request)
    return headers


def _check(driver: ChannelDriver, request: web.Request, raw: bytes, limit: int) -> None:
    if len(raw) > limit or (request.content_length or 0) > limit:
        raise _TooLarge(f"body over {limit} bytes")
    # The exact bytes, before any parsing; with the query as requested when the signature covers the URL.
    driver.verify_webhook(_with_query(request) if driver.capabilities.callback_reference else request.headers, raw)
    try:
        driver.check_webhook(raw)
    except MalformedWebhook:
        raise
    except Exception as error:  # a signed body our parser trips on is still stored: the raw topic comes first
        _log.warning("webhook %s: parser failed (%s); body kept anyway", request.match_info["channel"],
                     type(error).__name__)


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    """At most limit + 1 bytes (enough to know it is too large); nothing when Content-Length is already over."""
    if (request.content_length or 0) > limit:
        return b""
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            break
        body += chunk
    return bytes(body[: limit + 1])


async def _keep_reject(sink: RawWebhookSink, config: ReceiverConfig, channel: str, refused: WebhookRejected,
                       request: web.Request, raw: bytes, received_at: str) -> None:
    """Writes the audit record; a failure here is logged and the rejection is answered anyway."""
    kept = raw[: config.max_reject_body_bytes]
    headers = {
        "channel": channel,
        "received_at": received_at,
        "status": str(refused.http_status),
        "detail": _scrub(str(refused))[:200],
        "signature-present": str(bool(header_value(request.headers, SIGNATURE_HEADER))).lower(),
        "content-type": request.headers.get("Content-Type", ""),
        "user-agent": request.headers.get("User-Agent", ""),
        "content-length": str(request.content_length if request.content_length is not None else len(raw)),
        "body-truncated": str(len(kept) < len(raw) or isinstance(refused, _TooLarge)).lower(),
        CONTENT_SHA256: hashlib.sha256(raw).hexdigest(),  # of the bytes read: all of them unless over the limit
    }
    try:
        async with asyncio.timeout(config.write_timeout):
            await sink.reject(channel, _reason(refused), kept, headers)
    except Exception as error:
        _log.error("webhook %s: could not keep a %s reject (%s)", channel, refused.http_status, type(error).__name__)


def _reason(refused: WebhookRejected) -> str:
    """SignatureMissing -> 'signature_missing'; the receiver's own size check is 'body_too_large'."""
    if isinstance(refused, _TooLarge):
        return "body_too_large"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(refused).__name__).lower()


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _scrub(text: str) -> str:
    """Masks anything that looks like a phone number in a log line."""
    return _PHONE_LIKE.sub(lambda match: mask_phone(match.group()), text)
