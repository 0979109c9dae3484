"""The read models' folds: message status, the funnel, latencies and usage, idempotent under redelivery."""

from __future__ import annotations

from typing import Any

from projections import (
    DeliveryStatsProjection,
    MemoryStore,
    MessageStatusProjection,
    funnel_key,
    latency_key,
    message_key,
    rates,
    recipient_key,
    usage_key,
)
from projections._delivery_stats import LATENCY_BUCKETS_MS
from tests.unit.projections.history import delivered_and_read, fell_back

Projection = MessageStatusProjection | DeliveryStatsProjection


def fold(projection: Projection, events: list[tuple[str, dict[str, Any]]]) -> MemoryStore:
    store = MemoryStore()
    for event_type, payload in events:
        store.commit(projection.apply(store.get, event_type, payload), {})
    return store


def test_the_status_row_follows_a_message_to_read() -> None:
    row = fold(MessageStatusProjection(), delivered_and_read()).get(message_key("m1"))
    assert row is not None
    assert (row["status"], row["attempts"], row["channels"]) == ("read", 1, ["whatsapp"])
    assert set(row["times"]) >= {"requested", "accepted", "sent", "delivered", "read"}
    assert row["provider_message_ids"] == ["wamid.1"]


def test_the_status_row_of_a_fallback_keeps_the_channels_and_the_error() -> None:
    store = fold(MessageStatusProjection(), fell_back())
    row = store.get(message_key("m2"))
    assert row is not None
    assert (row["status"], row["channels"], row["attempts"]) == ("accepted", ["whatsapp", "sms"], 2)
    assert row["errors"][0]["code"] == "131026"
    assert store.get(recipient_key("contact-m2")) == ["m2"]


def test_redelivered_events_change_nothing() -> None:
    events = delivered_and_read() + fell_back()
    for projection in (MessageStatusProjection(), DeliveryStatsProjection()):
        once, twice = fold(projection, events), fold(projection, events + events[3:9] + events)
        assert list(once.items()) == list(twice.items())


def test_the_funnel_counts_each_stage_once_per_message() -> None:
    store = fold(DeliveryStatsProjection(), delivered_and_read() + fell_back())
    funnel = store.get(funnel_key("acme", "2026-11-25", "order_shipped"))
    assert funnel is not None
    assert funnel["total"] == {"requested": 2, "accepted": 2, "sent": 1, "delivered": 1, "read": 1, "failed": 1,
                               "fell_back": 1}
    assert funnel["by_channel"]["sms"] == {"accepted": 1}
    assert rates(funnel["total"])["read_of_delivered"] == 1.0


def test_latencies_land_in_their_buckets() -> None:
    store = fold(DeliveryStatsProjection(), delivered_and_read())
    latency = store.get(latency_key("acme", "2026-11-25"))
    assert latency is not None
    bucket = {name: counts.index(1) for name, counts in latency.items()}
    assert LATENCY_BUCKETS_MS[bucket["requested_to_accepted"]] == 500  # 300 ms
    assert LATENCY_BUCKETS_MS[bucket["accepted_to_delivered"]] == 2500  # 1.7 s from acceptance to the receipt
    assert LATENCY_BUCKETS_MS[bucket["delivered_to_read"]] == 60_000  # 58 s


def test_usage_counts_a_billable_conversation_once() -> None:
    store = fold(DeliveryStatsProjection(), delivered_and_read() + fell_back())
    assert store.get(usage_key("acme", "2026-11-25")) == {"utility": 1}
