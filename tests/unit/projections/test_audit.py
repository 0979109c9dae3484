"""The audit's pure parts: the causation chain and its order, masking, and state at a past time."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, cast

import pytest
from eventsourcing.domain import AggregateEvent

from aggregates import (
    Channel,
    ConsentCategory,
    Contact,
    FailureClass,
    Message,
    MessageCategory,
    ReceiptStatus,
    to_record,
)
from projections._audit import MessageAudit, lines_since, render, to_json
from projections._audit_chain import ContactLog, Event, contact_lines, message_lines, parse_commands, parse_events
from projections._audit_log import pointer_of
from projections._audit_mask import masked, masked_body
from projections._audit_state import BadTime, contact_state, message_state, parse_time, time_argument
from schemas import TraceContext, encode
from switchboard.log_reads import LogRecord

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TENANT, PHONE = "acme", "+4917012345678"
RAW = ("sb.webhooks.raw", 2, 40)


class Log:
    """Records of one contact as the audit reads them, each a second after the one before."""

    def __init__(self) -> None:
        self.offsets = {"sb.commands": count(), "sb.events.message": count(), "sb.events.contact": count()}
        self.clock = count(1)
        self.records: dict[str, list[LogRecord]] = {topic: [] for topic in self.offsets}

    def record(self, topic: str, value: bytes, headers: dict[str, bytes] | None = None) -> LogRecord:
        at = T0 + timedelta(seconds=next(self.clock))
        record = LogRecord(topic, 0, next(self.offsets[topic]), at, "contact", value, headers or {})
        self.records[topic].append(record)
        return record

    def command(self, value: dict[str, Any], headers: dict[str, bytes] | None = None) -> None:
        self.record("sb.commands", json.dumps(value).encode(), headers)

    def events(self, aggregate: Message | Contact, cause: str | None) -> None:
        topic = "sb.events.message" if isinstance(aggregate, Message) else "sb.events.contact"
        for event in aggregate.collect_events():
            record = to_record(aggregate, cast(AggregateEvent, event), TraceContext(causation_id=cause))
            self.record(topic, encode(record.event, record.event_type))

    def contact_log(self, sources: dict[tuple[str, int, int], LogRecord] | None = None) -> ContactLog:
        return ContactLog(str(CONTACT.id), parse_commands(self.records["sb.commands"]),
                          parse_events(self.records["sb.events.message"]),
                          parse_events(self.records["sb.events.contact"]), sources or {})


CONTACT = Contact.register(tenant_id=TENANT, external_ref="c-1", addresses={Channel.WHATSAPP: PHONE})


def _history() -> tuple[Log, Message, LogRecord]:
    """A request, a failed first attempt answered by an outcome, a retry on a tick, a receipt from a webhook."""
    log, contact = Log(), Contact.register(tenant_id=TENANT, external_ref="c-1", addresses={Channel.WHATSAPP: PHONE})
    message = Message.request(tenant_id=TENANT, contact_id=contact.id, category=MessageCategory.UTILITY,
                              idempotency_key="k-1", template_name="order_shipped")
    log.command({"kind": "request", "command_id": "req-1", "tenant": TENANT, "contact_id": str(contact.id),
                 "message": {"idempotency_key": "k-1"}})
    log.events(contact, "req-1")
    message.render("hello")
    message.route(Channel.WHATSAPP, "wa-main", PHONE)
    message.attempt_dispatch()
    log.events(message, "req-1")
    log.command({"kind": "request", "command_id": "req-1", "tenant": TENANT, "contact_id": str(contact.id),
                 "message": {"idempotency_key": "k-1"}})  # a client's retry: changes nothing
    log.command({"kind": "outcome", "command_id": "o-1", "message_id": str(message.id), "attempt": 1,
                 "outcome": "retry_later"})
    message.schedule_retry(T0 + timedelta(minutes=1), FailureClass.RETRYABLE)
    log.events(message, "o-1")
    log.record("sb.commands", json.dumps({"kind": "tick", "at": 1}).encode())
    message.attempt_dispatch()
    log.events(message, "tick:sb.commands-0@3")
    log.command({"kind": "outcome", "command_id": "o-2", "message_id": str(message.id), "attempt": 2,
                 "outcome": "accepted"})
    message.accept("wamid.1")
    log.events(message, "o-2")
    webhook = LogRecord(*RAW, T0, "sha", json.dumps({"statuses": [{"recipient_id": PHONE[1:],
                                                                   "status": "delivered"}]}).encode(),
                        {"channel": b"whatsapp", "signature-verified": b"true"})
    log.command({"kind": "receipt", "command_id": "r-1", "message_id": str(message.id), "status": "delivered"},
                {"raw-source": json.dumps({"topic": RAW[0], "partition": RAW[1], "offset": RAW[2]}).encode()})
    message.record_receipt(ReceiptStatus.DELIVERED, "wamid.1", T0)
    log.events(message, "r-1")
    return log, message, webhook


def test_every_step_follows_its_cause_and_names_it() -> None:
    log, message, webhook = _history()
    lines = message_lines(log.contact_log({RAW: webhook}), str(message.id))
    steps = to_json(MessageAudit(str(message.id), str(CONTACT.id), lines))["steps"]
    assert [(s["source"], s["kind"], s["caused_by"]) for s in steps] == [
        ("command", "request", None), ("event", "MessageRequested", 1), ("event", "MessageRendered", 1),
        ("event", "MessageRouted", 1), ("event", "MessageDispatchAttempted", 1),
        ("command", "request", None),  # the repeated request, where the writer read it, causing nothing
        ("command", "outcome", 5), ("event", "MessageRetryScheduled", 7),
        ("event", "MessageDispatchAttempted", None),
        ("command", "outcome", 9), ("event", "MessageAcceptedByProvider", 10),
        ("webhook", "whatsapp", None), ("command", "receipt", 12), ("event", "MessageDelivered", 13),
    ]
    assert steps[8]["cause"] == "the retry was due (partition clock tick at sb.commands-0@3)"
    assert steps[11]["details"]["body"] == {"statuses": [{"recipient_id": "49*********78", "status": "delivered"}]}
    assert steps[12]["cause"] == "whatsapp webhook"


def test_since_a_time_the_story_shows_only_the_steps_at_or_after_it() -> None:
    log, message, webhook = _history()
    lines = message_lines(log.contact_log({RAW: webhook}), str(message.id))
    middle = lines[len(lines) // 2].at
    kept = lines_since(lines, middle)
    assert kept == [line for line in lines if line.at >= middle]
    assert 0 < len(kept) < len(lines)
    assert lines_since(lines, None) == lines


def test_a_receipt_whose_raw_record_is_gone_says_so() -> None:
    log, message, _ = _history()
    steps = to_json(MessageAudit(str(message.id), "c", message_lines(log.contact_log(), str(message.id))))["steps"]
    receipt = next(step for step in steps if step["kind"] == "receipt")
    assert receipt["caused_by"] is None
    assert receipt["cause"] == "raw webhook at sb.webhooks.raw-2@40 (no longer there)"


def test_the_text_names_each_cause_by_its_step() -> None:
    log, message, webhook = _history()
    text = render(MessageAudit(str(message.id), "c", message_lines(log.contact_log({RAW: webhook}), str(message.id))))
    assert "<- #12 whatsapp webhook" in text
    assert "<- #5 the dispatcher's answer to attempt 1" in text
    assert PHONE[1:] not in text


def test_the_contact_history_shows_what_registered_it() -> None:
    log, _, _ = _history()
    lines = contact_lines(log.contact_log())
    assert [(line.source, line.kind) for line in lines] == [("command", "request"), ("event", "ContactRegistered")]
    assert lines[1].cause == lines[0].position


def test_events_without_causation_follow_the_commands_written_before_them() -> None:
    log = Log()
    message = Message.request(tenant_id=TENANT, contact_id=CONTACT.id, category=MessageCategory.UTILITY,
                              idempotency_key="k-2", template_name="order_shipped")
    log.command({"kind": "request", "command_id": "req-2", "tenant": TENANT, "message": {"idempotency_key": "k-2"}})
    log.events(message, None)
    [request, requested] = message_lines(log.contact_log(), str(message.id))
    assert (request.kind, requested.kind) == ("request", "MessageRequested")
    assert requested.because == "cause not recorded (an event written before causation ids)"


def test_state_as_of_a_time_folds_only_what_the_log_held_then() -> None:
    log, message, _ = _history()
    events = [e for e in parse_events(log.records["sb.events.message"]) if e.aggregate_id == str(message.id)]
    accepted = next(e for e in events if e.event_type == "MessageAcceptedByProvider").record.at
    then, now = message_state(events, accepted), message_state(events, accepted + timedelta(hours=1))
    assert then is not None
    assert now is not None
    assert (then["status"], then["attempt"], then["receipts"]) == ("accepted", 2, {})
    assert now["status"] == "delivered"
    assert message_state(events, T0) is None  # not requested yet


def test_contact_state_shows_consent_and_the_window_as_they_were() -> None:
    log = Log()
    contact = Contact.register(tenant_id=TENANT, external_ref="c-9", addresses={Channel.WHATSAPP: PHONE})
    log.events(contact, "c")
    contact.grant_consent(Channel.WHATSAPP, ConsentCategory.MARKETING, "form", None)
    log.events(contact, "c2")
    contact.record_inbound(Channel.WHATSAPP, "wamid.in", PHONE, T0 + timedelta(seconds=3), "hi")
    log.events(contact, "c3")
    events: list[Event] = parse_events(log.records["sb.events.contact"])
    before = contact_state(events, T0 + timedelta(seconds=1, milliseconds=500))
    after = contact_state(events, T0 + timedelta(seconds=3, milliseconds=500))
    assert before is not None
    assert after is not None
    assert (before["consents"], before["windows"]) == ({}, {})
    assert before["addresses"] == {"whatsapp": "+49*********78"}
    assert after["consents"]["whatsapp/marketing"]["granted"] is True
    assert after["windows"]["whatsapp"]["open"] is True


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-25T09:00:00Z", T0), ("2026-11-25T10:00:00+01:00", T0), ("2026-11-25T09:00:00", T0),
    ("1795597200", datetime.fromtimestamp(1795597200, UTC)),
    ("1795597200.5", datetime.fromtimestamp(1795597200.5, UTC)),
])
def test_times_are_iso_or_unix_seconds(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "", "25/11/2026", "-5"])
def test_a_bad_time_is_a_clear_error(text: str) -> None:
    with pytest.raises(BadTime, match="ISO-8601"):
        parse_time(text)
    with pytest.raises(argparse.ArgumentTypeError, match="ISO-8601"):  # on a command line: exit 2, the option named
        time_argument(text)


def test_phone_numbers_are_masked_by_field_and_by_shape() -> None:
    body = {"wa_id": "4917012345678", "from": "4917012345678", "text": {"body": "call +4917012345678"},
            "phone_number_id": "105954558954427", "timestamp": "1795597200", "count": 3}
    assert masked(body) == {"wa_id": "49*********78", "from": "49*********78",
                            "text": {"body": "call +49*********78"}, "phone_number_id": "105954558954427",
                            "timestamp": "1795597200", "count": 3}
    assert masked_body(b"not json +4917012345678") == "not json +49*********78"
    assert masked_body(None) is None


def test_pointers_are_read_from_headers_and_fields() -> None:
    assert pointer_of(b'{"topic": "t", "partition": 1, "offset": 7}') == ("t", 1, 7)
    assert pointer_of({"topic": "t", "partition": "1", "offset": 7}) is None
    assert pointer_of(b"junk") is None
