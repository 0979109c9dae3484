"""The Message aggregate: one outbound message, from request through routing and dispatch to receipts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from aggregates._base import DomainError, InvalidTransition, SwitchboardAggregate, derived_id
from aggregates._values import (
    Channel,
    DeferralReason,
    FailureClass,
    MessageCategory,
    SuppressionReason,
    normalize_locale,
    require_aware,
)

__all__ = [
    "Failure",
    "Message",
    "MessagePhase",
    "MessageStatus",
    "Pricing",
    "Receipt",
    "ReceiptStatus",
    "Rendering",
    "Routing",
]


class MessagePhase(StrEnum):
    """Where our own pipeline is with the message; receipts from the provider are tracked separately."""

    REQUESTED = "requested"
    RENDERED = "rendered"
    DEFERRED = "deferred"
    ROUTED = "routed"
    DISPATCHING = "dispatching"
    ACCEPTED = "accepted"
    RETRY_SCHEDULED = "retry_scheduled"
    FALLING_BACK = "falling_back"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    DEAD_LETTERED = "dead_lettered"


class ReceiptStatus(StrEnum):
    """Positive provider receipts, in rank order: a later one implies the earlier ones."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"

    @property
    def rank(self) -> int:
        """1 for sent, 2 for delivered, 3 for read."""
        return _RANKS.index(self) + 1


_RANKS = (ReceiptStatus.SENT, ReceiptStatus.DELIVERED, ReceiptStatus.READ)


class MessageStatus(StrEnum):
    """The one-word status shown to clients: the best receipt, else failed, else the pipeline phase."""

    REQUESTED = "requested"
    RENDERED = "rendered"
    DEFERRED = "deferred"
    ROUTED = "routed"
    DISPATCHING = "dispatching"
    ACCEPTED = "accepted"
    RETRY_SCHEDULED = "retry_scheduled"
    FALLING_BACK = "falling_back"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    DEAD_LETTERED = "dead_lettered"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


_TERMINAL = frozenset({MessagePhase.SUPPRESSED, MessagePhase.EXPIRED, MessagePhase.DEAD_LETTERED})
_BEFORE_DISPATCH = frozenset(
    {MessagePhase.REQUESTED, MessagePhase.RENDERED, MessagePhase.DEFERRED, MessagePhase.ROUTED,
     MessagePhase.FALLING_BACK},
)
_IN_FLIGHT = frozenset({MessagePhase.DISPATCHING, MessagePhase.ACCEPTED})

# Which phases each pipeline command may start from. Receipts and failures are facts and have no such guard.
_ALLOWED_FROM: Mapping[str, frozenset[MessagePhase]] = {
    "render": frozenset({MessagePhase.REQUESTED, MessagePhase.DEFERRED, MessagePhase.FALLING_BACK}),
    "suppress": _BEFORE_DISPATCH,
    "defer": _BEFORE_DISPATCH | {MessagePhase.RETRY_SCHEDULED},
    "route": frozenset({MessagePhase.RENDERED, MessagePhase.DEFERRED, MessagePhase.FALLING_BACK}),
    "attempt_dispatch": frozenset({MessagePhase.ROUTED, MessagePhase.DEFERRED, MessagePhase.RETRY_SCHEDULED}),
    "accept": frozenset({MessagePhase.DISPATCHING}),
    "schedule_retry": _IN_FLIGHT,
    "fall_back": _IN_FLIGHT | {MessagePhase.ROUTED, MessagePhase.DEFERRED, MessagePhase.RETRY_SCHEDULED},
    "expire": frozenset(MessagePhase) - _TERMINAL,
    "dead_letter": frozenset(MessagePhase) - _TERMINAL,
}


@dataclass(frozen=True)
class Pricing:
    """Pricing as the provider reported it with a receipt (WhatsApp: pricing.pricing_model/category/billable)."""

    model: str | None = None
    category: str | None = None
    billable: bool | None = None


@dataclass(frozen=True)
class Receipt:
    """The earliest receipt of one status: which provider message and when the provider saw it."""

    provider_message_id: str
    provider_at: datetime
    pricing: Pricing | None


@dataclass(frozen=True)
class Failure:
    """The latest failure the provider or the send call reported."""

    failure_class: FailureClass
    provider_at: datetime
    attempt: int | None
    provider_message_id: str | None
    provider_code: str | None
    detail: str | None
    retry_after_ms: int | None


