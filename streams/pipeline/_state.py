"""The writer's state for one contact: the Contact aggregate, its open messages, its dispatch queue and caps log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aggregates import Contact, Message
from streams.pipeline._commands import priority_rank

__all__ = ["FINISHED_KEPT", "ContactRow", "MessageSlot"]

# How many finished message ids a contact row remembers, so that a repeated request is recognised as one.
FINISHED_KEPT = 200


@dataclass
class MessageSlot:
    """An open message with what the pipeline decided for it so far."""

    message: Message
    priority: str
    route: str | None = None
    chain: tuple[str, ...] = ()  # channel ids: the chosen one, then the fallback chain
    step: int = 0  # index into chain of the channel in use
    template: str | None = None  # a route arm may swap the template (gradual roll-out)
    retry: str = "default"
    deadline_seconds: float | None = None
    sender: str | None = None
    content: dict[str, Any] | None = None
    timer: float | None = None  # epoch seconds when `timer_kind` fires
    timer_kind: str | None = None  # defer | retry | probe | deadline | reconcile | late | forget
    tags: tuple[str, ...] = ()
    trace_id: str | None = None
    media: dict[str, Any] | None = None  # a header for a template, or the media of a free-form message
    seq: int = 0  # the contact's request order: the queue is ordered by priority, then this
    probes: int = 0  # probes of the attempt in dispatch so far: each waits twice as long as the one before
    accepted_at: float | None = None  # epoch seconds the provider accepted the attempt: a watermark's reference

    @property
    def channel(self) -> str | None:
        """The channel id in use, None before routing."""
        return self.chain[self.step] if self.chain else None


@dataclass
class ContactRow:
    """Everything the single writer of one contact keeps; one RocksDB row, rewritten per command."""

    contact: Contact | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # first_name, tags...: the CEL `customer`
    messages: dict[str, MessageSlot] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)  # waiting for dispatch: priority first, then arrival
    in_dispatch: str | None = None  # the message whose outcome gates the next one (per-recipient order)
    # message id -> final status, oldest first. A dict, not an OrderedDict: that pickles through Python code, a
    # fifth of the row's pickling time. Rows written before hold an OrderedDict, which serves the same.
    finished: dict[str, str] = field(default_factory=dict)
    sent_log: list[tuple[float, str]] = field(default_factory=list)  # (accepted at, category), for caps
    sticky: dict[str, str] = field(default_factory=dict)  # channel id -> sender id
    applied_offset: int = -1  # source offset last applied: a record at or below it is a redelivery
    applied_cluster: str = ""  # the cluster of that offset (_guard.py)
    requests: int = 0  # requests seen, numbering each message's place in the contact's order
    # "<channel>/<status>" -> the highest watermark (epoch seconds) of receipts that name only the recipient
    # (Messenger's delivered and read): every message sent on the channel at or before it reached the status. A
    # plain default, not a factory, so that rows pickled before it have it too (None).
    watermarks: dict[str, float] | None = None

    def enqueue(self, message_id: str, rank: int) -> None:
        """Queues a message in its place: by priority, then by request order, whatever brought it back
        (a retry or a fallback never lets a later message of the same priority overtake it)."""
        self.queue.append(message_id)
        self.queue.sort(key=lambda mid: (rank if mid == message_id else _rank(self.messages[mid]),
                                         self.messages[mid].seq))

    @property
    def tags(self) -> tuple[str, ...]:
        """The contact's tags (`vip`...), from its attributes."""
        return tuple(self.attributes.get("tags", ()))

    def knows(self, message_id: str) -> bool:
        """Whether a message with this id is open or finished here."""
        return message_id in self.messages or message_id in self.finished

    def finish(self, message_id: str, status: str) -> None:
        """Closes a message: it leaves the open set and the queue; its id is remembered for idempotency."""
        self.messages.pop(message_id, None)
        if message_id in self.queue:
            self.queue.remove(message_id)
        if self.in_dispatch == message_id:
            self.in_dispatch = None
        self.finished[message_id] = status
        while len(self.finished) > FINISHED_KEPT:
            del self.finished[next(iter(self.finished))]

    def next_timer(self) -> float | None:
        """The earliest timer of any open message, None if nothing waits on the clock."""
        return min((slot.timer for slot in self.messages.values() if slot.timer is not None), default=None)


def _rank(slot: MessageSlot) -> int:
    return priority_rank(slot.priority)
