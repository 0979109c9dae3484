"""Every event type, with any content its schema allows, survives encode/decode unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import DecodedEvent, decode, default_registry, encode

from .avro_strategies import events

ROUND_TRIP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("event_type", default_registry().event_types)
@ROUND_TRIP
@given(data=st.data())
def test_encode_then_decode_gives_the_event_back(event_type: str, data: st.DataObject) -> None:
    event: dict[str, Any] = data.draw(events(default_registry().latest(event_type)))
    decoded = decode(encode(event, event_type))
    assert isinstance(decoded, DecodedEvent)
    assert decoded.event_type == event_type
    assert decoded.payload == event


@ROUND_TRIP
@given(data=st.data())
def test_every_older_version_decodes_as_the_current_one_with_defaults(data: st.DataObject) -> None:
    registry = default_registry()
    old = data.draw(st.sampled_from([v for v in registry if v is not registry.latest(v.subject)]))
    current = registry.latest(old.subject)
    event = data.draw(events(old))
    decoded = decode(encode(event, old.event_type, version=old.version))
    assert isinstance(decoded, DecodedEvent)
    assert (decoded.version, decoded.current_version) == (old.version, current.version)
    added = {f["name"]: f["default"] for f in current.raw["fields"] if f["name"] not in event}
    assert decoded.payload == event | added
