"""From a request body to encoded records: JSON shape, business-only types, tenant, envelope ids, the schemas."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from connectors._ingest_errors import Refused
from connectors._ingest_sink import OutgoingRecord
from schemas import Codec, SchemaViolation, UnknownEventType, event_id, route
from schemas._registry import SchemaVersion
from schemas._validate import Invalid
from switchboard.tracing import current, record_headers

__all__ = ["ALLOWED_FAMILY", "MAX_EVENTS", "EncodedEvent", "Submitted", "complete_event_id", "encode_events",
           "from_json", "parse_body"]

ALLOWED_FAMILY: Final = "business"  # integrators write business facts; the pipeline owns every other family
MAX_EVENTS: Final = 500
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Submitted:
    """One event of a request: its index, where it sits in the body (for error paths), type and JSON value."""

    index: int
    path: str
    event_type: Any
    event: Any


@dataclass(frozen=True)
class EncodedEvent:
    """An event ready for Kafka: Confluent-framed Avro, its (unprefixed) topic, record key and event id."""

    event_type: str
    event_id: str
    topic: str
    key: str
    value: bytes
    trace_id: str | None = None

    def record(self, topic_prefix: str, source: str) -> OutgoingRecord:
        """The Kafka record; headers name type, id and source so tools can filter without decoding, and carry the
        trace (a child span of the request's; of the envelope's own trace when the client set another one)."""
        headers = (("event-type", self.event_type), ("event-id", self.event_id), ("source", source))
        return OutgoingRecord(topic_prefix + self.topic, self.key.encode(), self.value,
                              (*((name, value.encode()) for name, value in headers), *record_headers(self.trace_id)))


def parse_body(raw: bytes) -> list[Submitted]:
    """`{"type", "event"}` or `{"events": [{"type", "event"}, ...]}` (1 to MAX_EVENTS)."""
    try:
        body = json.loads(raw)
    except ValueError as error:  # UnicodeDecodeError is a ValueError too
        raise Refused("malformed_json", f"the body is not UTF-8 JSON: {error}") from None
    if isinstance(body, dict) and set(body) == {"type", "event"}:
        return [Submitted(0, "event", body["type"], body["event"])]
    if isinstance(body, dict) and set(body) == {"events"}:
        return _batch(body["events"])
    raise _shape("", 'the body must be {"type": ..., "event": {...}} or {"events": [{"type": ..., "event": ...}]}')


def _batch(events: Any) -> list[Submitted]:
    if not isinstance(events, list) or not events:
        raise _shape("events", f"must be a list of 1 to {MAX_EVENTS} events")
    if len(events) > MAX_EVENTS:
        raise Refused("too_many_events", f"{len(events)} events in one request; at most {MAX_EVENTS}")
    for i, item in enumerate(events):
        if not isinstance(item, dict) or set(item) != {"type", "event"}:
            raise _shape(f"events[{i}]", 'must be {"type": ..., "event": {...}}')
    return [Submitted(i, f"events[{i}].event", item["type"], item["event"]) for i, item in enumerate(events)]


def _shape(field: str, problem: str) -> Refused:
    return Refused("schema_violation", "the request body has the wrong shape", [{"field": field, "problem": problem}])


def encode_events(submitted: list[Submitted], tenant: str | None, codec: Codec) -> list[EncodedEvent]:
    """Every event checked before any is sent: one bad event refuses them all. `tenant` None: any tenant."""
    schemas = [_allowed_schema(item, codec) for item in submitted]
    for item in submitted:
        if tenant is not None:
            _check_tenant(item, tenant)
    results = [_encode(item, schema, codec) for item, schema in zip(submitted, schemas, strict=True)]
    problems = [r for r in results if isinstance(r, dict)]
    if problems:
        raise Refused("schema_violation", f"{len(problems)} of {len(submitted)} events do not match their schema",
                      problems)
    return [r for r in results if isinstance(r, EncodedEvent)]


def _allowed_schema(item: Submitted, codec: Codec) -> SchemaVersion:
    try:
        schema = codec.registry.latest(item.event_type) if isinstance(item.event_type, str) else None
    except UnknownEventType:
        schema = None
    if schema is None or schema.family != ALLOWED_FAMILY:
        raise Refused("event_type_not_allowed", f"{item.event_type!r} is not a business event type",
                      [{"index": item.index, "type": str(item.event_type), "allowed": _business_types(codec)}])
    return schema


def _business_types(codec: Codec) -> list[str]:
    return [t for t in codec.registry.event_types if codec.registry.latest(t).family == ALLOWED_FAMILY]


def _check_tenant(item: Submitted, tenant: str) -> None:
    envelope = item.event.get("envelope") if isinstance(item.event, dict) else None
    found = envelope.get("tenant_id") if isinstance(envelope, dict) else None
    if isinstance(found, str) and found != tenant:
        raise Refused("tenant_mismatch", "this client may only send events of its own tenant",
                      [{"index": item.index, "field": f"{item.path}.envelope.tenant_id"}])


def _encode(item: Submitted, schema: SchemaVersion, codec: Codec) -> EncodedEvent | dict[str, Any]:
    try:
        event = complete_trace_id(complete_event_id(from_json(item.event, schema.expanded, "")))
        value = codec.encode(event, schema.event_type)
    except Invalid as bad:
        return _problem(item, bad.path, bad.problem)
    except SchemaViolation as bad:
        return _problem(item, bad.field, bad.problem)
    target = route(schema.event_type, event, codec.registry)
    envelope = event["envelope"]
    return EncodedEvent(schema.event_type, envelope["event_id"], target.topic, target.key, value,
                        envelope.get("trace_id"))


def _problem(item: Submitted, field: str, problem: str) -> dict[str, Any]:
    return {"index": item.index, "field": f"{item.path}.{field}" if field else item.path, "problem": problem}


def complete_event_id(event: Any) -> Any:
    """Fills a missing or empty envelope.event_id from the aggregate position, the only id the codec accepts."""
    envelope = event.get("envelope") if isinstance(event, dict) else None
    if not isinstance(envelope, dict) or envelope.get("event_id"):
        return event
    kind, aggregate, version = (envelope.get(k) for k in ("aggregate_type", "aggregate_id", "aggregate_version"))
    # "" when not derivable: the validator then names the field that is really missing, not event_id.
    envelope["event_id"] = ""
    if isinstance(kind, str) and isinstance(aggregate, str) and isinstance(version, int):
        envelope["event_id"] = event_id(kind, aggregate, version)
    return event


def complete_trace_id(event: Any) -> Any:
    """Fills a missing envelope.trace_id with the request's trace; a client's own trace id is kept."""
    envelope = event.get("envelope") if isinstance(event, dict) else None
    span = current()
    if isinstance(envelope, dict) and not envelope.get("trace_id") and span is not None:
        envelope["trace_id"] = span.trace_id
    return event


def from_json(value: Any, schema: Any, path: str) -> Any:
    """The JSON value in the shape the codec takes: timestamps become aware datetimes; the rest is unchanged."""
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        # Only ["null", T] unions can hold a timestamp or record in our schemas; wider ones are primitives.
        return value if value is None or len(branches) != 1 else from_json(value, branches[0], path)
    if isinstance(schema, str):
        return value
    if str(schema.get("logicalType", "")).startswith("timestamp-"):
        return _timestamp(value, path)
    return _container(value, schema, path)


def _container(value: Any, schema: Mapping[str, Any], path: str) -> Any:
    kind = schema["type"]
    if kind == "record" and isinstance(value, dict):
        types = {f["name"]: f["type"] for f in schema["fields"]}
        return {k: from_json(v, types[k], _join(path, k)) if k in types else v for k, v in value.items()}
    if kind == "array" and isinstance(value, list):
        return [from_json(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "map" and isinstance(value, dict):
        return {k: from_json(v, schema["values"], f"{path}[{k!r}]") for k, v in value.items()}
    return value


def _timestamp(value: Any, path: str) -> datetime:
    if isinstance(value, datetime):  # from Python callers (the Kafka producer); the codec checks it is aware
        return value
    parsed = _millis(value) if type(value) is int else _iso(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise Invalid(path, "expected an ISO 8601 timestamp with an offset (2026-01-02T03:04:05.678Z) "
                            "or unix epoch milliseconds")
    return parsed


def _millis(value: int) -> datetime | None:
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        return None


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
