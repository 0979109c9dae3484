"""Follow-ups: failed messages at once, unread ones when their time has come, each once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from projections import MemoryStore
from projections._followups import FollowUpRules, FollowUps
from schemas import encode
from tests.unit.projections.history import T0, delivered_and_read, event, fell_back

RULES = FollowUps(FollowUpRules(read_within_seconds=3600, categories=frozenset({"utility"})))


def run(events: list[tuple[str, dict[str, Any]]]) -> tuple[MemoryStore, list[dict[str, Any]]]:
    store, raised = MemoryStore(), []
    for event_type, payload in events:
        rows, records = RULES.apply(store.get, event_type, payload)
        store.commit(rows, {})
        raised.extend(records)
    return store, raised


def dead_lettered() -> list[tuple[str, dict[str, Any]]]:
    return [*fell_back("m3")[:6], event("m3", 7, "MessageDeadLettered", 1, reason="no channel left", attempts=1)]


def test_a_dead_lettered_message_is_followed_up_once_with_its_reason() -> None:
    events = dead_lettered()
    _, raised = run(events + events)
    [followup] = raised
    assert (followup["reason"], followup["status"], followup["detail"]) == ("failed", "dead_lettered",
                                                                           "no channel left")
    assert followup["envelope"]["aggregate_id"] == "m3"
    encode(followup, "FollowUpRequired")  # a valid event of its schema


def test_an_unread_message_is_followed_up_when_its_time_comes() -> None:
    store, raised = run(fell_back("m2"))  # accepted on SMS at T0 + 0.5 s, never read
    assert raised == []
    rows, early = RULES.due(store.items("due:"), store.get, T0 + timedelta(minutes=59))
    assert early == []
    rows, due = RULES.due(store.items("due:"), store.get, T0 + timedelta(hours=1, seconds=1))
    [followup] = due
    assert (followup["reason"], followup["channel"], followup["envelope"]["aggregate_version"]) == ("not_read",
                                                                                                  "sms", 2)
    store.commit(rows, {})
    assert list(store.items("due:")) == []
    assert RULES.due(store.items("due:"), store.get, T0 + timedelta(days=2))[1] == []


def test_a_read_message_needs_no_follow_up() -> None:
    store, raised = run(delivered_and_read())
    assert raised == []
    assert list(store.items("due:")) == []
