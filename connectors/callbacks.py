"""Status callbacks to business systems: signed JSON POSTs, in order per message, retried, then dead-lettered.

`CallbackDispatcher.deliver(target, events)` sends the events of ONE message one at a time: event n+1 is sent
only after event n got a 2xx. A non-2xx answer, a timeout or a network error retries the same event after
`RetryPolicy.delay` (or the answer's Retry-After when longer, up to the policy's cap); a 4xx other than 408/429 is
permanent. When an event is given up (permanent answer or
`policy.max_attempts` spent) it is dead-lettered together with every later event of that message, which is never
sent: a receiver must not see "read" after a "delivered" it never got, so order wins over completeness, and the
dead-letter sink keeps everything needed to redeliver the tail in order. Different messages are delivered
concurrently, at most `max_concurrency` at a time. Nothing here touches Kafka (see docs/CONNECTORS.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from connectors._callback_signing import (
    DEFAULT_TOLERANCE_SECONDS,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_VERSION,
    TIMESTAMP_HEADER,
    CallbackSigner,
    callback_signature,
    verify_callback,
)
from connectors._errors import TransportError, TransportTimeout
from connectors._http_common import parse_retry_after
from connectors._privacy import Secret
from connectors._transport import Transport
from streams.policies.backoff import RetryPolicy

__all__ = [
    "ATTEMPT_HEADER",
    "DEFAULT_TOLERANCE_SECONDS",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "CallbackDispatcher",
    "CallbackEvent",
    "CallbackSigner",
    "CallbackTarget",
    "DeadLetter",
    "DeadLetterCause",
    "DeadLetterSink",
    "DeliveryReport",
    "InMemoryDeadLetterSink",
    "callback_signature",
    "is_permanent_status",
    "verify_callback",
]

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "X-Switchboard-Delivery-Attempt"
USER_AGENT = "Switchboard-Callbacks/1"
_RETRIED_4XX = frozenset({408, 429})  # request timeout and rate limit: the receiver asks us to come back


def is_permanent_status(status: int) -> bool:
    """True for a 4xx other than 408 and 429: retrying the same request cannot succeed."""
    return 400 <= status < 500 and status not in _RETRIED_4XX


@dataclass(frozen=True)
class CallbackEvent:
    """One status change of one message, as the business system receives it.

    `sequence` orders the events of a message (its version in the message stream); `event_id`
    (`{message_id}:{sequence}`) is stable across retries and restarts, so receivers dedupe by it.
    """

    message_id: str
    tenant_id: str
    event_type: str
    sequence: int
    occurred_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.message_id or not self.tenant_id or not self.event_type:
            raise ValueError("message_id, tenant_id and event_type must not be empty")
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 0:
            raise ValueError(f"sequence must be an int >= 0, not {self.sequence!r}")
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware")

    @property
    def event_id(self) -> str:
        """The idempotency key sent as X-Switchboard-Event-Id and in the body."""
        return f"{self.message_id}:{self.sequence}"

    def to_json(self) -> bytes:
        """The POST body: compact JSON with sorted keys (the bytes that are signed)."""
        document = {
            "event_id": self.event_id,
            "message_id": self.message_id,
            "tenant_id": self.tenant_id,
            "event_type": self.event_type,
            "sequence": self.sequence,
            "occurred_at": self.occurred_at.isoformat(),
            "payload": dict(self.payload),
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class CallbackTarget:
    """Where a tenant's callbacks go and the secret they are signed with (never in repr, logs or dead letters)."""

    url: str
    secret: Secret = field(repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("callback URL must be http(s)://host/...")
        if not isinstance(self.secret, Secret):
            raise TypeError("secret must be a connectors.Secret")


def _loggable(url: str) -> str:
    """scheme://host[:port]/path: no query string or credentials, which may carry a token of the tenant."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class DeadLetterCause(StrEnum):
    """Why an event was given up."""

    REJECTED = "rejected"  # a permanent 4xx answer
    EXHAUSTED = "exhausted"  # policy.max_attempts attempts, none answered 2xx
    SKIPPED = "skipped"  # never sent: an earlier event of the same message was given up
    UNSENDABLE = "unsendable"  # never sent: the tenant has no signing secret, or its URL is not one we send to


@dataclass(frozen=True)
class DeadLetter:
    """An event that was not delivered: the target URL (no secret), the event, why, and how many attempts."""

    target_url: str
    event: CallbackEvent
    cause: DeadLetterCause
    reason: str
    attempts: int
    last_status: int | None = None


@runtime_checkable
class DeadLetterSink(Protocol):
    """Keeps undelivered events (in memory for now; a Kafka dead-letter topic later)."""

    async def put(self, letter: DeadLetter) -> None:
        """Stores one dead letter; called in event order for one message."""
        ...


@dataclass
class InMemoryDeadLetterSink:
    """A DeadLetterSink keeping every letter in a list (tests, and until the Kafka sink exists)."""

    letters: list[DeadLetter] = field(default_factory=list)

    async def put(self, letter: DeadLetter) -> None:
        """Appends the letter."""
        self.letters.append(letter)


@dataclass(frozen=True)
class DeliveryReport:
    """The outcome of one deliver() call: delivered events in order, dead letters in order, requests made."""

    delivered: tuple[CallbackEvent, ...]
    dead_letters: tuple[DeadLetter, ...]
    requests: int

    @property
    def complete(self) -> bool:
        """True when every event got a 2xx."""
        return not self.dead_letters


Sleep = Callable[[float], Awaitable[None]]


class CallbackDispatcher:
    """POSTs callback events over a Transport, one message in order, many messages concurrently (bounded)."""

    def __init__(
        self,
        transport: Transport,
        policy: RetryPolicy,
        dead_letters: DeadLetterSink,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        max_concurrency: int = 16,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._transport = transport
        self._policy = policy
        self._dead_letters = dead_letters
        self._signer = CallbackSigner(clock)
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    async def deliver(self, target: CallbackTarget, events: Sequence[CallbackEvent]) -> DeliveryReport:
        """Delivers the events of one message in order; the undelivered ones go to the dead-letter sink.

        The events must share one message_id and have strictly increasing sequences. Two deliver() calls for the
        same message and URL run one after the other, in call order, so their events stay in order too.
        """
        batch = tuple(events)
        if not batch:
            return DeliveryReport((), (), 0)
        _check_one_message(batch)
        async with self._message_lock((target.url, batch[0].message_id)), self._slots:
            return await self._deliver_in_order(target, batch)

    async def deliver_all(
        self, deliveries: Iterable[tuple[CallbackTarget, Sequence[CallbackEvent]]]
    ) -> list[DeliveryReport]:
        """Delivers many messages concurrently (at most max_concurrency at a time); reports in input order."""
        return list(await asyncio.gather(*(self.deliver(target, events) for target, events in deliveries)))

    async def _deliver_in_order(self, target: CallbackTarget, batch: tuple[CallbackEvent, ...]) -> DeliveryReport:
        delivered: list[CallbackEvent] = []
        requests = 0
        for index, event in enumerate(batch):
            attempts, letter = await self._deliver_one(target, event)
            requests += attempts
            if letter is None:
                delivered.append(event)
                continue
            letters = [letter, *(
                DeadLetter(target.url, later, DeadLetterCause.SKIPPED,
                           f"not sent: earlier event {event.event_id} was dead-lettered ({letter.cause})", 0)
                for later in batch[index + 1:]
            )]
            for each in letters:
                await self._dead_letters.put(each)
            log.warning("callback %s to %s dead-lettered with %d later event(s): %s", event.event_id,
                        _loggable(target.url), len(letters) - 1, letter.reason)
            return DeliveryReport(tuple(delivered), tuple(letters), requests)
        return DeliveryReport(tuple(delivered), (), requests)

    async def _deliver_one(self, target: CallbackTarget, event: CallbackEvent) -> tuple[int, DeadLetter | None]:
        """(attempts made, None) once a 2xx arrived, else (attempts made, the dead letter)."""
        body = event.to_json()
        attempts = 0
        while True:
            attempts += 1
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                EVENT_ID_HEADER: event.event_id,
                ATTEMPT_HEADER: str(attempts),
                **self._signer.sign(target.secret, body),  # signed per attempt: a retry is inside the window too
            }
            status: int | None = None
            asked: float | None = None  # the receiver's Retry-After, in seconds
            try:
                response = await self._transport.request("POST", target.url, headers, body)
            except TransportTimeout as error:
                failure = f"timeout ({error})"
            except TransportError as error:
                failure = f"network error ({error})"
            else:
                status = response.status
                if 200 <= status < 300:
                    return attempts, None
                if is_permanent_status(status):
                    return attempts, DeadLetter(target.url, event, DeadLetterCause.REJECTED,
                                                f"HTTP {status} is permanent (attempt {attempts})", attempts, status)
                failure, asked = f"HTTP {status}", parse_retry_after(response.headers)
            if self._policy.exhausted(attempts):
                return attempts, DeadLetter(target.url, event, DeadLetterCause.EXHAUSTED,
                                            f"{failure} on the last of {attempts} attempts", attempts, status)
            delay = self._delay(attempts, asked)
            log.info("callback %s to %s failed (%s); attempt %d in %.3f s", event.event_id, _loggable(target.url),
                     failure, attempts + 1, delay)
            await self._sleep(delay)

    def _delay(self, attempts: int, asked: float | None) -> float:
        """The policy's jittered delay, or longer when the receiver asked for it (429/503 Retry-After), up to the
        policy's cap: a receiver cannot hold a tenant's ordered stream of callbacks for longer than that."""
        own = self._policy.delay(attempts, self._rng)
        return own if asked is None else max(own, min(asked, self._policy.cap_seconds))

    @asynccontextmanager
    async def _message_lock(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _check_one_message(batch: tuple[CallbackEvent, ...]) -> None:
    first = batch[0]
    for earlier, later in itertools.pairwise(batch):
        if later.message_id != first.message_id or later.tenant_id != first.tenant_id:
            raise ValueError("deliver() takes the events of one message (one message_id and tenant_id)")
        if later.sequence <= earlier.sequence:
            raise ValueError(f"sequences must strictly increase: {earlier.sequence} then {later.sequence}")