@dataclass(frozen=True)
class Rendering:
    """The content to send and where it came from."""

    body: str
    template_id: UUID | None
    template_version: int | None
    locale: str | None


@dataclass(frozen=True)
class Routing:
    """The channel, our sender on it and the recipient's address there."""

    channel: Channel
    sender: str
    address: str


def _receipt_key(receipt: Receipt) -> tuple[Any, ...]:
    # A total order, so "keep the smallest" gives the same answer whatever order receipts arrive in.
    pricing = receipt.pricing or Pricing()
    return (receipt.provider_at, receipt.provider_message_id, receipt.pricing is not None,
            pricing.model or "", pricing.category or "", repr(pricing.billable))


def _failure_key(failure: Failure) -> tuple[Any, ...]:
    return (failure.provider_at, -1 if failure.attempt is None else failure.attempt, failure.provider_code or "",
            failure.provider_message_id or "", failure.failure_class.value, failure.detail or "",
            -1 if failure.retry_after_ms is None else failure.retry_after_ms)


def _earlier(current: Receipt | None, new: Receipt) -> Receipt:
    return new if current is None or _receipt_key(new) < _receipt_key(current) else current


def _later(current: Failure | None, new: Failure) -> Failure:
    return new if current is None or _failure_key(new) > _failure_key(current) else current


class ReceiptRecorded(SwitchboardAggregate.Event):
    """Base of the three receipt events; merging keeps the earliest receipt per status, so order never matters."""

    STATUS: ClassVar[ReceiptStatus]

    provider_message_id: str
    provider_at: datetime
    pricing: Pricing | None

    def apply(self, aggregate: Message) -> None:
        """Merge this receipt into the message's receipts."""
        receipt = Receipt(self.provider_message_id, self.provider_at, self.pricing)
        merged = _earlier(aggregate.receipts.get(self.STATUS), receipt)
        aggregate.receipts = {**aggregate.receipts, self.STATUS: merged}


