"""`switchboard trace`: every record of one trace across the platform's topics, in time order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from schemas import DecodedEvent, decode
from switchboard import tracing
from switchboard.errors import SwitchboardError
from switchboard.log_reads import OnRead, read_partitions

__all__ = ["TOPIC_PATTERNS", "TraceStep", "check_trace_id", "render", "scan_trace"]

# The topics a request's path crosses (changelogs and consumer offsets are state, not path).
TOPIC_PATTERNS: Final = ("sb.events.", "sb.commands", "sb.dispatch", "sb.webhooks.raw", "sb.deadletters",
                         "sb.rejects")


@dataclass(frozen=True)
class TraceStep:
    """One record of the trace: where it is, when it was written, what it is, and its span in the trace."""

    time: str
    topic: str
    position: str  # partition@offset
    kind: str
    key: str | None
    span_id: str | None
    parent_span_id: str | None
    found_by: str  # "traceparent", "envelope" (an event without trace headers), "link" (continued elsewhere)


def check_trace_id(value: str) -> str:
    """The trace id, lowercased; SwitchboardError naming the expected shape otherwise."""
    trace_id = value.strip().lower()
    parsed = tracing.parse(trace_id)
    if parsed is not None:  # a whole traceparent is accepted too: its trace id is meant
        return parsed.trace_id
    if not tracing.is_trace_id(trace_id):
        raise SwitchboardError(f"{value!r} is not a trace id: expected 32 hex digits, not all zero (the second "
                               "field of a traceparent header, or the trace_id of a JSON log line)")
    return trace_id


async def scan_trace(bootstrap: str, trace_id: str, prefix: str = "", progress: OnRead | None = None,
                     topics: Sequence[str] | None = None) -> list[TraceStep]:
    """Reads every partition of the matching topics up to its current end; the trace's records in time order."""
    partitions = await _partitions(bootstrap, prefix, topics)
    if not partitions:
        return []
    needle, steps = trace_id.encode(), list[TraceStep]()

    def keep(record: ConsumerRecord[bytes, bytes]) -> bool:
        step = _match(record, needle)
        if step is not None:
            steps.append(step)
        return False  # the step is all that is kept of a record

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        await read_partitions(consumer, partitions, keep, None, progress)
    finally:
        await consumer.stop()
    return sorted(steps, key=lambda step: (step.time, step.topic, step.position))


async def _partitions(bootstrap: str, prefix: str, topics: Sequence[str] | None) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = list(topics) if topics else sorted(t for t in await admin.list_topics() if _traced(t, prefix))
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    return [TopicPartition(d["topic"], p["partition"]) for d in described
            for p in sorted(d["partitions"], key=lambda p: p["partition"])]


def render(steps: Sequence[TraceStep], as_json: bool = False) -> str:
    """A table in time order, or (as_json) one JSON object per record."""
    if as_json:
        return json.dumps([asdict(step) for step in steps], indent=2)
    if not steps:
        return "no record carries this trace"
    rows = [f"{s.time}  {s.topic:<28} {s.position:<10} {s.kind:<26} span {s.span_id or '-':<16} "
            f"parent {s.parent_span_id or '-':<16} key {s.key or '-'}" + ("" if s.found_by == "traceparent"
                                                                          else f"  ({s.found_by})")
            for s in steps]
    return "\n".join(rows)


def _traced(topic: str, prefix: str) -> bool:
    if not topic.startswith(prefix):
        return False
    name = topic[len(prefix):]
    return any(name.startswith(pattern) for pattern in TOPIC_PATTERNS) and not name.endswith("-changelog")


def _match(record: ConsumerRecord[bytes, bytes], needle: bytes) -> TraceStep | None:
    """The step if the record belongs to the trace; a cheap byte search first, the exact check only on a hit."""
    headers = list(record.headers or ())
    value = record.value or b""
    if not any(needle in bytes(v) for _, v in headers) and needle not in value:
        return None
    trace_id = needle.decode()
    span = tracing.from_record_headers(headers)
    if span is not None and span.trace_id == trace_id:
        return _step(record, span, "traceparent")
    link = tracing.parse(dict(headers).get(tracing.LINK_HEADER))
    if link is not None and link.trace_id == trace_id:
        return _step(record, link, "link")
    if span is None and _payload_trace(value) == trace_id:
        return _step(record, None, "envelope")
    return None


def _step(record: ConsumerRecord[bytes, bytes], span: tracing.TraceParent | None, found_by: str) -> TraceStep:
    at = datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(timespec="milliseconds")
    key = record.key.decode("utf-8", "replace") if record.key else None
    return TraceStep(at, record.topic, f"{record.partition}@{record.offset}", _kind(record), key,
                     span.span_id if span else None, span.parent if span else None, found_by)


def _kind(record: ConsumerRecord[bytes, bytes]) -> str:
    value = record.value or b""
    if value[:1] == b"\x00":  # Confluent wire format: an Avro event
        try:
            decoded = decode(value)
        except Exception:
            return "undecodable event"
        return decoded.event_type if isinstance(decoded, DecodedEvent) else "event of an unknown schema"
    if record.topic.endswith("sb.webhooks.raw") or record.topic.endswith("sb.rejects"):
        channel = dict(record.headers or ()).get("channel", b"?").decode("utf-8", "replace")
        return f"webhook ({channel})"
    parsed = _json(value)
    if record.topic.endswith("sb.deadletters"):
        return f"dead letter ({parsed.get('stage', '?')})" if parsed else "dead letter"
    return str(parsed.get("kind", "record")) if parsed else "record"


def _payload_trace(value: bytes) -> str | None:
    if value[:1] == b"\x00":
        try:
            decoded = decode(value)
        except Exception:
            return None
        return decoded.payload["envelope"].get("trace_id") if isinstance(decoded, DecodedEvent) else None
    trace = _json(value).get("trace_id")
    return trace if isinstance(trace, str) else None


def _json(value: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
