"""The causation chain, pure: which record caused which, in the order an auditor reads them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aggregates import Message
from projections._audit_log import Pointer, pointer_of
from projections._audit_mask import masked, masked_body
from schemas import DecodedEvent, decode
from switchboard.log_reads import LogRecord

__all__ = ["AuditLine", "Command", "ContactLog", "Event", "contact_lines", "message_lines", "parse_commands",
           "parse_events"]

RAW_SOURCE_HEADER = "raw-source"  # connectors.normaliser.RAW_SOURCE_HEADER (not imported: projections stay apart)

# What each kind of record says about a message, beyond its type.
_EVENT_FIELDS = ("channel", "sender", "attempt", "provider_message_id", "provider_code", "detail", "reason",
                 "from_channel", "to_channel", "retry_at", "until", "failure_class", "body", "idempotency_key",
                 "category", "source", "granted", "text")
_COMMAND_FIELDS = ("outcome", "attempt", "status", "provider_message_id", "code", "detail", "sent_at", "trigger",
                   "event_type", "requested_by", "error", "action", "channel", "category", "at")
# The commands the normaliser makes from a raw webhook (its line is placed before theirs).
_WEBHOOK_COMMANDS = frozenset({"receipt", "recipient_receipt", "inbound"})
# What the timer a clock tick fired was for, by the message's event just before it.
_TIMERS = {"MessageRetryScheduled": "the retry was due", "MessageDeferred": "the deferral ended",
           "MessageDispatchAttempted": "no answer from the send in time",
           "MessageAcceptedByProvider": "the delivery deadline passed", "MessageRead": "late receipts were awaited"}


@dataclass(frozen=True)
class AuditLine:
    """One step: a business event, a raw webhook, a command or an event, with what caused it."""

    at: datetime
    source: str  # "business", "webhook", "command" or "event"
    kind: str
    position: str  # topic-partition@offset, so an auditor can fetch the record itself
    ref: str  # what causes point at: an event or command id, else the position
    cause: str | None  # the position of the line that caused this one, when the audit holds it
    because: str  # the cause in words
    details: dict[str, Any]


@dataclass(frozen=True)
class Command:
    """A command record, read as JSON."""

    record: LogRecord
    value: dict[str, Any]

    @property
    def id(self) -> str | None:
        """Its command id (ticks have none)."""
        found = self.value.get("command_id")
        return None if found is None else str(found)

    @property
    def kind(self) -> str:
        """request, receipt, outcome, ..."""
        return str(self.value.get("kind"))

    @property
    def source(self) -> Pointer | None:
        """Where the record that caused it sits: the raw webhook (normaliser) or the business event (trigger)."""
        header = self.record.headers.get(RAW_SOURCE_HEADER)
        return pointer_of(header) if header is not None else pointer_of(self.value.get("source"))


@dataclass(frozen=True)
class Event:
    """An event record, decoded."""

    record: LogRecord
    event_type: str
    payload: dict[str, Any]

    @property
    def envelope(self) -> dict[str, Any]:
        """The event's envelope."""
        envelope: dict[str, Any] = self.payload["envelope"]
        return envelope

    @property
    def aggregate_id(self) -> str:
        """The message or contact it is about."""
        return str(self.envelope["aggregate_id"])


@dataclass
class ContactLog:
    """What the log holds about one contact: its commands, its messages' events, its own events, their sources."""

    contact_id: str
    commands: list[Command]
    message_events: list[Event]
    contact_events: list[Event]
    sources: dict[Pointer, LogRecord] = field(default_factory=dict)  # raw webhooks and business events

    def pointers(self) -> set[Pointer]:
        """The raw webhooks and business events the commands point at."""
        return {pointer for command in self.commands if (pointer := command.source) is not None}

    def message_ids(self) -> list[str]:
        """The contact's messages, in the order they were requested."""
        return list(dict.fromkeys(event.aggregate_id for event in self.message_events))


def parse_commands(records: Iterable[LogRecord]) -> list[Command]:
    """The records that are JSON objects (an unreadable one is the writer's dead letter, not a step)."""
    commands = []
    for record in records:
        try:
            value = json.loads(record.value or b"")
        except ValueError:
            continue
        if isinstance(value, dict):
            commands.append(Command(record, value))
    return commands


