"""The shared checker: terminal states from sb.events.message, projections against a rebuild, every input and
every refusal accounted for with its reason; a tally per scenario and the list of violations."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.faults._ledger import Ledger, Poison, Refusal
from bench.faults._log import Record, read_topic
from bench.faults._projections import Verified
from schemas import ProjectedDecoder
from schemas.codec import default_codec

TERMINAL = frozenset({"MessageAcceptedByProvider", "MessageSuppressed", "MessageExpired", "MessageDeadLettered"})
RECEIPTS = ("MessageSent", "MessageDelivered", "MessageRead")
CONTENT_SHA256 = "X-Content-SHA256"
# What the checker and the runner's follower read of a message event: the projected decoding replays use, since
# a 50,000-message run has some 350,000 of them and the rest of each body is never looked at.
MESSAGE_FIELDS = ("envelope.aggregate_id", "envelope.event_id", "envelope.aggregate_version", "channel")


@dataclass
class History:
    """One message's events as folded from the log: event types per aggregate version, duplicates removed."""

    versions: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    seen: set[tuple[str, str]] = field(default_factory=set)
    redelivered: int = 0  # an event seen again (a redelivery the consumers deduplicate)

    def add(self, event_type: str, envelope: dict[str, Any]) -> None:
        """Event ids derive from (aggregate, version): the same id and type again is a redelivery; the same id
        with another type is a second event for one version, which the version check reports."""
        if (envelope["event_id"], event_type) in self.seen:
            self.redelivered += 1
            return
        self.seen.add((envelope["event_id"], event_type))
        self.versions[int(envelope["aggregate_version"])].add(event_type)

    def types(self) -> list[str]:
        return [t for v in sorted(self.versions) for t in sorted(self.versions[v])]

    def terminal(self) -> list[str]:
        return [t for t in self.types() if t in TERMINAL]

    def settled(self) -> list[str]:
        """Its terminal events, or, without one, its first receipt: the provider reported it sent, which can come
        before the answer to the send (a send whose answer timed out), so the message did reach the provider."""
        receipts = [t for t in self.types() if t in RECEIPTS]
        return self.terminal() or receipts[:1]


@dataclass
class Report:
    """What the checker found for one scenario."""

    scenario: str
    tally: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def lines(self) -> list[str]:
        width = max(map(len, self.tally), default=10)
        verdict = "PASS" if self.ok else f"FAIL ({len(self.violations)} violations)"
        head = [f"== {self.scenario}: {verdict}"]
        body = [f"  {name:<{width}}  {_shown(value)}" for name, value in self.tally.items()]
        return head + body + [f"  VIOLATION: {v}" for v in self.violations[:20]]


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in value.items()) or "none"
    return f"{value:,}" if isinstance(value, int) else str(value)


def fold(records: list[Record]) -> dict[str, History]:
    """Message id -> its history, from the records of sb.events.message."""
    histories: dict[str, History] = defaultdict(History)
    decode = message_decoder()
    for record in records:
        decoded = decode(record.value)
        if decoded is not None:  # None: a schema id this code does not know
            event_type, payload = decoded
            histories[payload["envelope"]["aggregate_id"]].add(event_type, payload["envelope"])
    return histories


def message_decoder() -> ProjectedDecoder:
    """Decodes only MESSAGE_FIELDS of a message event (the event type and those fields)."""
    return default_codec().projected(MESSAGE_FIELDS)


async def check(scenario: str, bootstrap: str, prefix: str, ledger: Ledger,
                projections: list[Verified]) -> Report:
    """Reads the run's topics to their ends and checks every invariant; the report carries the tally."""
    report = Report(scenario)
    report.tally.update(ledger.faults)
    report.tally.update(ledger.figures)
    histories = fold(await read_topic(bootstrap, prefix + "sb.events.message"))
    letters = _letters(await read_topic(bootstrap, prefix + "sb.deadletters"), report)
    _terminal_states(ledger, histories, letters, report)
    if ledger.receipts_expected:
        _receipts(histories, report)
    _poison(ledger.poison, letters, report)
    _refusals(ledger.refusals, await read_topic(bootstrap, prefix + "sb.rejects"), report)
    _projections(projections, report)
    report.tally["dead letters by stage"] = dict(Counter(str(letter.get("stage")) for _, letter in letters))
    return report


def _letters(records: list[Record], report: Report) -> list[tuple[Record, dict[str, Any]]]:
    letters = []
    for record in records:
        try:
            letter = json.loads(record.value)
        except ValueError:
            report.violations.append(f"dead letter at {record.partition}/{record.offset} is not JSON")
            continue
        if not str(letter.get("reason") or "").strip():
            report.violations.append(f"dead letter at {record.partition}/{record.offset} has no reason: {letter}")
        letters.append((record, letter))
    return letters


