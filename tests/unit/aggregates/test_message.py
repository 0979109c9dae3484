"""The Message state machine: receipts only move forward, failures never undo them, commands guard phases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from aggregates import (
    Channel,
    DeferralReason,
    DomainError,
    FailureClass,
    InvalidTransition,
    Message,
    MessageCategory,
    MessagePhase,
    MessageStatus,
    Pricing,
    ReceiptStatus,
    SuppressionReason,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SENT, DELIVERED, READ = ReceiptStatus.SENT, ReceiptStatus.DELIVERED, ReceiptStatus.READ


def _requested(key: str = "order-42-shipped") -> Message:
    return Message.request(tenant_id="t1", contact_id=uuid4(), category=MessageCategory.UTILITY,
                           idempotency_key=key, template_name="order_shipped", parameters={"1": "Ada"})


def _accepted(provider_message_id: str = "wamid.1") -> Message:
    message = _requested()
    message.render("Hi Ada, your order shipped")
    message.route(Channel.WHATSAPP, "phone-1", "4790000000")
    message.attempt_dispatch()
    message.accept(provider_message_id)
    return message


def test_the_id_derives_from_tenant_and_idempotency_key() -> None:
    assert _requested("k").id == _requested("k").id
    assert _requested("k").id != _requested("other").id


def test_a_request_needs_a_template_or_a_body() -> None:
    with pytest.raises(DomainError, match="template_name or a body"):
        Message.request(tenant_id="t1", contact_id=uuid4(), category=MessageCategory.SERVICE, idempotency_key="k")


def test_the_happy_path_goes_from_requested_to_read() -> None:
    message = _requested()
    assert message.status is MessageStatus.REQUESTED
    message.render("Hi")
    message.route(Channel.WHATSAPP, "phone-1", "4790000000")
    assert message.attempt_dispatch() == 1
    assert message.status is MessageStatus.DISPATCHING
    message.accept("wamid.1")
    assert message.status is MessageStatus.ACCEPTED
    for n, status in enumerate((SENT, DELIVERED, READ)):
        assert message.record_receipt(status, "wamid.1", T0 + timedelta(seconds=n))
        assert message.status.value == status.value


def test_a_later_receipt_implies_the_earlier_ones() -> None:
    message = _accepted()
    message.record_receipt(READ, "wamid.1", T0)
    assert message.reached(SENT)
    assert message.reached(DELIVERED)
    assert message.status_at(DELIVERED) == T0
    message.record_receipt(DELIVERED, "wamid.1", T0 - timedelta(seconds=5))
    assert message.status is MessageStatus.READ  # the late delivered receipt does not move it back
    assert message.status_at(DELIVERED) == T0 - timedelta(seconds=5)
    assert message.status_at(READ) == T0


def test_duplicate_receipts_are_no_ops() -> None:
    message = _accepted()
    assert message.record_receipt(DELIVERED, "wamid.1", T0, Pricing("PMP", "utility"))
    version = message.version
    assert not message.record_receipt(DELIVERED, "wamid.1", T0, Pricing("PMP", "utility"))
    assert not message.record_receipt(DELIVERED, "wamid.1", T0 + timedelta(seconds=3))  # a later copy
    assert message.version == version


def test_failed_after_a_positive_status_is_recorded_but_does_not_undo_it() -> None:
    message = _accepted()
    message.record_receipt(DELIVERED, "wamid.1", T0)
    assert message.record_failure(FailureClass.PERMANENT, T0 + timedelta(seconds=1), provider_message_id="wamid.1",
                                  provider_code="131026")
    assert message.status is MessageStatus.DELIVERED
    assert message.failure is not None
    assert message.failure.provider_code == "131026"
    assert message.failure.attempt == 1  # found from the provider message id


def test_sent_also_outranks_a_later_failure() -> None:
    message = _accepted()
    message.record_receipt(SENT, "wamid.1", T0)
    message.record_failure(FailureClass.RETRYABLE, T0 + timedelta(seconds=1))
    assert message.status is MessageStatus.SENT
    assert message.failure is not None


def test_a_failure_of_the_current_attempt_shows_as_failed_until_a_retry_is_scheduled() -> None:
    message = _accepted()
    message.record_failure(FailureClass.THROTTLED, T0, provider_code="130429", retry_after_ms=1000)
    assert message.status is MessageStatus.FAILED
    message.schedule_retry(T0 + timedelta(seconds=1), FailureClass.THROTTLED)
    assert message.status is MessageStatus.RETRY_SCHEDULED
    assert message.attempt_dispatch() == 2
    assert message.status is MessageStatus.DISPATCHING  # attempt 1's failure is history now
    message.accept("wamid.2")
    message.record_receipt(SENT, "wamid.2", T0 + timedelta(seconds=2))
    assert message.status is MessageStatus.SENT


def test_a_repeated_acceptance_is_a_no_op_but_a_different_one_is_refused() -> None:
    message = _accepted("wamid.1")
    assert not message.accept("wamid.1")
    with pytest.raises(InvalidTransition, match="cannot accept while accepted"):
        message.accept("wamid.other")


@pytest.mark.parametrize(
    ("prepare", "command", "error"),
    [
        (lambda m: None, lambda m: m.route(Channel.SMS, "s", "a"), "cannot route while requested"),
        (lambda m: m.render("x"), lambda m: m.attempt_dispatch(), "cannot attempt dispatch while rendered"),
        (lambda m: None, lambda m: m.accept("wamid"), "cannot accept while requested"),
        (lambda m: m.suppress(SuppressionReason.NO_CONSENT), lambda m: m.render("x"), "while suppressed"),
    ],
)
def test_commands_are_refused_in_the_wrong_phase(prepare: Any, command: Any, error: str) -> None:
    message = _requested()
    prepare(message)
    with pytest.raises(InvalidTransition, match=error):
        command(message)


def test_nothing_is_suppressed_retried_or_expired_once_it_reached_the_provider() -> None:
    message = _accepted()
    with pytest.raises(InvalidTransition, match="suppress"):
        message.suppress(SuppressionReason.OPTED_OUT)
    message.record_receipt(SENT, "wamid.1", T0)
    with pytest.raises(InvalidTransition, match="already reported it sent"):
        message.schedule_retry(T0, FailureClass.RETRYABLE)
    with pytest.raises(InvalidTransition, match="already reported it sent"):
        message.expire("too late")


def test_deferral_keeps_the_reason_and_time() -> None:
    message = _requested()
    message.render("Hi")
    message.defer(T0 + timedelta(hours=8), DeferralReason.QUIET_HOURS)
    assert (message.phase, message.deferred_until) == (MessagePhase.DEFERRED, T0 + timedelta(hours=8))
    message.route(Channel.WHATSAPP, "phone-1", "4790000000")
    assert message.phase is MessagePhase.ROUTED


def test_fallback_needs_a_new_route_on_the_new_channel() -> None:
    message = _accepted()
    message.record_failure(FailureClass.WINDOW_CLOSED, T0, provider_code="131047")
    message.fall_back(Channel.SMS, "whatsapp window closed")
    assert message.status is MessageStatus.FALLING_BACK
    assert message.routing is None
    with pytest.raises(DomainError, match="fell back to sms"):
        message.route(Channel.WHATSAPP, "phone-1", "4790000000")
    message.route(Channel.SMS, "sender-1", "+4790000000")
    assert message.attempt_dispatch() == 2


def test_dead_lettering_records_attempts_and_the_last_failure_class() -> None:
    message = _accepted()
    message.record_failure(FailureClass.ACCOUNT, T0, provider_code="131042")
    message.dead_letter("payment issue at the provider")
    event = message.collect_events()[-1]
    assert isinstance(event, Message.DeadLettered)
    assert (event.attempts, event.last_failure_class) == (1, FailureClass.ACCOUNT)
    assert message.closed
    assert message.status is MessageStatus.DEAD_LETTERED


def test_receipts_after_closing_are_still_recorded() -> None:
    message = _accepted()
    message.dead_letter("gave up")
    assert message.record_receipt(DELIVERED, "wamid.1", T0)
    assert message.status is MessageStatus.DELIVERED


def test_times_must_be_timezone_aware_and_are_kept_to_the_millisecond() -> None:
    message = _accepted()
    with pytest.raises(DomainError, match="timezone-aware"):
        message.record_receipt(SENT, "wamid.1", datetime(2026, 3, 1, 12, 0))
    message.record_receipt(SENT, "wamid.1", T0.replace(microsecond=123_456))
    assert message.status_at(SENT) == T0.replace(microsecond=123_000)
