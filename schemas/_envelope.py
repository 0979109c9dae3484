"""The envelope every event carries: deterministic event ids, trace context and the checks they must pass."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

__all__ = ["EVENT_ID_NAMESPACE", "TraceContext", "envelope_problems", "event_id", "make_envelope"]

# uuid5(NAMESPACE_URL, "urn:switchboard:event-id"). Fixed forever: changing it would re-id every past event.
EVENT_ID_NAMESPACE = UUID("0ab1224c-516d-5fbc-9f45-7bb079b541d0")
_EVENT_ID_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_INVALID_TRACE_ID = "0" * 32  # W3C: all zeros is an invalid trace-id


@dataclass(frozen=True)
class TraceContext:
    """Where an event sits in a trace and a conversation; all optional."""

    trace_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None


def event_id(aggregate_type: str, aggregate_id: str, aggregate_version: int) -> str:
    """The id of the event at this position of this aggregate: equal for every redelivery of it.

    `str(uuid5(EVENT_ID_NAMESPACE, name))`, computed without building a UUID object (one per event written)."""
    name = f"{aggregate_type}:{aggregate_id}:{aggregate_version}".encode()
    digest = bytearray(hashlib.sha1(_EVENT_ID_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5 (RFC 4122 4.3)
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def make_envelope(
    *,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    occurred_at: datetime,
    tenant_id: str,
    trace: TraceContext | None = None,
) -> dict[str, Any]:
    """An envelope dict ready for `encode`, with its event_id derived from the aggregate position."""
    trace = trace or TraceContext()
    return {
        "event_id": event_id(aggregate_type, aggregate_id, aggregate_version),
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "aggregate_version": aggregate_version,
        "occurred_at": occurred_at,
        "tenant_id": tenant_id,
        "trace_id": trace.trace_id,
        "correlation_id": trace.correlation_id,
        "causation_id": trace.causation_id,
    }


def envelope_problems(envelope: Mapping[str, Any], aggregate_type: str | None) -> list[tuple[str, str]]:
    """(field, problem) pairs for rules Avro cannot express; `aggregate_type` None allows any type."""
    problems = [(name, "must not be empty") for name in ("aggregate_type", "aggregate_id", "tenant_id")
                if not envelope[name]]
    if aggregate_type is not None and envelope["aggregate_type"] != aggregate_type:
        problems.append(("aggregate_type", f"must be {aggregate_type!r} for this event type"))
    if envelope["aggregate_version"] < 1:
        problems.append(("aggregate_version", "must be 1 or more"))
    expected = event_id(envelope["aggregate_type"], envelope["aggregate_id"], envelope["aggregate_version"])
    if envelope["event_id"] != expected:
        problems.append(("event_id", f"must be {expected}, derived from aggregate type, id and version"))
    trace_id = envelope.get("trace_id")
    if trace_id is not None and (not _TRACE_ID.fullmatch(trace_id) or trace_id == _INVALID_TRACE_ID):
        problems.append(("trace_id", "must be a W3C trace-id: 32 lowercase hex digits, not all zero"))
    return problems
