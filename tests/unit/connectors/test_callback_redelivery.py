"""Which given-up callbacks a redelivery sends: status-callback letters only, each event once, in sequence order."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime

import pytest

from connectors._feeder_registry import CallbackRegistry
from connectors._feeder_secrets import CallbackSecrets, secret_env_var
from connectors.callback_deadletters import dead_letter_document
from connectors.callback_redelivery import RedeliveryReport, _targets, letters_by_message
from connectors.callbacks import CallbackEvent, DeadLetter, DeadLetterCause
from schemas import DecodedEvent
from switchboard.log_reads import LogRecord

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def event(message: str, sequence: int, tenant: str = "t-1") -> CallbackEvent:
    return CallbackEvent(message, tenant, "MessageDelivered", sequence, AT, {"status": "delivered"})


def letter_record(value: object, offset: int) -> LogRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return LogRecord("sb.deadletters", 0, offset, AT, None, raw, {})


def given_up(item: CallbackEvent, offset: int, cause: DeadLetterCause = DeadLetterCause.SKIPPED) -> LogRecord:
    return letter_record(dead_letter_document(DeadLetter("https://crm.example/hook", item, cause, "down", 5)),
                         offset)


def test_each_message_s_events_come_once_in_sequence_order_whatever_order_the_letters_are_in() -> None:
    records = [given_up(event("m-1", 7), 0), given_up(event("m-1", 5), 1, DeadLetterCause.EXHAUSTED),
               given_up(event("m-1", 7), 2),  # given up twice (an earlier redelivery failed too)
               given_up(event("m-2", 5, tenant="t-2"), 3),
               letter_record({"stage": "writer", "reason": "unknown trigger"}, 4),  # not a callback's
               letter_record(b"\x00", 5)]
    letters, found = letters_by_message(records)
    assert letters == 4
    assert {tenant: {m: [e.sequence for e in events] for m, events in messages.items()}
            for tenant, messages in found.items()} == {"t-1": {"m-1": [5, 7]}, "t-2": {"m-2": [5]}}
    assert found["t-1"]["m-1"][0] == event("m-1", 5)  # the event as it was to be posted, payload and time


def test_filters_by_message_and_tenant() -> None:
    records = [given_up(event("m-1", 5), 0), given_up(event("m-2", 5, tenant="t-2"), 1)]
    assert list(letters_by_message(records, message_id="m-2")[1]) == ["t-2"]
    assert letters_by_message(records, tenant_id="t-1")[0] == 1


def test_a_callback_letter_that_cannot_be_read_is_reported_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="connectors.callback_redelivery"):
        letters, found = letters_by_message([letter_record({"kind": "status-callback", "event": {}}, 9)])
    assert (letters, found) == (0, {})
    assert "sb.deadletters-0@9" in caplog.text


def test_the_summary_says_what_was_sent_given_up_again_and_not_sent() -> None:
    report = RedeliveryReport(letters=6, messages=2, events=5, delivered=3,
                              dead_lettered=Counter({"exhausted": 1}), not_sent=Counter({"no secret": 1}))
    assert report.summary(dry_run=False) == ("redelivered 3 of 5 event(s) of 2 message(s) from 6 dead letter(s); "
                                             "dead-lettered again: 1 exhausted; not sent: 1 no secret")
    assert not report.complete
    assert report.summary(dry_run=True).startswith("would redeliver 5 event(s)")


def _url_set(tenant: str, url: str) -> DecodedEvent:
    envelope = {"aggregate_id": tenant, "aggregate_version": 1, "tenant_id": tenant}
    return DecodedEvent("CallbackUrlSet", 0, 1, 1, {"envelope": envelope, "kind": "message_status", "url": url})


def test_a_tenant_without_a_usable_target_is_reported_with_why_and_not_sent() -> None:
    registry = CallbackRegistry.fold([_url_set("t-ok", "https://crm.example/hook"), _url_set("t-ftp", "ftp://x/y"),
                                      _url_set("t-unsigned", "https://b.example/hook")])
    secrets = CallbackSecrets(environ={secret_env_var(t): "s3cret" for t in ("t-ok", "t-ftp")})
    by_tenant = {tenant: {"m-1": [event("m-1", 5, tenant)]} for tenant in ("t-ok", "t-ftp", "t-unsigned", "t-none")}
    report = RedeliveryReport()
    targets = _targets(by_tenant, registry, secrets, report)
    assert [(tenant, target.url) for tenant, target in targets.items()] == [("t-ok", "https://crm.example/hook")]
    assert report.not_sent == Counter({"the tenant's status callback URL is not http(s)://host/...": 1,
                                       "the tenant has no signing secret": 1,
                                       "the tenant has no status callback URL": 1})
