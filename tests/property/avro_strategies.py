"""Hypothesis strategies derived from Avro schemas: any event a schema allows, with a valid envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from schemas import EVENT_TOPICS, SchemaVersion, TraceContext, make_envelope

_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),  # NaN != NaN would make equality checks meaningless
    "string": st.text(max_size=20),
    "bytes": st.binary(max_size=20),
}

timestamps = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)).map(
    lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)  # Avro timestamp-millis keeps milliseconds
)


def values(schema: Any) -> st.SearchStrategy[Any]:
    """Any value of an expanded Avro schema."""
    if isinstance(schema, list):
        return st.one_of([values(branch) for branch in schema])
    if isinstance(schema, str):
        return _PRIMITIVES[schema]
    kind = schema["type"]
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in schema["fields"]})
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(values(schema["items"]), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), values(schema["values"]), max_size=3)
    if schema.get("logicalType") == "timestamp-millis":
        return timestamps
    return _PRIMITIVES[kind]


trace_ids = st.text("0123456789abcdef", min_size=32, max_size=32).filter(lambda t: t != "0" * 32)
ids = st.none() | st.text(max_size=12)
traces = st.builds(TraceContext, st.none() | trace_ids, ids, ids)


@st.composite
def envelopes(draw: st.DrawFn, schema: SchemaVersion) -> dict[str, Any]:
    """An envelope that passes the codec's checks for this event type's family."""
    fixed_type = EVENT_TOPICS[schema.family].aggregate_type
    return make_envelope(
        aggregate_type=fixed_type or draw(st.sampled_from(["Order", "Customer", "Payment"])),
        aggregate_id=draw(st.uuids().map(str) | st.text(min_size=1, max_size=12)),
        aggregate_version=draw(st.integers(1, 2**63 - 1)),
        occurred_at=draw(timestamps),
        tenant_id=draw(st.text(min_size=1, max_size=12)),
        trace=draw(traces),
    )


@st.composite
def events(draw: st.DrawFn, schema: SchemaVersion) -> dict[str, Any]:
    """Any valid event of this schema version."""
    event: dict[str, Any] = draw(values(schema.expanded))
    event["envelope"] = draw(envelopes(schema))
    return event
