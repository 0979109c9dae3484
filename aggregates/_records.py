"""Translating aggregate events to and from the Avro event dicts of `schemas` (the form that goes to Kafka)."""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints
from uuid import UUID

from eventsourcing.domain import AggregateCreated, AggregateEvent
from eventsourcing.utils import get_topic

from aggregates._base import SwitchboardAggregate
from aggregates._contact import Contact
from aggregates._message import Message
from aggregates._template import Template
from aggregates._tenant import Tenant
from schemas import TraceContext, make_envelope

__all__ = ["AGGREGATE_EVENT_TYPES", "EventRecord", "from_record", "to_record"]

# Avro event type -> aggregate event class, per aggregate. Renaming either side is a schema change.
_EVENTS: Mapping[type[SwitchboardAggregate], Mapping[str, type[AggregateEvent]]] = {
    Message: {
        "MessageRequested": Message.Requested,
        "MessageRendered": Message.Rendered,
        "MessageSuppressed": Message.Suppressed,
        "MessageDeferred": Message.Deferred,
        "MessageRouted": Message.Routed,
        "MessageDispatchAttempted": Message.DispatchAttempted,
        "MessageAcceptedByProvider": Message.AcceptedByProvider,
        "MessageSent": Message.Sent,
        "MessageDelivered": Message.Delivered,
        "MessageRead": Message.Read,
        "MessageFailed": Message.Failed,
        "MessageRetryScheduled": Message.RetryScheduled,
        "MessageFallbackTriggered": Message.FallbackTriggered,
        "MessageExpired": Message.Expired,
        "MessageDeadLettered": Message.DeadLettered,
    },
    Contact: {
        "ContactRegistered": Contact.Registered,
        "ConsentGranted": Contact.ConsentGranted,
        "ConsentRevoked": Contact.ConsentRevoked,
        "PreferencesChanged": Contact.PreferencesChanged,
        "InboundMessageReceived": Contact.InboundMessageReceived,
    },
    Template: {
        "TemplateRegistered": Template.Registered,
        "TemplateVersionPublished": Template.VersionPublished,
        "TemplateApprovalStatusChanged": Template.ApprovalStatusChanged,
        "TemplateCategoryChanged": Template.CategoryChanged,
        "TemplateQualityChanged": Template.QualityChanged,
    },
    Tenant: {
        "TenantRegistered": Tenant.Registered,
        "ApiClientAdded": Tenant.ApiClientAdded,
        "ApiClientRevoked": Tenant.ApiClientRevoked,
        "RateLimitTierChanged": Tenant.RateLimitTierChanged,
        "CallbackUrlSet": Tenant.CallbackUrlSet,
        "CallbackUrlRemoved": Tenant.CallbackUrlRemoved,
    },
}
_BY_TYPE = {name: (agg, cls) for agg, events in _EVENTS.items() for name, cls in events.items()}
_BY_CLASS = {cls: name for name, (_, cls) in _BY_TYPE.items()}
AGGREGATE_EVENT_TYPES = frozenset(_BY_TYPE)

# Event attributes that live in the envelope (or in eventsourcing's bookkeeping), not in the payload.
_NOT_IN_PAYLOAD = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic", "tenant_id"})


@dataclass(frozen=True)
class EventRecord:
    """An event as `schemas.encode(record.event, record.event_type)` takes it."""

    event_type: str
    event: dict[str, Any]


def to_record(aggregate: SwitchboardAggregate, event: AggregateEvent, trace: TraceContext | None = None) -> EventRecord:
    """The Avro event dict for one of the aggregate's events, envelope included."""
    event_type = _BY_CLASS[type(event)]
    payload = {name: _to_avro(getattr(event, name)) for name in _payload_fields(type(event))}
    if isinstance(aggregate, Message):
        payload.setdefault("contact_id", str(aggregate.contact_id))  # the key of sb.events.message
    payload["envelope"] = make_envelope(
        aggregate_type=aggregate.AGGREGATE_TYPE,
        aggregate_id=str(event.originator_id),
        aggregate_version=event.originator_version,
        occurred_at=event.timestamp,
        tenant_id=aggregate.tenant_id,
        trace=trace,
    )
    return EventRecord(event_type, payload)


def from_record(event_type: str, event: Mapping[str, Any]) -> AggregateEvent:
    """The aggregate event an Avro event dict (e.g. a decoded payload) stands for."""
    aggregate_class, event_class = _BY_TYPE[event_type]
    envelope = event["envelope"]
    hints = _hints(event_class)
    kwargs = {name: _from_avro(event[name], hints[name]) for name in _payload_fields(event_class)}
    kwargs.update(
        originator_id=UUID(envelope["aggregate_id"]),
        originator_version=envelope["aggregate_version"],
        timestamp=envelope["occurred_at"],
    )
    if "tenant_id" in hints:
        kwargs["tenant_id"] = envelope["tenant_id"]
    if issubclass(event_class, AggregateCreated):
        kwargs["originator_topic"] = get_topic(aggregate_class)
    return event_class(**kwargs)


@functools.cache
def _payload_fields(event_class: type[AggregateEvent]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(event_class) if f.name not in _NOT_IN_PAYLOAD)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


# Values Avro takes as they are: most of an event's fields; returned before the checks below (one event in the
# pipeline's hot path has a dozen fields, and the Mapping check is an ABC lookup).
_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None), datetime, bytes})


def _to_avro(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_avro(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_avro(item) for item in value]
    if isinstance(value, Mapping):
        return {str(_to_avro(k)): _to_avro(v) for k, v in value.items()}
    return value


def _from_avro(value: Any, hint: Any) -> Any:
    """Rebuild a value of the annotated type: optionals, tuples, mappings, enums, UUIDs, dataclasses."""
    if value is None:
        return None
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]  # only `X | None` unions appear in events
        return _from_avro(value, inner)
    if origin is tuple:
        return tuple(_from_avro(item, args[0]) for item in value)
    if origin in (dict, Mapping):
        return {_from_avro(k, args[0]): _from_avro(v, args[1]) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Enum | UUID):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        nested = _hints(hint)
        return hint(**{f.name: _from_avro(value[f.name], nested[f.name]) for f in dataclasses.fields(hint)})
    return value
