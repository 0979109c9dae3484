"""Switchboard's event schemas: Avro per event type, a file-backed registry with stable ids, and the wire codec."""

from schemas._envelope import EVENT_ID_NAMESPACE, TraceContext, event_id, make_envelope
from schemas._projected import from_millis
from schemas._registry import DEFAULT_ROOT, Registry, RegistryError, SchemaVersion, UnknownEventType, default_registry
from schemas._topics import EVENT_TOPICS, EventTopic, Route, route
from schemas.codec import (
    Codec,
    CodecError,
    DecodedEvent,
    ProjectedDecoder,
    SchemaViolation,
    UnknownEvent,
    WireFormatError,
    decode,
    encode,
)

__all__ = [
    "DEFAULT_ROOT",
    "EVENT_ID_NAMESPACE",
    "EVENT_TOPICS",
    "Codec",
    "CodecError",
    "DecodedEvent",
    "EventTopic",
    "ProjectedDecoder",
    "Registry",
    "RegistryError",
    "Route",
    "SchemaVersion",
    "SchemaViolation",
    "TraceContext",
    "UnknownEvent",
    "UnknownEventType",
    "WireFormatError",
    "decode",
    "default_registry",
    "encode",
    "event_id",
    "from_millis",
    "make_envelope",
    "route",
]
