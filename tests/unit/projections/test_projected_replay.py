"""Replay with projection-specific decoding (only the declared fields, timestamps as milliseconds): the same rows."""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from bench._replay_history import history
from projections import DeliveryStatsProjection, MemoryStore, MessageStatusProjection, Progress
from projections._message_status import iso_millis
from projections._runner import _fewer_collections, _fold_batch
from schemas import from_millis
from schemas.codec import default_codec

TOPIC = "sb.events.message"
Fold = MessageStatusProjection | DeliveryStatsProjection


class FullDecode:
    """The projection as replays ran it before: no `reads`, so every field decoded, timestamps as datetimes."""

    def __init__(self, inner: Fold) -> None:
        self.inner, self.topic = inner, inner.topic

    def apply(self, lookup: Callable[[str], Any], event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        return self.inner.apply(lookup, event_type, payload)


def _partitioned(events: int, partitions: int = 3) -> dict[int, list[bytes]]:
    """The benchmark's generated history (every lifecycle, redeliveries, interleaved), keyed by contact."""
    by_partition: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for key, value in history(events, contacts=200, seed=11):
        by_partition[sum(key.encode()) % partitions].append(value)
    return by_partition


def _replayed(projection: Any, values: dict[int, list[bytes]], size: int) -> MemoryStore:
    store, done, pending = MemoryStore(), Progress(), set(values)
    ends = {p: len(records) for p, records in values.items()}
    for start in range(0, max(ends.values()), size):
        batch = {TopicPartition(TOPIC, p): [ConsumerRecord(TOPIC, p, offset, 0, 0, None, value, None, 0, 0, [])
                                            for offset, value in enumerate(records) if start <= offset < start + size]
                 for p, records in values.items()}
        rows, positions, _ = _fold_batch(projection, store.get, batch, ends, pending, done)
        store.commit(rows, positions)
    assert done.applied == sum(ends.values())
    return store


@pytest.mark.parametrize("projection", [MessageStatusProjection(), DeliveryStatsProjection()], ids=lambda p: p.name)
def test_replay_rows_equal_the_full_decode_rows_on_a_generated_history(projection: Fold) -> None:
    values = _partitioned(6000)
    expected = _replayed(FullDecode(projection), values, 500)
    replayed = _replayed(projection, values, 500)
    assert list(replayed.items()) == list(expected.items())
    assert replayed.positions() == expected.positions()
    assert len(list(expected.items())) > 500  # the history made many rows: the comparison is not vacuous


def test_the_history_decodes_through_the_generated_readers_not_the_full_codec() -> None:
    decode = default_codec().projected(MessageStatusProjection.reads)
    value = _partitioned(50)[0][0]
    event_type, payload = decode(value) or ("", {})
    assert event_type == "MessageRequested"
    assert set(payload) == {"envelope", "contact_id", "category", "template_name"}
    assert set(payload["envelope"]) == {"aggregate_id", "aggregate_version", "occurred_at", "tenant_id"}
    assert isinstance(payload["envelope"]["occurred_at"], int)  # milliseconds, not a datetime


@pytest.mark.parametrize("millis", [0, 1, 999, 1000, -1, -1001, 1_767_323_045_678, 1_767_323_045_000, 1_767_323_045_070,
                                    253_402_300_799_999])
def test_times_from_milliseconds_format_as_the_decoded_datetimes_do(millis: int) -> None:
    assert iso_millis(millis) == from_millis(millis).isoformat()
    assert iso_millis(millis) == iso_millis(millis)  # the cached second gives the same text again


def test_collections_are_rarer_during_a_run_and_as_before_after_it() -> None:
    before = gc.get_threshold()
    with _fewer_collections():
        assert gc.get_threshold()[0] > before[0]
        assert gc.isenabled()
    assert gc.get_threshold() == before