def parse_events(records: Iterable[LogRecord]) -> list[Event]:
    """The records that decode to known events."""
    events = []
    for record in records:
        try:
            decoded = decode(record.value or b"")
        except Exception:  # not an event of ours: the audit shows what it can read, the dead letters the rest
            continue
        if isinstance(decoded, DecodedEvent):
            events.append(Event(record, decoded.event_type, decoded.payload))
    return events


def message_lines(log: ContactLog, message_id: str) -> list[AuditLine]:
    """A message's history: its events and every command and record that caused them."""
    events = [event for event in log.message_events if event.aggregate_id == message_id]
    return _Chain(log, message_id).lines(events, lambda command: _about(command.value, message_id))


def contact_lines(log: ContactLog) -> list[AuditLine]:
    """The contact's own history: registration, consent, preferences and inbound messages, with their causes."""
    events = [event for event in log.contact_events if event.aggregate_id == log.contact_id]
    return _Chain(log, None).lines(events, lambda command: command.kind in {"contact", "consent", "inbound"})


class _Chain:
    """Builds the lines of one aggregate's history; `about` is the message id, None for the contact."""

    def __init__(self, log: ContactLog, about: str | None) -> None:
        self._log = log
        self._about = about
        self._by_id: dict[str, Command] = {}
        for command in log.commands:
            if command.id is not None:
                self._by_id.setdefault(command.id, command)  # the first copy is the one the writer applied
        self._attempts: dict[int, str] = {}  # attempt number -> the position of its MessageDispatchAttempted
        self._placed: set[str] = set()

    def lines(self, events: Sequence[Event], relevant: Callable[[Command], bool]) -> list[AuditLine]:
        causes = [self._by_id.get(str(event.envelope.get("causation_id"))) for event in events]
        chosen = {c.record.offset: c for c in [*filter(relevant, self._log.commands), *filter(None, causes)]}
        commands = [chosen[offset] for offset in sorted(chosen)]
        lines: list[AuditLine] = []
        previous: str | None = None
        for item in _merge(commands, events, causes):
            if isinstance(item, Command):
                lines.extend(self._command(item))
            else:
                lines.append(self._event(item, previous))
                previous = item.event_type
        return lines

    def _event(self, event: Event, previous: str | None) -> AuditLine:
        envelope, payload = event.envelope, event.payload
        details = {name: payload[name] for name in _EVENT_FIELDS if payload.get(name) is not None}
        details["version"] = envelope["aggregate_version"]
        if event.event_type == "MessageDispatchAttempted" and isinstance(payload.get("attempt"), int):
            self._attempts[payload["attempt"]] = event.record.position
        cause, because = self._event_cause(str(envelope.get("causation_id") or ""), previous)
        return AuditLine(envelope["occurred_at"], "event", event.event_type, event.record.position,
                         str(envelope["event_id"]), cause, because, masked(details))

    def _event_cause(self, causation: str, previous: str | None) -> tuple[str | None, str]:
        if not causation:
            return None, "cause not recorded (an event written before causation ids)"
        if causation.startswith("tick:"):
            timer = _TIMERS.get(previous or "", "a timer fell due")
            return None, f"{timer} (partition clock tick at {causation[5:]})"
        command = self._by_id.get(causation)
        if command is None:
            return None, f"command {causation} (no longer on the commands topic, which keeps 7 days)"
        other = command.value.get("message_id")
        about = f" of message {other}" if self._about and other and other != self._about else ""
        return command.record.position, f"{command.kind} command{about}"

    def _command(self, command: Command) -> list[AuditLine]:
        lines = []
        pointer = command.source
        source = self._log.sources.get(pointer) if pointer is not None else None
        if source is not None and source.position not in self._placed:
            self._placed.add(source.position)
            lines.append(_webhook(source) if command.kind in _WEBHOOK_COMMANDS else _business(source))
        cause, because = self._command_cause(command, pointer, source)
        value = command.value
        details = {name: value[name] for name in _COMMAND_FIELDS if value.get(name) is not None}
        if value.get("message_id") and value.get("message_id") != self._about:
            details["message_id"] = value["message_id"]
        details["command_id"] = command.id
        lines.append(AuditLine(command.record.at, "command", command.kind, command.record.position,
                               command.id or command.record.position, cause, because, masked(details)))
        return lines

    def _command_cause(self, command: Command, pointer: Pointer | None,
                       source: LogRecord | None) -> tuple[str | None, str]:
        value = command.value
        if command.kind in _WEBHOOK_COMMANDS:
            if source is not None:
                return source.position, f"{value.get('channel') or source.header('channel')} webhook"
            return None, _missing("raw webhook", pointer, "written before raw-source headers")
        if command.kind == "trigger":
            what = f"business event {value.get('event_type')} {command.id}"
            return (source.position, what) if source is not None else (None, _missing(what, pointer, "not named"))
        if command.kind == "outcome":
            attempt = self._attempts.get(value.get("attempt", -1))
            return attempt, f"the dispatcher's answer to attempt {value.get('attempt')}"
        if command.kind == "request":
            return None, f"requested by {value.get('requested_by') or 'a client (API, SDK or integrator)'}"
        return None, f"{command.kind} from {value.get('source') or 'a client (API, SDK or integrator)'}"


