"""The wire codec: Confluent framing, field-naming rejections, unknown schema ids kept, old versions upcast."""

from __future__ import annotations

import json
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from schemas import (
    Codec,
    DecodedEvent,
    Registry,
    SchemaViolation,
    UnknownEvent,
    UnknownEventType,
    WireFormatError,
    decode,
    default_registry,
    encode,
    make_envelope,
)
from schemas.golden import sample_event


def _event(event_type: str) -> dict[str, Any]:
    return sample_event(default_registry().latest(event_type))


@pytest.mark.parametrize("event_type", default_registry().event_types)
def test_encoding_without_validation_writes_the_same_bytes(event_type: str) -> None:
    # The pipeline skips the check for events its aggregates built; the log must not tell the difference.
    event = _event(event_type)
    assert encode(event, event_type, validate=False) == encode(event, event_type)
    fields = default_registry().latest(event_type).expanded["fields"]
    defaulted = {f["name"] for f in fields if "default" in f}
    defaults_left_out = {k: v for k, v in event.items() if k not in defaulted}  # both paths write the defaults
    assert encode(defaults_left_out, event_type, validate=False) == encode(defaults_left_out, event_type)


def test_encoding_without_validation_still_refuses_a_value_of_the_wrong_type() -> None:
    event = _event("MessageRequested")
    event["envelope"] = {**event["envelope"], "aggregate_version": "seven"}
    with pytest.raises(SchemaViolation, match="MessageRequested"):
        encode(event, "MessageRequested", validate=False)


@pytest.mark.parametrize("event_type", default_registry().event_types)
def test_every_event_type_round_trips(event_type: str) -> None:
    event = _event(event_type)
    decoded = decode(encode(event, event_type))
    assert isinstance(decoded, DecodedEvent)
    assert (decoded.event_type, decoded.upcast) == (event_type, False)
    assert decoded.payload == event


def test_records_use_the_confluent_wire_format() -> None:
    data = encode(_event("MessageSent"), "MessageSent")
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert schema_id == default_registry().latest("MessageSent").schema_id


def _violation(event_type: str, event: dict[str, Any]) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as failure:
        encode(event, event_type)
    assert failure.value.field in str(failure.value)
    assert event_type in str(failure.value)
    return failure.value


def test_a_missing_field_is_named() -> None:
    event = _event("MessageSent")
    del event["provider_message_id"]
    assert _violation("MessageSent", event).field == "provider_message_id"


def test_a_wrong_type_is_named() -> None:
    event = _event("MessageFailed") | {"attempt": "second"}
    violation = _violation("MessageFailed", event)
    assert violation.field == "attempt"
    assert "expected an int" in violation.problem


def test_an_unexpected_field_is_named() -> None:
    violation = _violation("MessageRead", _event("MessageRead") | {"read_by": "bob"})
    assert violation.field == "read_by"


def test_nested_fields_are_named_with_their_path() -> None:
    order = _event("OrderPlaced")
    order["items"].append({"sku": "A-1", "name": None, "quantity": 2.5, "unit_price_minor": 100})
    assert _violation("OrderPlaced", order).field == "items[1].quantity"
    event = _event("DomainEvent")
    event["attributes"] = {"count": 3, "tags": ["a", "b"]}
    assert _violation("DomainEvent", event).field == "attributes['tags']"
    prefs = _event("PreferencesChanged")
    prefs["quiet_hours"] = {"start_minute": 1320, "end_minute": 420}
    assert _violation("PreferencesChanged", prefs).field == "quiet_hours.time_zone"


def test_enum_symbols_bools_and_naive_datetimes_are_rejected() -> None:
    assert _violation("MessageFailed", _event("MessageFailed") | {"failure_class": "flaky"}).field == "failure_class"
    assert _violation("PaymentFailed", _event("PaymentFailed") | {"amount_minor": True}).field == "amount_minor"
    naive = _event("MessageSent") | {"provider_at": datetime(2026, 1, 1, 12, 0)}
    assert "timezone-aware" in _violation("MessageSent", naive).problem


