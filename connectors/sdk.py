"""Producer SDK for integrators: a signed, retrying client for POST /v1/events, and direct Kafka production."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

import aiohttp

from connectors._ingest_errors import Refused
from connectors._ingest_events import MAX_EVENTS, Submitted, encode_events
from connectors._ingest_signing import IDEMPOTENCY_HEADER, signed_headers
from connectors._ingest_sink import KafkaEventSink, Placement, SinkUnavailable
from schemas.codec import default_codec

__all__ = ["RETRYABLE_STATUSES", "Accepted", "IngestError", "KafkaEventProducer", "SwitchboardClient"]

EVENTS_PATH: Final = "/v1/events"
# 429 and 503 are the server asking to come back; 502 and 504 are a proxy in front of it saying the same.
RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Accepted:
    """One stored event: its id (dedupe by it) and where Kafka put it."""

    event_id: str
    topic: str
    partition: int
    offset: int


class IngestError(Exception):
    """A refused or failed send: the server's `code` (see docs/CONNECTORS.md), message, HTTP status and details.

    `status` is None when no HTTP answer came (network_error) or for direct Kafka production.
    """

    def __init__(self, code: str, message: str, status: int | None = None,
                 details: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.code = code
        self.message = message
        self.status = status
        self.details = list(details)


@dataclass(frozen=True)
class _Retry:
    error: IngestError
    retry_after: float | None = None


class SwitchboardClient:
    """Sends business events to Switchboard's ingestion endpoint; every attempt signed with the current time."""

    def __init__(self, base_url: str, client_id: str, secret: str, *, retries: int = 5, timeout: float = 10.0,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0, session: aiohttp.ClientSession | None = None,
                 rng: random.Random | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = base_url.rstrip("/") + EVENTS_PATH
        self.path = urlsplit(self.url).path  # what the server signs: the request path, no query
        self.client_id, self._secret = client_id, secret
        self.retries, self.timeout = retries, timeout
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self._session, self._owns_session = session, session is None
        self._rng, self._sleep, self._clock = rng or random.Random(), sleep, clock

    def __repr__(self) -> str:
        return f"SwitchboardClient({self.url!r}, client_id={self.client_id!r})"  # never the secret

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the HTTP session if this client created it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def send_event(self, event_type: str, event: Mapping[str, Any],
                         idempotency_key: str | None = None) -> Accepted:
        """Sends one event; returns once it is in Kafka. Raises IngestError."""
        answer = await self._post({"type": event_type, "event": event}, idempotency_key)
        return answer[0]

    async def send_events(self, events: Iterable[tuple[str, Mapping[str, Any]]],
                          idempotency_key: str | None = None) -> list[Accepted]:
        """Sends up to 500 (type, event) pairs in one request, all or none; returns them in order."""
        batch = [{"type": event_type, "event": event} for event_type, event in events]
        if not 1 <= len(batch) <= MAX_EVENTS:
            raise ValueError(f"send_events takes 1 to {MAX_EVENTS} events, got {len(batch)}")
        return await self._post({"events": batch}, idempotency_key)

    async def _post(self, payload: Mapping[str, Any], idempotency_key: str | None) -> list[Accepted]:
        body = json.dumps(payload, default=_json_value, separators=(",", ":")).encode()
        # One key for every attempt of this call: a retry after a lost answer gets the first answer back.
        key = idempotency_key or str(uuid.uuid4())
        for attempt in range(self.retries + 1):
            outcome = await self._attempt(body, key)
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt == self.retries:
                raise outcome.error
            await self._sleep(self._delay(attempt, outcome.retry_after))
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    async def _attempt(self, body: bytes, key: str) -> list[Accepted] | _Retry:
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: key,
                   **signed_headers(self.client_id, self._secret, int(self._clock()), "POST", self.path, body)}
        try:
            async with self._http().post(self.url, data=body, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                return _outcome(response.status, await response.read(), response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as error:
            return _Retry(IngestError("network_error", f"{type(error).__name__}: {error}"))

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter, so many clients retrying after one outage do not arrive together; Retry-After is a floor."""
        jittered = self._rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))
        return min(self.backoff_cap, max(jittered, retry_after or 0.0))


def _outcome(status: int, raw: bytes, retry_after: str | None) -> list[Accepted] | _Retry:
    body = _json_or_none(raw)
    if status == 202 and isinstance(body, dict) and isinstance(body.get("accepted"), list):
        return [Accepted(**item) for item in body["accepted"]]
    error = _error_of(status, body)
    if status in RETRYABLE_STATUSES:
        return _Retry(error, float(retry_after) if retry_after and retry_after.isdigit() else None)
    raise error


def _error_of(status: int, body: Any) -> IngestError:
    found = body.get("error") if isinstance(body, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("code"), str):
        return IngestError("bad_response", f"unexpected answer from the server (HTTP {status})", status)
    return IngestError(found["code"], str(found.get("message", "")), status, found.get("details") or [])


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _json_value(value: Any) -> Any:
    """Datetimes as ISO 8601 with their offset (the server refuses naive ones, so we refuse them first)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give it a timezone, e.g. datetime.now(UTC)")
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class KafkaEventProducer:
    """Direct production of business events with our schemas: encode, route, acks=all; no HTTP in between.

    For integrators with Kafka access (and ACLs limiting them to sb.events.business). Same checks and error codes
    as the HTTP endpoint, except the tenant, which Kafka's ACLs are for.
    """

    def __init__(self, bootstrap: str, *, topic_prefix: str = "", source: str = "kafka-direct",
                 **producer_options: object) -> None:
        self._sink = KafkaEventSink(bootstrap, **producer_options)
        self.topic_prefix, self.source = topic_prefix, source

    async def start(self) -> None:
        """Connects the producer."""
        await self._sink.start()

    async def stop(self) -> None:
        """Flushes and stops the producer."""
        await self._sink.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.stop()

    async def send(self, event_type: str, event: Mapping[str, Any]) -> Accepted:
        """One event, returned once the broker acknowledged it; raises IngestError."""
        return (await self.send_many([(event_type, event)]))[0]

    async def send_many(self, events: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Accepted]:
        """All events checked first, then all sent and acknowledged; a missing event_id is derived."""
        submitted = [Submitted(i, f"events[{i}].event", t, e) for i, (t, e) in enumerate(events)]
        try:
            encoded = encode_events(submitted, None, default_codec())
            placements = await self._sink.produce([e.record(self.topic_prefix, self.source) for e in encoded])
        except Refused as refused:
            raise IngestError(refused.code, refused.message, None, refused.details) from None
        except SinkUnavailable as error:
            raise IngestError("kafka_unavailable", str(error)) from error
        return [_placed(e.event_id, p) for e, p in zip(encoded, placements, strict=True)]


def _placed(event_id: str, placement: Placement) -> Accepted:
    return Accepted(event_id, placement.topic, placement.partition, placement.offset)
