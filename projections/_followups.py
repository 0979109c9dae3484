"""Follow-ups: a message that failed on every channel, or was not read in time, needs a person's attention."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas import make_envelope

__all__ = ["FollowUpRules", "FollowUps", "due_key"]

Lookup = Callable[[str], Any]
_FAILED = {"MessageDeadLettered": "dead_lettered", "MessageExpired": "expired"}
_VERSION = {"failed": 1, "not_read": 2}  # the follow-up's envelope version: one event id per message and reason


@dataclass(frozen=True)
class FollowUpRules:
    """Which messages are followed up: all that fail; those of these categories not read within the time."""

    read_within_seconds: float = 24 * 3600.0
    categories: frozenset[str] = frozenset({"utility", "authentication"})


def due_key(due_ms: int, message_id: str) -> str:
    """The timer row of a message awaiting its read receipt; keys sort by due time."""
    return f"due:{due_ms:015d}:{message_id}"


class FollowUps:
    """Pure: events in, rows and follow-up events out; `due()` raises the unread ones whose time has come."""

    topic = "sb.events.message"

    def __init__(self, rules: FollowUpRules) -> None:
        self.rules = rules

    def apply(self, lookup: Lookup, event_type: str, payload: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                                                           list[dict[str, Any]]]:
        envelope = payload["envelope"]
        key = f"fu:{envelope['aggregate_id']}"
        row = lookup(key) or {"version": 0, "tenant": envelope["tenant_id"], "contact_id": payload.get("contact_id"),
                              "category": None, "template": None, "channel": None, "due": None, "raised": []}
        if envelope["aggregate_version"] <= row["version"]:
            return {}, []
        row = {**row, "version": envelope["aggregate_version"], "raised": list(row["raised"])}
        changes: dict[str, Any] = {key: row}
        raised = self._follow(row, envelope["aggregate_id"], event_type, payload, changes)
        return changes, raised

    def due(self, pending: Iterable[tuple[str, Any]], lookup: Lookup,
            now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Follow-ups for messages accepted long enough ago and still unread; `pending` is the store's `due:` rows."""
        changes: dict[str, Any] = {}
        raised: list[dict[str, Any]] = []
        for key, message_id in pending:
            if int(key.split(":")[1]) > now.timestamp() * 1000:
                break  # keys sort by due time: the rest are later
            row = lookup(f"fu:{message_id}")
            changes[key] = None
            if row is not None and "not_read" not in row["raised"]:
                waited = f"not read {self.rules.read_within_seconds:g} s after it was accepted"
                raised.append(self._raise(row, message_id, "not_read", row.get("status", "accepted"), waited, now))
                changes[f"fu:{message_id}"] = {**row, "raised": [*row["raised"], "not_read"], "due": None}
        return changes, raised

    def _follow(self, row: dict[str, Any], message_id: str, event_type: str, payload: Mapping[str, Any],
                changes: dict[str, Any]) -> list[dict[str, Any]]:
        at = payload["envelope"]["occurred_at"]
        if event_type == "MessageRequested":
            row.update(category=payload.get("category"), template=payload.get("template_name"))
        elif event_type == "MessageRouted":
            row["channel"] = payload.get("channel")
        elif event_type in ("MessageSent", "MessageDelivered"):
            row["status"] = "delivered" if "delivered" in (row.get("status"), event_type[7:].lower()) else "sent"
        elif event_type == "MessageAcceptedByProvider" and row["category"] in self.rules.categories:
            row["status"] = "accepted"
            self._cancel(row, message_id, changes)
            row["due"] = int(at.timestamp() * 1000 + self.rules.read_within_seconds * 1000)
            changes[due_key(row["due"], message_id)] = message_id
        elif event_type in ("MessageRead", "MessageFallbackTriggered"):
            self._cancel(row, message_id, changes)  # read; or moving on, to be timed again when accepted
        elif event_type in _FAILED and "failed" not in row["raised"]:
            self._cancel(row, message_id, changes)
            row["raised"].append("failed")
            return [self._raise(row, message_id, "failed", _FAILED[event_type], payload.get("reason"), at)]
        return []

    @staticmethod
    def _cancel(row: dict[str, Any], message_id: str, changes: dict[str, Any]) -> None:
        if row["due"] is not None:
            changes[due_key(row["due"], message_id)] = None
            row["due"] = None

    @staticmethod
    def _raise(row: Mapping[str, Any], message_id: str, reason: str, status: str, detail: str | None,
               at: datetime) -> dict[str, Any]:
        envelope = make_envelope(aggregate_type="FollowUp", aggregate_id=message_id,
                                 aggregate_version=_VERSION[reason], occurred_at=at.astimezone(UTC),
                                 tenant_id=row["tenant"])
        return {"envelope": envelope, "contact_id": row["contact_id"], "message_id": message_id, "reason": reason,
                "status": status, "channel": row["channel"], "template": row["template"], "detail": detail}
