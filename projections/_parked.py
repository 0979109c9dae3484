"""What was parked and why: dead letters and refused webhooks, read from their records and summed up, pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from projections._audit_mask import masked
from switchboard.log_reads import LogRecord

__all__ = ["DEAD_LETTERS", "REJECTS", "Parked", "Summary", "parked", "render_list", "render_summary", "summarise"]

DEAD_LETTERS, REJECTS = "sb.deadletters", "sb.rejects"
# What names the parked thing in a dead letter: shown in the list, kept in --json (phone numbers masked).
_NAMING = ("message_id", "contact_id", "channel", "source", "item", "cause", "attempts", "last_status", "target_url",
           "code", "details", "trace_id", "worker")
# A refused webhook's headers worth showing (the body stays on the topic; its digest finds it).
_REJECT_HEADERS = ("status", "detail", "signature-present", "content-type", "user-agent", "content-sha256")


@dataclass(frozen=True)
class Parked:
    """One input not processed: where it stopped, why, when, and what identifies it."""

    topic: str  # sb.deadletters or sb.rejects, without the prefix
    position: str  # topic-partition@offset, to fetch the record itself
    at: datetime
    stage: str  # the part that parked it: triggers, writer, dispatch, normaliser, templates, status-callback, receiver
    reason: str
    key: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    """The parked records of one stage and reason."""

    stage: str
    reason: str
    count: int
    first: datetime
    last: datetime


def parked(record: LogRecord, topic: str) -> Parked:
    """A record of the dead-letter or rejects topic (`topic` without the prefix) as what it parked."""
    if topic == REJECTS:
        return _rejected(record)
    try:
        letter = json.loads(record.value or b"")
    except ValueError:
        letter = None
    if not isinstance(letter, dict):
        return Parked(topic, record.position, record.at, "unknown", "not a JSON object: unreadable dead letter",
                      record.key)
    stage = str(letter.get("stage") or letter.get("kind") or "unknown")
    reason = str(letter.get("reason") or "").strip() or "(no reason given)"
    details = masked({name: letter[name] for name in _NAMING if letter.get(name) is not None})
    return Parked(topic, record.position, _when(letter.get("at"), record.at), stage, reason, record.key, details)


def summarise(items: Iterable[Parked]) -> list[Summary]:
    """One row per stage and reason, the most frequent first."""
    groups: dict[tuple[str, str], list[Parked]] = {}
    for item in items:
        groups.setdefault((item.stage, item.reason), []).append(item)
    rows = [Summary(stage, reason, len(group), min(p.at for p in group), max(p.at for p in group))
            for (stage, reason), group in groups.items()]
    return sorted(rows, key=lambda row: (-row.count, row.stage, row.reason))


def render_summary(rows: Sequence[Summary], read: int, top: int) -> str:
    """The table an operator reads first: how many of what were parked, and when the first and last were."""
    if not rows:
        return f"nothing parked ({read} records read)"
    parked_count = sum(row.count for row in rows)
    lines = [f"{parked_count} parked, {len(rows)} reason{'' if len(rows) == 1 else 's'}:",
             f"{'count':>7}  {'stage':<16} {'first':<20} {'last':<20} reason"]
    lines += [f"{row.count:>7}  {row.stage:<16} {_short(row.first):<20} {_short(row.last):<20} {row.reason}"
              for row in rows[:top]]
    if len(rows) > top:
        lines.append(f"  ... {len(rows) - top} more reasons ({sum(row.count for row in rows[top:])} records): "
                     f"--top {len(rows)} shows them all")
    return "\n".join(lines)


def render_list(items: Sequence[Parked], as_json: bool = False) -> str:
    """Each parked record, oldest first: as lines, or (as_json) one JSON object per line."""
    ordered = sorted(items, key=lambda item: (item.at, item.position))
    if as_json:
        return "\n".join(json.dumps({**asdict(item), "at": item.at.isoformat()}, sort_keys=True) for item in ordered)
    return "\n".join(f"{_short(item.at)}  {item.position:<30} {item.stage:<16} {item.reason}"
                     f"{'  ' + json.dumps(item.details, sort_keys=True) if item.details else ''}"
                     for item in ordered)


def _rejected(record: LogRecord) -> Parked:
    received = record.header("received_at") or ""
    at = datetime.fromtimestamp(int(received) / 1000, UTC) if received.isdigit() else record.at
    details = masked({name: value for name in _REJECT_HEADERS if (value := record.header(name))})
    return Parked(REJECTS, record.position, at, f"receiver ({record.header('channel') or '?'})",
                  record.header("reason") or "(no reason given)", record.key, details)


def _when(value: Any, otherwise: datetime) -> datetime:
    """A dead letter's own `at` (epoch seconds), else the record's timestamp."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    return otherwise


def _short(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
