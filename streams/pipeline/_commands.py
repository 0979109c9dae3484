"""Commands to the pipeline's two keyed stages: JSON records on sb.commands (by contact) and sb.dispatch (by sender)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from switchboard.errors import SwitchboardError
from switchboard.tracing import is_trace_id

__all__ = [
    "COMMAND_KINDS",
    "COMMAND_VERSION",
    "JOB_KINDS",
    "PRIORITIES",
    "CommandError",
    "check_command",
    "check_job",
    "parse_reference",
    "priority_rank",
    "reference_trace",
    "send_reference",
]

COMMAND_VERSION: Final = 1
# What reaches the contact writer (sb.commands, key contact id):
#   request  -- a client or the API asks for a message
#   contact  -- the contact's addresses and attributes (first_name, tags...), from the ERP/CRM
#   trigger  -- a business event matched a trigger's event type; the writer checks its condition with the
#               contact's attributes (only it has them) and makes the request
#   consent  -- an opt-in or opt-out decision (grant | revoke) for a channel and category
#   inbound  -- the contact wrote to us (opens the 24-hour window; STOP revokes consent)
#   receipt  -- a provider receipt, normalised from a webhook (sent | delivered | read | failed)
#   recipient_receipt -- a receipt that names only the recipient (Messenger's delivered and read): one provider
#               message id, or a watermark time covering every message sent on the channel before it
#   outcome  -- what the dispatcher's send attempt came to
#   tick     -- the partition's clock: due timers (quiet hours over, retry due, deadline passed) fire
COMMAND_KINDS: Final = frozenset({"request", "contact", "trigger", "consent", "inbound", "receipt", "recipient_receipt",
                                  "outcome", "tick"})
# What reaches the dispatcher (sb.dispatch, key sender account "<channel>/<sender>"): a send job, a tick, or the
# writer's probe after an attempt it has heard nothing of (the dispatcher answers with what it knows of it).
JOB_KINDS: Final = frozenset({"send", "tick", "probe"})
# Lanes: transactional traffic is never stuck behind a marketing backlog (lower rank goes first).
PRIORITIES: Final = ("high", "normal", "low")

_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "request": ("command_id", "tenant", "contact_id", "contact", "message"),
    "contact": ("command_id", "tenant", "contact_id", "contact"),
    "trigger": ("command_id", "tenant", "contact_id", "trigger", "event_type", "event"),
    "consent": ("command_id", "tenant", "contact_id", "action", "channel", "category"),
    "inbound": ("command_id", "tenant", "contact_id", "channel", "provider_message_id", "address", "at"),
    "receipt": ("command_id", "contact_id", "message_id", "status", "provider_message_id", "at"),
    "recipient_receipt": ("command_id", "contact_id", "channel", "status", "provider_message_id", "at"),
    "outcome": ("command_id", "contact_id", "message_id", "attempt", "outcome"),
    "tick": ("at",),
    "send": ("message_id", "contact_id", "tenant", "attempt", "channel", "sender", "address", "content", "priority"),
    "probe": ("message_id", "contact_id", "attempt", "channel", "sender"),
}


class CommandError(SwitchboardError):
    """A record on a command topic that the pipeline cannot read; it goes to the dead letters with this reason."""


def send_reference(contact_id: str, message_id: str, trace_id: str | None = None) -> str:
    """The id a send carries to the provider (WhatsApp's biz_opaque_callback_data) and its receipts bring back.

    It names the contact as well as the message, so a receipt can be keyed to the writer's partition without a
    lookup: `<contact id>.<message id>`, both UUIDs; then `.<trace id>` when the message has a trace, so that the
    normaliser continues the message's trace in the receipt commands (the provider's webhooks carry none).
    """
    reference = f"{contact_id}.{message_id}"
    return f"{reference}.{trace_id}" if trace_id and is_trace_id(trace_id) else reference


def parse_reference(reference: str) -> tuple[str, str] | None:
    """(contact id, message id) from a send reference; None if it is not one of ours."""
    parts = reference.split(".")
    if len(parts) not in (2, 3) or len(parts[0]) != 36 or len(parts[1]) != 36:
        return None
    return parts[0], parts[1]


def reference_trace(reference: str) -> str | None:
    """The trace id a send reference carries, if any (references made before tracing carry none)."""
    parts = reference.split(".")
    return parts[2] if len(parts) == 3 and parse_reference(reference) and is_trace_id(parts[2]) else None


def check_command(value: Any) -> dict[str, Any]:
    """The command (a dict, or a record's raw JSON bytes) as a dict, or CommandError naming what is wrong with it."""
    return _check(parse_record(value), COMMAND_KINDS)


def check_job(value: Any) -> dict[str, Any]:
    """The dispatch job (a dict, or a record's raw JSON bytes) as a dict, or CommandError naming what is wrong."""
    return _check(parse_record(value), JOB_KINDS)


def parse_record(value: Any) -> Any:
    """A record's value as JSON: the agents read raw bytes, because a value faust fails to deserialize is
    committed and dropped without a trace (and its error thrown into the agent); here it becomes a dead letter."""
    if not isinstance(value, bytes | bytearray):
        return value
    try:
        return json.loads(value)
    except ValueError as error:
        raise CommandError(f"not JSON: {error}") from None


def priority_rank(priority: str) -> int:
    """0 for high, 1 for normal, 2 for low; an unknown priority counts as normal."""
    return PRIORITIES.index(priority) if priority in PRIORITIES else 1


def _check(value: Any, kinds: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CommandError(f"a command must be a JSON object, not {type(value).__name__}")
    kind = value.get("kind")
    if kind not in kinds:
        raise CommandError(f"unknown command kind {kind!r} (expected one of {', '.join(sorted(kinds))})")
    if value.get("v", COMMAND_VERSION) != COMMAND_VERSION:
        raise CommandError(f"command version {value.get('v')!r} is not supported (this worker reads {COMMAND_VERSION})")
    missing = [name for name in _REQUIRED[kind] if name not in value]
    if missing:
        raise CommandError(f"{kind} command lacks {', '.join(missing)}")
    return value
