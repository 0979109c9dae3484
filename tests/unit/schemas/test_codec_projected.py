"""The projected decode: for every golden record, the declared fields have the full decode's values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from projections import DeliveryStatsProjection, MessageStatusProjection
from schemas import WireFormatError, default_registry, encode, from_millis
from schemas.codec import default_codec
from schemas.golden import GoldenCase, golden_cases, sample_event

EVERY_FIELD = ("envelope.event_id", "envelope.aggregate_type", "envelope.aggregate_id", "envelope.aggregate_version",
               "envelope.occurred_at", "envelope.tenant_id", "envelope.trace_id", "envelope.correlation_id",
               "envelope.causation_id")
READS = {"message-status": MessageStatusProjection.reads, "delivery-stats": DeliveryStatsProjection.reads,
         "every top-level field": ()}


def _as_decoded(value: Any, like: Any) -> Any:
    """A projected value in the full decode's form: milliseconds where the full decode has a datetime."""
    if isinstance(like, datetime) and isinstance(value, int):
        return from_millis(value)
    if isinstance(like, dict) and isinstance(value, dict):
        return {key: _as_decoded(item, like.get(key)) for key, item in value.items()}
    if isinstance(like, list) and isinstance(value, list):
        return [_as_decoded(item, other) for item, other in zip(value, like, strict=True)]
    return value


def _expected(full: dict[str, Any], reads: tuple[str, ...]) -> dict[str, Any]:
    """The declared fields of a fully decoded payload (a bare name: the whole value; a dotted one: that part)."""
    out: dict[str, Any] = {}
    for path in reads:
        head, _, rest = path.partition(".")
        if head in full:
            if rest:
                out.setdefault(head, {})[rest] = full[head][rest]
            else:
                out[head] = full[head]
    return out


@pytest.mark.parametrize("reads", list(READS), ids=str)
@pytest.mark.parametrize("case", golden_cases(default_registry()),
                         ids=lambda case: f"{case.schema.event_type}-v{case.schema.version}")
def test_the_declared_fields_have_the_full_decodes_values(case: GoldenCase, reads: str) -> None:
    data = case.binary.read_bytes()
    event_type, full = default_codec().decode_payload(data) or ("", {})
    fields = READS[reads] or (*EVERY_FIELD, *(name for name in full if name != "envelope"))
    projected = default_codec().projected(fields)(data)
    assert projected is not None
    assert projected[0] == event_type
    wanted = _expected(full, fields)
    if case.schema.version == default_registry().latest(case.schema.event_type).version:
        assert set(projected[1]) == set(wanted)  # a current version: nothing but the declared fields
    assert _as_decoded(_expected(projected[1], fields), wanted) == wanted


def test_a_corrupt_or_truncated_body_is_a_wire_format_error() -> None:
    data = encode(sample_event(default_registry().latest("MessageSent")), "MessageSent")
    decode = default_codec().projected(MessageStatusProjection.reads)
    assert decode(data) is not None
    with pytest.raises(WireFormatError):
        decode(data[:-10])
    with pytest.raises(WireFormatError):
        decode(data + b"\x00\x00")


def test_an_unknown_schema_id_is_none() -> None:
    data = b"\x00" + (999_999).to_bytes(4, "big") + b"\x00"
    assert default_codec().projected(MessageStatusProjection.reads)(data) is None


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x01\x00\x00\x00\x01\x00"], ids=["empty", "short", "magic"])
def test_a_record_not_in_our_wire_format_is_a_wire_format_error(data: bytes) -> None:
    with pytest.raises(WireFormatError):
        default_codec().projected(MessageStatusProjection.reads)(data)
