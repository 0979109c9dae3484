"""The message-status read model: per message its status, times, attempts, channels, provider ids and errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from schemas import from_millis

__all__ = ["MessageStatusProjection", "message_key", "recipient_key"]

# The pipeline's phase after each event; receipts rank above them and are never undone by a later failure.
_PHASE = {
    "MessageRequested": "requested", "MessageRendered": "rendered", "MessageDeferred": "deferred",
    "MessageRouted": "routed", "MessageDispatchAttempted": "dispatching", "MessageAcceptedByProvider": "accepted",
    "MessageRetryScheduled": "retry_scheduled", "MessageFallbackTriggered": "falling_back",
    "MessageSuppressed": "suppressed", "MessageExpired": "expired", "MessageDeadLettered": "dead_lettered",
}
_RECEIPTS = {"MessageSent": "sent", "MessageDelivered": "delivered", "MessageRead": "read"}
_RANK = {"sent": 1, "delivered": 2, "read": 3}
Lookup = Callable[[str], Any]


def message_key(message_id: str) -> str:
    return f"msg:{message_id}"


def recipient_key(contact_id: str) -> str:
    return f"rcpt:{contact_id}"


class MessageStatusProjection:
    """Folds sb.events.message into one row per message and one list of messages per recipient."""

    name = "message-status"
    topic = "sb.events.message"
    # The only fields apply reads: a replay decodes these and skips the rest (see Codec.projected).
    reads = ("envelope.aggregate_id", "envelope.aggregate_version", "envelope.occurred_at", "envelope.tenant_id",
             "contact_id", "category", "template_name", "channel", "sender", "attempt", "provider_message_id",
             "provider_at", "provider_code", "detail", "failure_class", "reason")

    def apply(self, lookup: Lookup, event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The rows this event changes (nothing for an event already applied: its version is not newer)."""
        envelope = payload["envelope"]
        key = message_key(envelope["aggregate_id"])
        row = lookup(key) or _new_row(envelope, payload)
        if envelope["aggregate_version"] <= row["version"]:
            return {}  # a redelivered or re-emitted event: same id, same version
        row = _folded(dict(row), event_type, payload)
        changes: dict[str, Any] = {key: row}
        if event_type == "MessageRequested":
            recipients = list(lookup(recipient_key(row["contact_id"])) or [])
            changes[recipient_key(row["contact_id"])] = [*recipients, envelope["aggregate_id"]]
        return changes


def _new_row(envelope: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"message_id": envelope["aggregate_id"], "tenant": envelope["tenant_id"],
            "contact_id": payload.get("contact_id"), "version": 0, "phase": None, "receipt": None,
            "status": None, "times": {}, "attempts": 0, "channels": [], "sender": None,
            "provider_message_ids": [], "errors": [], "reason": None, "category": None, "template": None}


def _folded(row: dict[str, Any], event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    occurred = payload["envelope"]["occurred_at"]
    row["version"] = payload["envelope"]["aggregate_version"]
    times = row["times"] = {**row["times"]}
    phase = _PHASE.get(event_type)
    if phase is not None:
        row["phase"] = phase
        if phase not in times:  # the first time only: formatting the time is a good share of a fold's cost
            times[phase] = _iso(occurred)
    _details(row, event_type, payload, occurred)
    row["status"] = _status(row, event_type)
    return row


def _details(row: dict[str, Any], event_type: str, payload: Mapping[str, Any], occurred: Any) -> None:
    if event_type == "MessageRequested":
        row.update(category=payload.get("category"), template=payload.get("template_name"))
    elif event_type == "MessageRouted":
        row.update(channels=[*row["channels"], payload["channel"]], sender=payload.get("sender"))
    elif event_type == "MessageDispatchAttempted":
        row["attempts"] = payload["attempt"]
    elif event_type == "MessageAcceptedByProvider":
        row["provider_message_ids"] = [*row["provider_message_ids"], payload["provider_message_id"]]
    elif event_type in _RECEIPTS:
        status = _RECEIPTS[event_type]
        if status not in row["times"]:
            provider_at = payload.get("provider_at")  # a datetime, or the wire's milliseconds
            row["times"][status] = _iso(provider_at if provider_at is not None else occurred)
        if row["receipt"] is None or _RANK[status] > _RANK[row["receipt"]]:
            row["receipt"] = status
    elif event_type == "MessageFailed":
        at = _iso(occurred)
        row["errors"] = [*row["errors"], {"code": payload.get("provider_code"), "detail": payload.get("detail"),
                                          "class": payload.get("failure_class"), "attempt": payload.get("attempt"),
                                          "at": at}]
        row["times"].setdefault("failed", at)
    elif event_type in ("MessageSuppressed", "MessageExpired", "MessageDeadLettered", "MessageFallbackTriggered"):
        row["reason"] = payload.get("reason") if event_type != "MessageSuppressed" else \
            f"{payload.get('reason')}: {payload.get('detail') or ''}".rstrip(": ")


def _status(row: Mapping[str, Any], event_type: str) -> str:
    """The best receipt if any; else failed right after a failure; else the pipeline's phase."""
    if row["receipt"] is not None:
        return str(row["receipt"])
    if event_type == "MessageFailed":
        return "failed"
    return str(row["phase"] or "requested")


def _iso(value: Any) -> str:
    """A time as the row keeps it: a datetime's isoformat, whether decoded as one or as milliseconds."""
    if isinstance(value, int):
        return iso_millis(value)
    return value.isoformat() if isinstance(value, datetime) else str(value)


_SECONDS: dict[int, str] = {}  # "YYYY-MM-DDTHH:MM:SS" of recent seconds: a replay's events cluster in time


def iso_millis(millis: int) -> str:
    """`from_millis(millis).isoformat()`, the seconds' part formatted once per second seen."""
    second, fraction = divmod(millis, 1000)
    prefix = _SECONDS.get(second)
    if prefix is None:
        if len(_SECONDS) >= 100_000:
            _SECONDS.clear()
        prefix = _SECONDS[second] = from_millis(second * 1000).isoformat()[:19]
    return f"{prefix}.{fraction:03d}000+00:00" if fraction else f"{prefix}+00:00"
