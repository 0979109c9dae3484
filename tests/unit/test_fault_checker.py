"""The fault suite's checker finds what it must: a lost message, a doubled terminal state, an unparked poison
record, a refusal missing from sb.rejects, a receipt applied twice; and passes a clean log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bench.faults._check import Report, _receipts, _refusals, _terminal_states, fold, unparked
from bench.faults._ledger import Ledger, Poison, Refusal
from bench.faults._log import Record
from schemas import default_registry, encode, make_envelope
from schemas._samples import sample

AT = datetime(2026, 3, 1, 9, tzinfo=UTC)


def _event(event_type: str, message: str, version: int) -> Record:
    payload = dict(sample(default_registry().latest(event_type).expanded, nulls=True))
    payload.update(contact_id="contact-1", envelope=make_envelope(
        aggregate_type="Message", aggregate_id=message, aggregate_version=version, occurred_at=AT, tenant_id="acme"))
    for name in ("provider_at", "retry_at"):
        if name in payload:
            payload[name] = AT
    return Record(0, version, None, encode(payload, event_type), {})


def _history(message: str, *types: str) -> list[Record]:
    return [_event(t, message, v) for v, t in enumerate(types, start=1)]


def _terminal_report(records: list[Record], requested: dict[str, str],
                     letters: list[dict[str, Any]] | None = None) -> Report:
    report = Report("unit")
    letter_records = [(Record(0, n, None, json.dumps(x).encode(), {}), x) for n, x in enumerate(letters or [])]
    _terminal_states(Ledger(requested=requested), fold(records), letter_records, report)
    return report


def test_a_clean_log_passes_and_is_tallied() -> None:
    records = _history("m-1", "MessageRequested", "MessageAcceptedByProvider") + _history(
        "m-2", "MessageRequested", "MessageDeadLettered")
    report = _terminal_report(records + records[:1], {"m-1": "k1", "m-2": "k2"})  # a redelivered event too
    assert report.ok, report.violations
    assert report.tally["terminal states"] == {"accepted": 1, "deadlettered": 1}
    assert report.tally["redelivered events (deduplicated)"] == 1


def test_a_message_the_provider_reported_sent_is_settled_even_without_its_acceptance() -> None:
    records = _history("m-1", "MessageRequested", "MessageDispatchAttempted", "MessageSent", "MessageRead")
    report = _terminal_report(records, {"m-1": "k1"})
    assert report.ok, report.violations
    assert report.tally["terminal states"] == {"sent (no acceptance)": 1}


def test_a_requested_message_without_a_terminal_state_is_lost() -> None:
    report = _terminal_report(_history("m-1", "MessageRequested"), {"m-1": "k1", "m-2": "k2"})
    assert report.tally["lost"] == 2
    assert any("m-1" in v and "lost" in v for v in report.violations)


def test_a_request_parked_on_the_dead_letters_is_accounted_for() -> None:
    report = _terminal_report([], {"m-1": "k1"}, [{"reason": "bad", "command": {"message": {"idempotency_key": "k1"}}}])
    assert report.ok, report.violations
    assert report.tally["terminal states"] == {"request dead-lettered": 1}


def test_two_terminal_states_or_two_events_for_one_version_are_violations() -> None:
    doubled = _history("m-1", "MessageRequested", "MessageAcceptedByProvider", "MessageDeadLettered")
    clash = [*_history("m-2", "MessageRequested"), _event("MessageSuppressed", "m-2", 1)]
    report = _terminal_report(doubled + clash, {"m-1": "k1", "m-2": "k2"})
    assert any("2 terminal events" in v for v in report.violations)
    assert any("two events for one version" in v for v in report.violations)


def test_a_receipt_status_applied_twice_is_a_violation() -> None:
    records = _history("m-1", "MessageRequested", "MessageAcceptedByProvider", "MessageDelivered",
                       "MessageDelivered")
    report = Report("unit")
    _receipts(fold(records), report)
    assert any("applied twice" in v for v in report.violations)


def test_poison_is_found_by_its_marker_or_by_where_it_sits() -> None:
    by_marker = Poison("p-sb.commands", "poison-1", "not JSON", (0, 3))
    by_place = Poison("p-sb.webhooks.raw", "poison-2", "not JSON", (2, 9))
    missing = Poison("p-sb.dispatch", "poison-3", "not JSON", (1, 1))
    letters = [Record(0, 0, None, json.dumps({"reason": "not JSON", "record": "\ufffdpoison-1 x"}).encode(), {}),
               Record(0, 1, None, json.dumps({"reason": "unparseable", "source": {
                   "topic": "p-sb.webhooks.raw", "partition": 2, "offset": 9}}).encode(), {})]
    assert unparked([by_marker, by_place, missing], letters) == [missing]


def test_a_receiver_refusal_needs_its_record_with_a_reason_on_the_rejects_topic() -> None:
    kept = Refusal("receiver", "unsigned webhook", 401, "as expected (401)", "aa")
    lost = Refusal("receiver", "malformed webhook", 400, "as expected (400)", "bb")
    report = Report("unit")
    _refusals([kept, lost], [Record(0, 0, b"aa", b"{}", {"reason": b"missing signature"})], report)
    assert report.violations == ["malformed webhook: answered 400 but no record with a reason on sb.rejects"]


def test_the_report_prints_a_verdict_and_a_row_per_figure() -> None:
    report = Report("demo", {"requests": 1200, "terminal states": {"accepted": 1200}})
    assert report.lines() == ["== demo: PASS", "  requests         1,200", "  terminal states  accepted 1,200"]