class Message(SwitchboardAggregate):
    """One outbound message: a pipeline state machine plus receipts that only ever move forward."""

    AGGREGATE_TYPE = "Message"

    class Requested(SwitchboardAggregate.Created):
        """A client or a rule asked for the message."""

        tenant_id: str
        contact_id: UUID
        category: MessageCategory
        template_name: str | None
        locale: str | None
        parameters: Mapping[str, str]
        body: str | None
        preferred_channel: Channel | None
        idempotency_key: str
        not_after: datetime | None
        requested_by: str | None

    class Rendered(SwitchboardAggregate.Event):
        """Content was produced."""

        body: str
        template_id: UUID | None
        template_version: int | None
        locale: str | None

        def apply(self, aggregate: Message) -> None:
            """Keep the content and move on."""
            aggregate.rendering = Rendering(self.body, self.template_id, self.template_version, self.locale)
            aggregate.phase = MessagePhase.RENDERED

    class Suppressed(SwitchboardAggregate.Event):
        """The message will never be sent."""

        reason: SuppressionReason
        detail: str | None

        def apply(self, aggregate: Message) -> None:
            """Close the message."""
            aggregate.phase = MessagePhase.SUPPRESSED
            aggregate.closed_reason = self.detail or self.reason.value

    class Deferred(SwitchboardAggregate.Event):
        """Sending waits until a later time."""

        until: datetime
        reason: DeferralReason
        detail: str | None

        def apply(self, aggregate: Message) -> None:
            """Remember until when and why."""
            aggregate.phase = MessagePhase.DEFERRED
            aggregate.deferred_until = self.until
            aggregate.deferral_reason = self.reason

    class Routed(SwitchboardAggregate.Event):
        """A channel and sender were chosen."""

        channel: Channel
        sender: str
        address: str

        def apply(self, aggregate: Message) -> None:
            """Remember the route."""
            aggregate.routing = Routing(self.channel, self.sender, self.address)
            aggregate.phase = MessagePhase.ROUTED

    class DispatchAttempted(SwitchboardAggregate.Event):
        """A send call is about to be made."""

        attempt: int
        channel: Channel
        sender: str

        def apply(self, aggregate: Message) -> None:
            """Count the attempt."""
            aggregate.attempt = self.attempt
            aggregate.phase = MessagePhase.DISPATCHING
            aggregate.retry_at = None

    class AcceptedByProvider(SwitchboardAggregate.Event):
        """The provider accepted the call and named the message."""

        attempt: int
        provider_message_id: str

        def apply(self, aggregate: Message) -> None:
            """Remember the provider's id for this attempt."""
            aggregate.provider_message_ids = {**aggregate.provider_message_ids, self.attempt: self.provider_message_id}
            aggregate.phase = MessagePhase.ACCEPTED

    class Sent(ReceiptRecorded):
        """The provider reports the message sent."""

        STATUS = ReceiptStatus.SENT

    class Delivered(ReceiptRecorded):
        """The provider reports the message delivered."""

        STATUS = ReceiptStatus.DELIVERED

    class Read(ReceiptRecorded):
        """The provider reports the message read."""

        STATUS = ReceiptStatus.READ

    class Failed(SwitchboardAggregate.Event):
        """A failure was reported; it never undoes a positive receipt."""

        attempt: int | None
        provider_message_id: str | None
        provider_code: str | None
        failure_class: FailureClass
        detail: str | None
        provider_at: datetime
        retry_after_ms: int | None

        def apply(self, aggregate: Message) -> None:
            """Keep the latest failure."""
            failure = Failure(self.failure_class, self.provider_at, self.attempt, self.provider_message_id,
                              self.provider_code, self.detail, self.retry_after_ms)
            aggregate.failure = _later(aggregate.failure, failure)

    class RetryScheduled(SwitchboardAggregate.Event):
        """Another attempt will be made later."""

        attempt: int
        retry_at: datetime
        failure_class: FailureClass

        def apply(self, aggregate: Message) -> None:
            """Wait for the retry time."""
            aggregate.phase = MessagePhase.RETRY_SCHEDULED
            aggregate.retry_at = self.retry_at

    class FallbackTriggered(SwitchboardAggregate.Event):
        """Sending moves to another channel; it needs a new route (and maybe new content)."""

        from_channel: Channel
        to_channel: Channel
        reason: str

        def apply(self, aggregate: Message) -> None:
            """Forget the old route."""
            aggregate.phase = MessagePhase.FALLING_BACK
            aggregate.fallback_channel = self.to_channel
            aggregate.routing = None

    class Expired(SwitchboardAggregate.Event):
        """The message was not sent in time."""

        reason: str

        def apply(self, aggregate: Message) -> None:
            """Close the message."""
            aggregate.phase = MessagePhase.EXPIRED
            aggregate.closed_reason = self.reason

    class DeadLettered(SwitchboardAggregate.Event):
        """Sending gave up and needs a person."""

        reason: str
        attempts: int
        last_failure_class: FailureClass | None

        def apply(self, aggregate: Message) -> None:
            """Close the message."""
            aggregate.phase = MessagePhase.DEAD_LETTERED
            aggregate.closed_reason = self.reason

    def __init__(
        self,
        tenant_id: str,
        contact_id: UUID,
        category: MessageCategory,
        template_name: str | None,
        locale: str | None,
        parameters: Mapping[str, str],
        body: str | None,
        preferred_channel: Channel | None,
        idempotency_key: str,
        not_after: datetime | None,
        requested_by: str | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.contact_id = contact_id
        self.category = category
        self.template_name = template_name
        self.locale = locale
        self.parameters: Mapping[str, str] = dict(parameters)
        self.body = body
        self.preferred_channel = preferred_channel
        self.idempotency_key = idempotency_key
        self.not_after = not_after
        self.requested_by = requested_by
        self.phase = MessagePhase.REQUESTED
        self.rendering: Rendering | None = None
        self.routing: Routing | None = None
        self.fallback_channel: Channel | None = None
        self.deferred_until: datetime | None = None
        self.deferral_reason: DeferralReason | None = None
        self.attempt = 0
        self.retry_at: datetime | None = None
        # State below is replaced, never mutated in place: snapshots share these objects with live aggregates.
        self.provider_message_ids: Mapping[int, str] = {}
        self.receipts: Mapping[ReceiptStatus, Receipt] = {}
        self.failure: Failure | None = None
        self.closed_reason: str | None = None

    @staticmethod
    def create_id(tenant_id: str, idempotency_key: str) -> UUID:
        """The same tenant and idempotency key always name the same message, so client retries are harmless."""
        return derived_id("message", tenant_id, idempotency_key)

    @classmethod
    def request(
        cls,
        *,
        tenant_id: str,
        contact_id: UUID,
        category: MessageCategory,
        idempotency_key: str,
        template_name: str | None = None,
        locale: str | None = None,
        parameters: Mapping[str, str] | None = None,
        body: str | None = None,
        preferred_channel: Channel | None = None,
        not_after: datetime | None = None,
        requested_by: str | None = None,
    ) -> Message:
        """A new message, asked for by a client or a rule; it needs a template name or a free-form body."""
        if template_name is None and body is None:
            raise DomainError("a message needs a template_name or a body")
        if not idempotency_key:
            raise DomainError("idempotency_key must not be empty")
        return cls._create(
            cls.Requested,
            tenant_id=tenant_id,
            contact_id=contact_id,
            category=category,
            template_name=template_name,
            locale=None if locale is None else normalize_locale(locale),
            parameters=dict(parameters or {}),
            body=body,
            preferred_channel=preferred_channel,
            idempotency_key=idempotency_key,
            not_after=None if not_after is None else require_aware(not_after, "not_after"),
            requested_by=requested_by,
        )

    @property
    def status(self) -> MessageStatus:
        """Best receipt if any (failures never undo one); else failed for the current attempt; else the phase."""
        if self.receipts:
            return MessageStatus(max(self.receipts, key=lambda s: s.rank).value)
        if self.phase in _IN_FLIGHT and self._current_attempt_failed():
            return MessageStatus.FAILED
        return MessageStatus(self.phase.value)

    def reached(self, status: ReceiptStatus) -> bool:
        """Whether the message got this far; a read message has also been delivered and sent."""
        return any(s.rank >= status.rank for s in self.receipts)

    def status_at(self, status: ReceiptStatus) -> datetime | None:
        """When the message first reached a status, counting the receipts that imply it."""
        times = [r.provider_at for s, r in self.receipts.items() if s.rank >= status.rank]
        return min(times, default=None)

    @property
    def closed(self) -> bool:
        """Whether the pipeline is done with the message (suppressed, expired or dead-lettered)."""
        return self.phase in _TERMINAL

    def render(
        self,
        body: str,
        *,
        template_id: UUID | None = None,
        template_version: int | None = None,
        locale: str | None = None,
    ) -> None:
        """Records the content to send."""
        self._require("render")
        if not body:
            raise DomainError("a rendered message needs a body")
        self.trigger_event(
            self.Rendered,
            body=body,
            template_id=template_id,
            template_version=template_version,
            locale=None if locale is None else normalize_locale(locale),
        )

    def suppress(self, reason: SuppressionReason, detail: str | None = None) -> None:
        """Decides never to send the message."""
        self._require("suppress")
        self.trigger_event(self.Suppressed, reason=reason, detail=detail)

    def defer(self, until: datetime, reason: DeferralReason, detail: str | None = None) -> None:
        """Postpones sending until a time (quiet hours, caps, rate limits...)."""
        self._require("defer")
        self.trigger_event(self.Deferred, until=require_aware(until, "until"), reason=reason, detail=detail)

    def route(self, channel: Channel, sender: str, address: str) -> None:
        """Chooses channel, sender and recipient address; the message must be rendered first."""
        self._require("route")
        if self.rendering is None:
            raise InvalidTransition(f"message {self.id}: cannot route before it is rendered")
        if self.fallback_channel is not None and channel != self.fallback_channel:
            raise DomainError(f"message {self.id}: fell back to {self.fallback_channel}, not {channel}")
        self.trigger_event(self.Routed, channel=channel, sender=sender, address=address)

    def attempt_dispatch(self) -> int:
        """Records that a send call is about to be made; returns the attempt number (1 for the first)."""
        self._require("attempt_dispatch")
        if self.routing is None:
            raise InvalidTransition(f"message {self.id}: cannot dispatch before it is routed")
        attempt = self.attempt + 1
        self.trigger_event(
            self.DispatchAttempted, attempt=attempt, channel=self.routing.channel, sender=self.routing.sender
        )
        return attempt

    def accept(self, provider_message_id: str) -> bool:
        """Records the provider's id for the current attempt; False if that was already recorded."""
        if self.provider_message_ids.get(self.attempt) == provider_message_id:
            return False  # the same acceptance, processed twice
        self._require("accept")
        self.trigger_event(self.AcceptedByProvider, attempt=self.attempt, provider_message_id=provider_message_id)
        return True

    def record_receipt(
        self,
        status: ReceiptStatus,
        provider_message_id: str,
        provider_at: datetime,
        pricing: Pricing | None = None,
    ) -> bool:
        """Records a provider receipt in any phase; False (no event) if it changes nothing, e.g. a duplicate."""
        at = require_aware(provider_at, "provider_at")
        receipt = Receipt(provider_message_id, at, pricing)
        if _earlier(self.receipts.get(status), receipt) == self.receipts.get(status):
            return False
        event_class = {
            ReceiptStatus.SENT: self.Sent,
            ReceiptStatus.DELIVERED: self.Delivered,
            ReceiptStatus.READ: self.Read,
        }[status]
        self.trigger_event(event_class, provider_message_id=provider_message_id, provider_at=at, pricing=pricing)
        return True

    def record_failure(
        self,
        failure_class: FailureClass,
        provider_at: datetime,
        *,
        attempt: int | None = None,
        provider_message_id: str | None = None,
        provider_code: str | None = None,
        detail: str | None = None,
        retry_after_ms: int | None = None,
    ) -> bool:
        """Records a failure in any phase; False (no event) if an equal or later failure is already known."""
        if attempt is None:
            attempt = self._attempt_of(provider_message_id)
        failure = Failure(failure_class, require_aware(provider_at, "provider_at"), attempt, provider_message_id,
                          provider_code, detail, retry_after_ms)
        if _later(self.failure, failure) == self.failure:
            return False
        self.trigger_event(
            self.Failed,
            attempt=failure.attempt,
            provider_message_id=provider_message_id,
            provider_code=provider_code,
            failure_class=failure_class,
            detail=detail,
            provider_at=failure.provider_at,
            retry_after_ms=retry_after_ms,
        )
        return True

    def schedule_retry(self, retry_at: datetime, failure_class: FailureClass) -> None:
        """Plans another attempt; only before any positive receipt, which would make a retry a duplicate."""
        self._require("schedule_retry")
        self._require_no_receipts("schedule a retry")
        self.trigger_event(
            self.RetryScheduled,
            attempt=self.attempt + 1,
            retry_at=require_aware(retry_at, "retry_at"),
            failure_class=failure_class,
        )

    def fall_back(self, to_channel: Channel, reason: str) -> None:
        """Moves sending to another channel; it must then be routed (and perhaps rendered) again."""
        self._require("fall_back")
        self._require_no_receipts("fall back")
        if self.routing is None or self.routing.channel == to_channel:
            raise InvalidTransition(f"message {self.id}: no other channel to fall back from to {to_channel}")
        self.trigger_event(self.FallbackTriggered, from_channel=self.routing.channel, to_channel=to_channel,
                           reason=reason)

    def expire(self, reason: str) -> None:
        """Gives up because the message was not sent in time."""
        self._require("expire")
        self._require_no_receipts("expire")
        self.trigger_event(self.Expired, reason=reason)

    def dead_letter(self, reason: str) -> None:
        """Gives up after failures; a person has to look at it."""
        self._require("dead_letter")
        last = None if self.failure is None else self.failure.failure_class
        self.trigger_event(self.DeadLettered, reason=reason, attempts=self.attempt, last_failure_class=last)

    def _require(self, command: str) -> None:
        if self.phase not in _ALLOWED_FROM[command]:
            raise InvalidTransition(f"message {self.id}: cannot {command.replace('_', ' ')} while {self.phase}")

    def _require_no_receipts(self, what: str) -> None:
        if self.receipts:
            raise InvalidTransition(f"message {self.id}: cannot {what}, the provider already reported it sent")

    def _attempt_of(self, provider_message_id: str | None) -> int | None:
        """The attempt a failure belongs to: the one that got this provider id, else the current one."""
        if provider_message_id is None:
            return self.attempt or None
        for attempt, known in self.provider_message_ids.items():
            if known == provider_message_id:
                return attempt
        return None

    def _current_attempt_failed(self) -> bool:
        return self.failure is not None and self.failure.attempt in (None, self.attempt)
