"""Provider receipts in any order and with any duplication leave a message in the same state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates import Channel, FailureClass, Message, MessageCategory, Pricing, ReceiptStatus, fold

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONTACT = UUID("00000000-0000-4000-8000-000000000001")

# Few distinct values, so ties (same time, same status, other pricing) come up often.
times = st.integers(0, 4).map(lambda s: T0 + timedelta(seconds=s))
pricings = st.none() | st.sampled_from([Pricing("PMP", "utility", None), Pricing("PMP", "marketing", True)])
receipts = st.tuples(st.just("receipt"), st.sampled_from(list(ReceiptStatus)), st.sampled_from(["wamid.1", "wamid.2"]),
                     times, pricings)
failures = st.tuples(st.just("failure"), st.sampled_from(list(FailureClass)), times,
                     st.none() | st.sampled_from(["131026", "130429"]), st.none() | st.just("wamid.1"),
                     st.none() | st.integers(0, 6000))
facts = st.lists(receipts | failures, min_size=1, max_size=6)


def _accepted() -> Message:
    message = Message.request(tenant_id="t1", contact_id=CONTACT, category=MessageCategory.UTILITY,
                              idempotency_key="receipts", body="Your parcel is on its way")
    message.render("Your parcel is on its way")
    message.route(Channel.WHATSAPP, "phone-1", "4790000000")
    message.attempt_dispatch()
    message.accept("wamid.1")
    return message


def _apply(message: Message, fact: tuple[Any, ...]) -> bool:
    if fact[0] == "receipt":
        _, status, provider_id, at, pricing = fact
        return message.record_receipt(status, provider_id, at, pricing)
    _, failure_class, at, code, provider_id, retry_after = fact
    return message.record_failure(failure_class, at, provider_code=code, provider_message_id=provider_id,
                                  retry_after_ms=retry_after)


def _state(message: Message) -> tuple[Any, ...]:
    """Everything receipts and failures decide; not version or timestamps, which count events."""
    return (
        message.status,
        dict(message.receipts),
        message.failure,
        [message.status_at(s) for s in ReceiptStatus],
        [message.reached(s) for s in ReceiptStatus],
    )


def _rank(message: Message) -> int:
    return max((s.rank for s in message.receipts), default=0)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), facts=facts)
def test_any_order_and_duplication_of_receipts_gives_the_same_state(data: st.DataObject, facts: list[Any]) -> None:
    duplicates = data.draw(st.lists(st.sampled_from(facts), max_size=4))
    shuffled = data.draw(st.permutations(facts + duplicates))
    in_order, reordered = _accepted(), _accepted()
    for fact in facts:
        _apply(in_order, fact)
    for fact in shuffled:
        _apply(reordered, fact)
    assert _state(reordered) == _state(in_order)


@settings(max_examples=100, deadline=None)
@given(facts=facts)
def test_status_never_moves_backwards_and_repeats_are_no_ops(facts: list[Any]) -> None:
    message = _accepted()
    for fact in facts:
        before = _rank(message)
        _apply(message, fact)
        assert _rank(message) >= before
    version = message.version
    assert not any(_apply(message, fact) for fact in facts)
    assert message.version == version


@settings(max_examples=100, deadline=None)
@given(facts=facts)
def test_the_recorded_receipt_events_fold_into_the_same_message(facts: list[Any]) -> None:
    message = _accepted()
    for fact in facts:
        _apply(message, fact)
    assert fold(Message, message.collect_events()) == message