def _merge(commands: list[Command], events: Sequence[Event],
           causes: Sequence[Command | None]) -> list[Command | Event]:
    """Events in log order, each after the command that caused it; the commands in the order the writer read them.

    Commands that caused nothing (a repeated receipt, a stale outcome) keep their place among the others; with no
    causation id (older events) an event follows the commands written before it.
    """
    position = {command.record.offset: index for index, command in enumerate(commands)}
    ordered: list[Command | Event] = []
    taken = 0
    for event, cause in zip(events, causes, strict=True):
        last = position[cause.record.offset] if cause is not None else _written_before(commands, event) - 1
        if last >= taken:
            ordered.extend(commands[taken:last + 1])
            taken = last + 1
        ordered.append(event)
    ordered.extend(commands[taken:])
    return ordered


def _written_before(commands: list[Command], event: Event) -> int:
    return sum(1 for command in commands if command.record.at <= event.record.at)


def _webhook(record: LogRecord) -> AuditLine:
    verified = record.header("signature-verified") == "true"
    details = {"body": masked_body(record.value), "received_at": record.header("received_at")}
    because = "posted by the provider; signature verified by the webhook receiver" if verified else \
        "posted by the provider"
    return AuditLine(record.at, "webhook", record.header("channel") or "webhook", record.position,
                     record.position, None, because, details)


def _business(record: LogRecord) -> AuditLine:
    try:
        decoded = decode(record.value or b"")
    except Exception:  # shown as what it is: bytes the audit cannot read
        decoded = None
    if not isinstance(decoded, DecodedEvent):
        return AuditLine(record.at, "business", "unreadable", record.position, record.position, None,
                         "an integrator", {"body": masked_body(record.value)})
    payload = {name: value for name, value in decoded.payload.items() if name != "envelope"}
    envelope = decoded.payload["envelope"]
    return AuditLine(envelope["occurred_at"], "business", decoded.event_type, record.position,
                     str(envelope["event_id"]), None, "an integrator (switchboard ingest, the SDK or a producer)",
                     masked(json.loads(json.dumps(payload, default=str))))


def _missing(what: str, pointer: Pointer | None, otherwise: str) -> str:
    if pointer is None:
        return f"{what} ({otherwise})"
    return f"{what} at {pointer[0]}-{pointer[1]}@{pointer[2]} (no longer there)"


def _about(command: Mapping[str, Any], message_id: str) -> bool:
    if command.get("message_id") == message_id:
        return True
    tenant = command.get("tenant")
    if command.get("kind") == "request":
        key = (command.get("message") or {}).get("idempotency_key")
    elif command.get("kind") == "trigger":
        key = f"trigger:{command.get('trigger')}:{command.get('command_id')}"  # the writer's request for it
    else:
        return False
    return key is not None and tenant is not None and str(Message.create_id(str(tenant), str(key))) == message_id