def test_the_envelope_must_be_consistent() -> None:
    event = _event("MessageSent")
    event["envelope"]["aggregate_version"] += 1  # event_id no longer matches the position
    assert _violation("MessageSent", event).field == "envelope.event_id"
    event = _event("MessageSent")
    event["envelope"]["trace_id"] = "not-a-trace"
    assert _violation("MessageSent", event).field == "envelope.trace_id"
    event = _event("MessageSent")
    event["envelope"] = make_envelope(**{**_envelope_args(event), "aggregate_type": "Contact"})
    assert _violation("MessageSent", event).field == "envelope.aggregate_type"
    event = _event("MessageSent")
    event["envelope"] = make_envelope(**{**_envelope_args(event), "tenant_id": ""})
    assert _violation("MessageSent", event).field == "envelope.tenant_id"


def _envelope_args(event: dict[str, Any]) -> dict[str, Any]:
    env = event["envelope"]
    keys = ("aggregate_type", "aggregate_id", "aggregate_version", "occurred_at", "tenant_id")
    return {k: env[k] for k in keys}


def test_optional_fields_may_be_left_out_and_get_their_defaults() -> None:
    event = _event("MessageFailed")
    for name in ("detail", "retry_after_ms"):
        del event[name]
    decoded = decode(encode(event, "MessageFailed"))
    assert isinstance(decoded, DecodedEvent)
    assert decoded.payload["detail"] is None
    assert decoded.payload["retry_after_ms"] is None


def test_an_old_version_is_upcast_on_read() -> None:
    old = _event("MessageFailed")
    del old["retry_after_ms"]
    decoded = decode(encode(old, "MessageFailed", version=1))
    assert isinstance(decoded, DecodedEvent)
    assert (decoded.version, decoded.current_version, decoded.upcast) == (1, 2, True)
    assert decoded.payload == old | {"retry_after_ms": None}


def test_an_unknown_schema_id_is_kept_not_fatal() -> None:
    data = struct.pack(">bI", 0, 99_999) + b"\x02whatever a newer writer wrote"
    decoded = decode(data)
    assert isinstance(decoded, UnknownEvent)
    assert decoded.schema_id == 99_999
    assert decoded.raw == data
    assert "99999" in decoded.reason


def test_an_older_consumer_keeps_a_newer_version_as_unknown(schema_root: Path) -> None:
    """Code that predates MessageFailed v2 gets v2 records as UnknownEvent, not a crash."""
    index = json.loads((schema_root / "registry.json").read_text())
    index["schemas"] = [row for row in index["schemas"] if (row["subject"], row["version"]) !=
                        ("switchboard.message.MessageFailed", 2)]
    (schema_root / "registry.json").write_text(json.dumps(index))
    (schema_root / "avro" / "switchboard.message.MessageFailed" / "v2.avsc").unlink()
    old_code = Codec(Registry.load(schema_root))
    decoded = old_code.decode(encode(_event("MessageFailed"), "MessageFailed"))
    assert isinstance(decoded, UnknownEvent)
    assert decoded.schema_id == default_registry().latest("MessageFailed").schema_id


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x00\x00", "shorter than the 5-byte header"),
        (b"\x01\x00\x00\x00\x18rest", "not the magic byte 0"),
    ],
)
def test_records_not_in_our_format_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(WireFormatError, match=problem):
        decode(data)


def test_truncated_and_padded_bodies_are_refused() -> None:
    data = encode(_event("MessageSent"), "MessageSent")
    with pytest.raises(WireFormatError, match="corrupt Avro body"):
        decode(data[:-10])
    with pytest.raises(WireFormatError, match="2 bytes left over"):
        decode(data + b"\x00\x00")


def test_encoding_an_unknown_type_or_version_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        encode(_event("MessageSent"), "MessageBounced")
    with pytest.raises(UnknownEventType):
        encode(_event("MessageSent"), "MessageSent", version=2)
