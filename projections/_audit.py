"""The audit trail of one message: every event in order, with the commands that caused them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from aggregates import Message
from schemas import DecodedEvent, decode
from switchboard.kafka_io import MURMUR2_PARTITIONER

__all__ = ["AuditLine", "audit_message", "render"]

Reader = Callable[[bytes, datetime], "AuditLine | None"]

# What each kind of record says about a message, beyond its type.
_EVENT_FIELDS = ("channel", "sender", "attempt", "provider_message_id", "provider_code", "detail", "reason",
                 "from_channel", "to_channel", "retry_at", "until", "failure_class", "body", "idempotency_key")
_COMMAND_FIELDS = ("outcome", "attempt", "status", "provider_message_id", "code", "sent_at", "trigger",
                   "requested_by", "error")


@dataclass(frozen=True)
class AuditLine:
    """One step of a message's history: an event (what was decided) or a command (what asked for it)."""

    at: datetime
    source: str  # "event" or "command"
    kind: str
    position: str  # topic-partition@offset, so an auditor can fetch the record itself
    details: dict[str, Any]


async def audit_message(bootstrap: str, prefix: str, message_id: str, contact_id: str) -> list[AuditLine]:
    """The message's events from sb.events.message and its commands from sb.commands, in time order."""
    events = await _scan(bootstrap, prefix + "sb.events.message", contact_id,
                         lambda raw, at: _event(raw, message_id))
    commands = await _scan(bootstrap, prefix + "sb.commands", contact_id,
                           lambda raw, at: _command(raw, at, message_id))
    return sorted([*events, *commands], key=lambda line: (line.at, line.source != "command"))


def render(lines: list[AuditLine]) -> str:
    """A table a person can read: time, what, where it is in the log, and what it says."""
    rows = [f"{line.at.isoformat(timespec='milliseconds')}  {line.source:<7} {line.kind:<28} {line.position:<36} "
            f"{json.dumps(line.details, default=str, ensure_ascii=False)}" for line in lines]
    return "\n".join(rows) if rows else "no record of this message"


async def _scan(bootstrap: str, topic: str, contact_id: str, read: Reader) -> list[AuditLine]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()  # subscribing fetches the topic's partitions; we then read only the contact's one
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or [])
        if not partitions:
            return []
        partition = MURMUR2_PARTITIONER(contact_id.encode(), partitions, partitions)
        consumer.unsubscribe()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        return await _read_until(consumer, tp, end, read)
    finally:
        await consumer.stop()


async def _read_until(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int, read: Reader) -> list[AuditLine]:
    lines: list[AuditLine] = []
    while end and await consumer.position(tp) < end:
        for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
            line = read(record.value, datetime.fromtimestamp(record.timestamp / 1000, UTC))
            if line is not None:
                lines.append(AuditLine(line.at, line.source, line.kind, f"{tp.topic}-{tp.partition}@{record.offset}",
                                       line.details))
    return lines


def _event(raw: bytes, message_id: str) -> AuditLine | None:
    decoded = decode(raw)
    if not isinstance(decoded, DecodedEvent) or decoded.payload["envelope"]["aggregate_id"] != message_id:
        return None
    payload = decoded.payload
    details = {k: payload[k] for k in _EVENT_FIELDS if payload.get(k) is not None}
    details["version"] = payload["envelope"]["aggregate_version"]
    return AuditLine(payload["envelope"]["occurred_at"], "event", decoded.event_type, "", details)


def _command(raw: bytes, at: datetime, message_id: str) -> AuditLine | None:
    try:
        command = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(command, Mapping) or not _about(command, message_id):
        return None
    details = {k: command[k] for k in _COMMAND_FIELDS if command.get(k) is not None}
    details["command_id"] = command.get("command_id")
    return AuditLine(at, "command", str(command.get("kind")), "", details)


def _about(command: Mapping[str, Any], message_id: str) -> bool:
    if command.get("message_id") == message_id:
        return True
    if command.get("kind") != "request":
        return False
    key = (command.get("message") or {}).get("idempotency_key")
    return key is not None and str(Message.create_id(command["tenant"], key)) == message_id
