"""The audit trail: a message's or a recipient's full history with its causes, and state at a past time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from projections._audit_chain import (
    AuditLine,
    ContactLog,
    contact_lines,
    message_lines,
    parse_commands,
    parse_events,
)
from projections._audit_log import fetch_records, read_key
from projections._audit_state import BadTime, contact_state, message_state, parse_time
from switchboard.log_reads import OnRead

__all__ = ["AuditLine", "BadTime", "MessageAudit", "RecipientAudit", "audit_message", "audit_recipient", "lines_since",
           "parse_time", "render", "render_recipient", "to_json"]


@dataclass(frozen=True)
class MessageAudit:
    """One message's steps, in order, each with its cause."""

    message_id: str
    contact_id: str
    lines: list[AuditLine]
    since: datetime | None = None  # records stamped before it were not read


@dataclass(frozen=True)
class RecipientAudit:
    """A contact's own history, each of its messages' histories and, with an as-of time, their states then."""

    contact_id: str
    contact: list[AuditLine]
    messages: list[MessageAudit]
    as_of: datetime | None = None
    contact_state: dict[str, Any] | None = None
    message_states: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    since: datetime | None = None  # records stamped before it were not read


async def audit_message(bootstrap: str, prefix: str, message_id: str, contact_id: str, since: datetime | None = None,
                        progress: OnRead | None = None) -> MessageAudit:
    """Reads the contact's partitions of the commands and the message events (from `since`, if given), and the
    records they point at; `progress(read, total)` as the partitions are read."""
    log = await _contact_log(bootstrap, prefix, contact_id, since, progress)
    return MessageAudit(message_id, contact_id, lines_since(message_lines(log, message_id), since), since)


async def audit_recipient(bootstrap: str, prefix: str, contact_id: str, as_of: datetime | None = None,
                          since: datetime | None = None, progress: OnRead | None = None) -> RecipientAudit:
    """Every message of the contact in the order requested, the contact's own events, and states at `as_of`.
    A state needs the whole history, so `as_of` and `since` do not go together."""
    if as_of is not None and since is not None:
        raise ValueError("a state as of a time needs the whole history: it cannot be read from a later time")
    log = await _contact_log(bootstrap, prefix, contact_id, since, progress)
    messages = [MessageAudit(message_id, contact_id, lines_since(message_lines(log, message_id), since), since)
                for message_id in log.message_ids()]
    audit = RecipientAudit(contact_id, lines_since(contact_lines(log), since), messages, since=since)
    if as_of is None:
        return audit
    own = [event for event in log.contact_events if event.aggregate_id == contact_id]
    states = {message_id: message_state([e for e in log.message_events if e.aggregate_id == message_id], as_of)
              for message_id in log.message_ids()}
    return RecipientAudit(contact_id, audit.contact, messages, as_of, contact_state(own, as_of), states)


def lines_since(lines: list[AuditLine], since: datetime | None) -> list[AuditLine]:
    """The steps at or after `since`. Reading began at the first record stamped then, and a record is stamped when
    it is written, so it can hold an event of a moment before (written with the batch after it): not shown."""
    return lines if since is None else [line for line in lines if line.at >= since]


async def _contact_log(bootstrap: str, prefix: str, contact_id: str, since: datetime | None,
                       progress: OnRead | None) -> ContactLog:
    commands, message_events, contact_events = (prefix + name for name in
                                                ("sb.commands", "sb.events.message", "sb.events.contact"))
    found = await read_key(bootstrap, [commands, message_events, contact_events], contact_id, since, progress)
    log = ContactLog(contact_id, parse_commands(found[commands]), parse_events(found[message_events]),
                     parse_events(found[contact_events]))
    log.sources = await fetch_records(bootstrap, log.pointers())
    return log


def render(audit: MessageAudit) -> str:
    """A message's steps as an auditor reads them: number, time, source, what, where; its cause; what it says."""
    read = "" if audit.since is None else f", records from {audit.since.isoformat()} on"
    if not audit.lines:
        return f"no record of message {audit.message_id}{read}"
    return f"message {audit.message_id} (contact {audit.contact_id}{read})\n" + _steps(audit.lines)


def render_recipient(audit: RecipientAudit) -> str:
    """The contact's history, each message's history, and the states at the as-of time."""
    read = "" if audit.since is None else f" (records from {audit.since.isoformat()} on)"
    parts = [f"recipient {audit.contact_id}{read}", "contact:",
             _steps(audit.contact) if audit.contact else "  no events"]
    for message in audit.messages:
        parts.append(render(message))
    if audit.as_of is not None:
        parts.append(f"state as of {audit.as_of.isoformat()}:")
        parts.append(f"  contact: {_json(audit.contact_state)}")
        parts.extend(f"  message {message_id}: {_json(state) if state else 'not requested yet'}"
                     for message_id, state in audit.message_states.items())
    return "\n".join(parts)


def to_json(audit: MessageAudit | RecipientAudit) -> dict[str, Any]:
    """The audit as one JSON object (`--json`); steps number from 1 and `caused_by` names a step's number."""
    if isinstance(audit, MessageAudit):
        return {"message_id": audit.message_id, "contact_id": audit.contact_id, **_since(audit.since),
                "steps": _numbered(audit.lines)}
    result: dict[str, Any] = {"contact_id": audit.contact_id, **_since(audit.since),
                              "contact": _numbered(audit.contact),
                              "messages": [to_json(message) for message in audit.messages]}
    if audit.as_of is not None:
        result["as_of"] = {"at": audit.as_of.isoformat(), "contact": audit.contact_state,
                           "messages": audit.message_states}
    return result


def _since(since: datetime | None) -> dict[str, str]:
    return {} if since is None else {"since": since.isoformat()}


def _numbered(lines: list[AuditLine]) -> list[dict[str, Any]]:
    numbers = {line.position: number for number, line in enumerate(lines, start=1)}
    return [{"step": number, "at": line.at.isoformat(), "source": line.source, "kind": line.kind,
             "position": line.position, "id": line.ref, "caused_by": numbers.get(line.cause or ""),
             "cause": line.because, "details": json.loads(json.dumps(line.details, default=str))}
            for number, line in enumerate(lines, start=1)]


def _steps(lines: list[AuditLine]) -> str:
    rows = []
    for step in _numbered(lines):
        cause = f"#{step['caused_by']} " if step["caused_by"] else ""
        rows.append(f"  #{step['step']:<3} {step['at'][:23]}  {step['source']:<8} {step['kind']:<26} "
                    f"{step['position']:<30} <- {cause}{step['cause']}")
        rows.append(f"         {_json(step['details'])}")
    return "\n".join(rows)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
