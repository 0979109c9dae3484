"""Replay safety: redelivered events are no-ops, gaps and strangers are refused, snapshot + tail = full fold."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from aggregates import (
    Channel,
    ConsentCategory,
    Contact,
    ForeignEvent,
    Message,
    MessageCategory,
    ReceiptStatus,
    ReplayError,
    VersionGap,
    fold,
    take_snapshot,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _message(key: str = "k1") -> Message:
    message = Message.request(tenant_id="t1", contact_id=uuid4(), category=MessageCategory.UTILITY,
                              idempotency_key=key, body="Your code is 123456")
    message.render("Your code is 123456")
    message.route(Channel.SMS, "sender-1", "+4790000000")
    message.attempt_dispatch()
    message.accept("SM1")
    message.record_receipt(ReceiptStatus.DELIVERED, "SM1", T0)
    return message


def test_folding_all_events_gives_the_live_aggregate() -> None:
    live = _message()
    events = live.collect_events()
    assert fold(Message, events) == live


def test_redelivered_events_are_skipped() -> None:
    live = _message()
    events = list(live.collect_events())
    redelivered = [events[0], events[1], events[0], events[2], events[1], *events[2:], events[-1]]
    assert fold(Message, redelivered) == live


def test_folding_an_already_applied_event_changes_nothing() -> None:
    live = _message()
    events = live.collect_events()
    version = live.version
    assert fold(Message, [events[2], events[-1]], start=live) is live
    assert live.version == version


def test_a_gap_in_versions_is_refused_with_a_clear_error() -> None:
    events = _message().collect_events()
    with pytest.raises(VersionGap, match=r"expected version 3, got 4; events 3\.\.3 are missing") as gap:
        fold(Message, [events[0], events[1], events[3]])
    assert (gap.value.expected, gap.value.found) == (3, 4)
    with pytest.raises(VersionGap, match="expected version 1, got 2"):
        fold(Message, events[1:])


def test_events_of_another_aggregate_are_refused() -> None:
    mine, theirs = _message("a").collect_events(), _message("b").collect_events()
    with pytest.raises(ForeignEvent, match="belongs to"):
        fold(Message, [*mine[:2], theirs[2]])
    with pytest.raises(ForeignEvent, match="expected a Contact"):
        fold(Contact, mine)
    with pytest.raises(ReplayError, match="no events"):
        fold(Message, [])


def test_snapshot_plus_tail_equals_the_full_fold() -> None:
    live = _message()
    events = live.collect_events()
    snapshot = take_snapshot(fold(Message, events[:3]))
    assert snapshot.originator_version == 3
    assert fold(Message, events[3:], start=snapshot) == fold(Message, events) == live
    assert fold(Message, events, start=snapshot) == live  # events before the snapshot are skipped


def test_a_snapshot_is_not_changed_by_later_commands_on_either_side() -> None:
    contact = Contact.register(tenant_id="t1", external_ref="crm-1", addresses={Channel.WHATSAPP: "47"})
    snapshot = take_snapshot(contact)
    contact.grant_consent(Channel.WHATSAPP, ConsentCategory.MARKETING, "web_form")
    restored = fold(Contact, [], start=snapshot)
    assert restored.consents == {}
    restored.grant_consent(Channel.WHATSAPP, ConsentCategory.UTILITY, "web_form")
    assert fold(Contact, [], start=snapshot).consents == {}
