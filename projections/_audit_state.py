"""State as it was at a past time: the events the log held then, folded through the aggregates."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from aggregates import Contact, Message, SwitchboardAggregate, fold, from_record
from connectors._privacy import mask_phone
from projections._audit_chain import Event

__all__ = ["BadTime", "contact_state", "message_state", "parse_time", "time_argument"]

_UNIX = re.compile(r"\d+(\.\d+)?")
TAggregate = TypeVar("TAggregate", bound=SwitchboardAggregate)


class BadTime(ValueError):
    """A --as-of value that is neither ISO-8601 nor unix seconds."""


def parse_time(text: str) -> datetime:
    """ISO-8601 ('2026-11-25T22:40:00Z', '+01:00'; no zone means UTC) or unix seconds ('1764110400.5')."""
    value = text.strip()
    if _UNIX.fullmatch(value):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadTime(f"{text!r} is not a time: give ISO-8601 (2026-11-25T22:40:00Z) or unix seconds "
                      "(1764110400)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def time_argument(text: str) -> datetime:
    """parse_time as an argparse `type`: a bad time is the command line's error (exit 2, naming the option)."""
    try:
        return parse_time(text)
    except BadTime as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def contact_state(events: Iterable[Event], at: datetime) -> dict[str, Any] | None:
    """The contact as the log knew it at `at`; None before it was registered."""
    contact = _fold(Contact, events, at)
    if contact is None:
        return None
    windows = {channel.value: {"open": contact.window_open(at, channel),
                               "closes_at": contact.window_closes_at(channel)}
               for channel in contact.last_inbound_at}
    return _plain_object({
        "version": contact.version, "external_ref": contact.external_ref,
        "addresses": {channel.value: mask_phone(address) for channel, address in contact.addresses.items()},
        "consents": {f"{channel.value}/{category.value}": consent
                     for (channel, category), consent in contact.consents.items()},
        "preferences": contact.preferences, "last_inbound_at": contact.last_inbound_at, "windows": windows,
    })


def message_state(events: Iterable[Event], at: datetime) -> dict[str, Any] | None:
    """The message as the log knew it at `at`; None before it was requested."""
    known = [event for event in events if event.record.at <= at]
    message = _fold(Message, known, at)
    if message is None:
        return None
    routing, failure = message.routing, message.failure
    channels = list(dict.fromkeys(e.payload["channel"] for e in known if e.event_type == "MessageRouted"))
    return _plain_object({
        "version": message.version, "status": message.status, "phase": message.phase,
        "category": message.category, "template": message.template_name, "attempt": message.attempt,
        "channel": routing.channel if routing else None, "sender": routing.sender if routing else None,
        "channels": channels, "provider_message_ids": message.provider_message_ids,
        "receipts": {status.value: receipt.provider_at for status, receipt in message.receipts.items()},
        "last_failure": None if failure is None else {
            "class": failure.failure_class, "code": failure.provider_code, "detail": failure.detail,
            "attempt": failure.attempt},
        "retry_at": message.retry_at, "deferred_until": message.deferred_until, "closed_reason": message.closed_reason,
    })


def _fold(cls: type[TAggregate], events: Iterable[Event], at: datetime) -> TAggregate | None:
    # The record's timestamp is when the log learnt of the event: "as it was at" means what was known by then.
    known = [from_record(event.event_type, event.payload) for event in events if event.record.at <= at]
    return fold(cls, known) if known else None


def _plain_object(value: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(item) for key, item in value.items()}


def _plain(value: Any) -> Any:
    """JSON-ready: enums as their values, times as ISO strings, dataclasses as objects."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain({item.name: getattr(value, item.name) for item in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        return {(k.value if isinstance(k, Enum) else str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
