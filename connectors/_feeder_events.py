"""Message status events from the event log as callback events, and the bounded memory the feeder keeps of them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from connectors.callbacks import CallbackEvent
from schemas import DecodedEvent

__all__ = ["STATUS_EVENT_TYPES", "FeederStats", "RecentMap", "StatusRecord", "json_safe", "status_record"]

# The message events a business system is told about: the provider's receipts and every outcome the pipeline
# decides. Requested/Rendered/Routed/Deferred/DispatchAttempted/RetryScheduled are internal steps, not statuses.
STATUS_EVENT_TYPES = frozenset({
    "MessageAcceptedByProvider",
    "MessageSent",
    "MessageDelivered",
    "MessageRead",
    "MessageFailed",
    "MessageSuppressed",
    "MessageDeadLettered",
    "MessageFallbackTriggered",
    "MessageExpired",
})


@dataclass(frozen=True)
class StatusRecord:
    """A status event read from the log: its envelope event id (to dedupe redeliveries) and the callback event."""

    event_id: str
    callback: CallbackEvent


def status_record(decoded: DecodedEvent) -> StatusRecord | None:
    """The callback event of a message status event; None for any other event type."""
    if decoded.event_type not in STATUS_EVENT_TYPES:
        return None
    envelope = decoded.payload["envelope"]
    fields = {name: json_safe(value) for name, value in decoded.payload.items() if name != "envelope"}
    callback = CallbackEvent(message_id=envelope["aggregate_id"], tenant_id=envelope["tenant_id"],
                             event_type=decoded.event_type, sequence=envelope["aggregate_version"],
                             occurred_at=envelope["occurred_at"], payload=fields)
    return StatusRecord(envelope["event_id"], callback)


def json_safe(value: Any) -> Any:
    """The decoded Avro value as JSON can carry it: timestamps as ISO 8601, records and arrays recursively."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentMap(Generic[K, V]):
    """A map that keeps only its `capacity` most recently written keys (a bounded dedupe window)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def put(self, key: K, value: V) -> None:
        """Stores the key as the most recent one, evicting the oldest beyond capacity."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        """The value, or None if the key was never written or has been evicted."""
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class FeederStats:
    """Counters of what the feeder did with the records it read (for tests and logs; no ids, no payloads)."""

    records: int = 0
    status_events: int = 0
    duplicates: int = 0
    without_url: int = 0
    undecodable: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0  # requests beyond each event's first