def _terminal_states(ledger: Ledger, histories: dict[str, History], letters: list[tuple[Record, dict[str, Any]]],
                     report: Report) -> None:
    states: Counter[str] = Counter()
    lost = []
    for message_id, history in histories.items():
        _versions(message_id, history, report)
        terminal = history.terminal()
        if len(terminal) > 1:
            report.violations.append(f"message {message_id}: {len(terminal)} terminal events {terminal}")
        settled = history.settled()
        states[settled[0] if terminal else f"{settled[0]} (no acceptance)" if settled else "not terminal"] += 1
    parked = {str(letter.get("message_id")) for _, letter in letters} | {
        str(letter.get("command", {}).get("message", {}).get("idempotency_key")) for _, letter in letters
        if isinstance(letter.get("command"), dict)}
    for message_id, key in ledger.requested.items():
        if message_id not in histories or not histories[message_id].settled():
            if message_id in parked or key in parked:
                states["request dead-lettered"] += 1
            else:
                lost.append(message_id)
    for message_id, history in histories.items():
        if message_id not in ledger.requested and not history.settled():
            lost.append(message_id)  # a message the platform made itself (a trigger) must end too
    report.tally["requests"] = len(ledger.requested)
    report.tally["messages in the log"] = len(histories)
    report.tally["terminal states"] = {_short(k): v for k, v in sorted(states.items())}
    report.tally["redelivered events (deduplicated)"] = sum(h.redelivered for h in histories.values())
    report.tally["lost"] = len(lost)
    for message_id in lost[:10]:
        report.violations.append(f"message {message_id} has no terminal state and no dead letter: lost")
    if len(lost) > 10:
        report.violations.append(f"... and {len(lost) - 10} more lost")


def _short(event_type: str) -> str:
    return event_type.removeprefix("Message").replace("AcceptedByProvider", "accepted").lower()


def _versions(message_id: str, history: History, report: Report) -> None:
    versions = sorted(history.versions)
    if versions != list(range(1, len(versions) + 1)):
        report.violations.append(f"message {message_id}: versions with gaps {versions[:12]}")
    doubled = {v: sorted(t) for v, t in history.versions.items() if len(t) > 1}
    if doubled:
        report.violations.append(f"message {message_id}: two events for one version {doubled}")


def _receipts(histories: dict[str, History], report: Report) -> None:
    counts: Counter[str] = Counter()
    for message_id, history in histories.items():
        seen = Counter(t for t in history.types() if t in RECEIPTS)
        counts.update(seen.keys())
        doubled = {t: n for t, n in seen.items() if n > 1}
        if doubled:
            report.violations.append(f"message {message_id}: a receipt status applied twice {doubled}")
    report.tally["receipt statuses (once each)"] = {_short(t): counts[t] for t in RECEIPTS}


def unparked(poison: list[Poison], records: list[Record]) -> list[Poison]:
    """The bad records no dead letter names (by the marker inside them, or by their topic, partition, offset)."""
    texts = [(record.value.decode(errors="replace"), _json_or_empty(record.value)) for record in records]
    return [bad for bad in poison if not any(bad.marker in text or _points_at(letter, bad) for text, letter in texts)]


def _json_or_empty(value: bytes) -> dict[str, Any]:
    try:
        found = json.loads(value)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _poison(poison: list[Poison], letters: list[tuple[Record, dict[str, Any]]], report: Report) -> None:
    if not poison:
        return
    missing = unparked(poison, [record for record, _ in letters])
    found: Counter[str] = Counter()
    for bad in poison:
        if bad in missing:
            report.violations.append(f"poison {bad.what} on {bad.topic} ({bad.marker}) has no dead letter")
        else:
            found[f"sb.{bad.topic.rsplit('sb.', 1)[-1]}"] += 1
    report.tally["poison records"] = len(poison)
    report.tally["poison dead-lettered, by topic"] = dict(found)


def _points_at(letter: dict[str, Any], bad: Poison) -> bool:
    source = letter.get("source")
    return (bad.where is not None and isinstance(source, dict) and source.get("topic") == bad.topic
            and (source.get("partition"), source.get("offset")) == bad.where)


def _refusals(refusals: list[Refusal], rejects: list[Record], report: Report) -> None:
    if not refusals:
        return
    kept = {(record.key or b"").decode(): record.headers.get("reason", b"").decode() for record in rejects}
    statuses: Counter[str] = Counter()
    for refusal in refusals:
        statuses[f"{refusal.service} {refusal.status or 'refused'} {refusal.code}"] += 1
        if refusal.body_sha256 is not None and not kept.get(refusal.body_sha256):
            report.violations.append(f"{refusal.what}: answered {refusal.status} but no record with a reason on "
                                     "sb.rejects")
        if not refusal.code:
            report.violations.append(f"{refusal.what}: refused without a reason")
    report.tally["refused requests"] = dict(sorted(statuses.items()))
    report.tally["sb.rejects records (with reason)"] = sum(1 for reason in kept.values() if reason)


def _projections(verified: list[Verified], report: Report) -> None:
    for result in verified:
        same = "identical" if not result.differing else f"{len(result.differing)}+ rows differ"
        report.tally[f"projection {result.name}"] = f"{result.rows:,} rows, {same} to a rebuild of " \
                                                    f"{result.events:,} events ({result.caught_up:,} caught up " \
                                                    "at the end)"
        if result.differing:
            report.violations.append(f"projection {result.name} differs from its rebuild at "
                                     f"{', '.join(result.differing[:5])}")
