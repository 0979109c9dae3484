"""The replay path's decode: the same event type and payload as `decode`, for every golden record of every version."""

from __future__ import annotations

import pytest

from schemas import DecodedEvent, UnknownEvent, WireFormatError, decode, default_registry, encode
from schemas.codec import default_codec
from schemas.golden import GoldenCase, golden_cases, sample_event


@pytest.mark.parametrize("case", golden_cases(default_registry()),
                         ids=lambda case: f"{case.schema.event_type}-v{case.schema.version}")
def test_the_payload_is_what_decode_reads_old_versions_upcast(case: GoldenCase) -> None:
    data = case.binary.read_bytes()
    decoded = decode(data)
    assert isinstance(decoded, DecodedEvent)
    assert default_codec().decode_payload(data) == (decoded.event_type, decoded.payload)


def test_an_unknown_schema_id_gives_none_as_decode_gives_an_unknown_event() -> None:
    body = encode(sample_event(default_registry().latest("MessageSent")), "MessageSent")[5:]
    data = b"\x00" + (99_999).to_bytes(4, "big") + body  # a schema id this registry does not have
    assert isinstance(decode(data), UnknownEvent)
    assert default_codec().decode_payload(data) is None


@pytest.mark.parametrize("data", [b"\x00\x00", b"\x01\x00\x00\x00\x18rest"])
def test_records_not_in_our_format_are_refused(data: bytes) -> None:
    with pytest.raises(WireFormatError):
        default_codec().decode_payload(data)


def test_truncated_and_padded_bodies_are_refused() -> None:
    data = encode(sample_event(default_registry().latest("MessageSent")), "MessageSent")
    with pytest.raises(WireFormatError, match="corrupt Avro body"):
        default_codec().decode_payload(data[:-10])
    with pytest.raises(WireFormatError, match="2 bytes left over"):
        default_codec().decode_payload(data + b"\x00\x00")
