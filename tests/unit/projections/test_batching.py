"""Replay folds whole batches in memory and keeps recent rows across them: the same rows as one event at a time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from projections import DeliveryStatsProjection, MemoryStore, MessageStatusProjection, Progress
from projections._rows import RecentRows
from projections._runner import _fold_batch, _keys_read
from schemas import default_registry, encode, make_envelope
from schemas._samples import sample
from tests.unit.projections.history import delivered_and_read, fell_back

TOPIC = "sb.events.message"


class CountingStore(MemoryStore):
    """A real in-memory store that also counts the reads it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, key: str) -> Any | None:
        self.reads.append(key)
        return super().get(key)


def _encoded(event_type: str, payload: dict[str, Any]) -> bytes:
    """The history's event made schema-complete (sample values for the fields it leaves out), encoded."""
    envelope = payload["envelope"]
    full = {**sample(default_registry().latest(event_type).expanded, nulls=True), **payload}
    full["envelope"] = make_envelope(aggregate_type="Message", aggregate_id=envelope["aggregate_id"],
                                     aggregate_version=envelope["aggregate_version"],
                                     occurred_at=envelope["occurred_at"], tenant_id=envelope["tenant_id"])
    return encode(full, event_type)


def _records(partitions: int = 2) -> dict[int, list[bytes]]:
    """Ten messages' histories, each message on one partition, some events delivered twice."""
    by_partition: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for n in range(10):
        history = delivered_and_read(f"m{n}") if n % 2 else fell_back(f"m{n}")
        events = history + history[2:4]  # a redelivery of two events, as after a rebalance
        by_partition[n % partitions] += [_encoded(event_type, payload) for event_type, payload in events]
    return by_partition


def _batches(values: dict[int, list[bytes]], size: int) -> list[dict[TopicPartition, list[ConsumerRecord[Any, Any]]]]:
    """The records as getmany would return them: up to `size` per partition per batch."""
    longest = max(map(len, values.values()))
    return [{TopicPartition(TOPIC, p): [ConsumerRecord(TOPIC, p, offset, 0, 0, None, value, None, 0, len(value), [])
                                        for offset, value in enumerate(records) if start <= offset < start + size]
             for p, records in values.items()} for start in range(0, longest, size)]


def _one_by_one(projection: MessageStatusProjection | DeliveryStatsProjection,
                values: dict[int, list[bytes]]) -> MemoryStore:
    store = MemoryStore()
    for p, records in values.items():
        for offset, value in enumerate(records):
            batch = {TopicPartition(TOPIC, p): [ConsumerRecord(TOPIC, p, offset, 0, 0, None, value, None, 0, 0, [])]}
            rows, positions, _ = _fold_batch(projection, store.get, batch, {p: 10**6}, {p}, Progress())
            store.commit(rows, positions)
    return store


@pytest.mark.parametrize("projection", [MessageStatusProjection(), DeliveryStatsProjection()], ids=lambda p: p.name)
@pytest.mark.parametrize(("size", "limit"), [(1, 0), (3, 2), (7, 5), (1000, 50_000)])
def test_batches_with_recent_rows_fold_to_the_same_rows_as_one_event_at_a_time(
        projection: MessageStatusProjection | DeliveryStatsProjection, size: int, limit: int) -> None:
    values = _records()
    expected = _one_by_one(projection, values)
    store = MemoryStore()
    recent = RecentRows(store, limit)
    done, pending = Progress(), set(values)
    ends = {p: len(records) for p, records in values.items()}
    for batch in _batches(values, size):
        rows, positions, _ = _fold_batch(projection, recent.get, batch, ends, pending, done)
        store.commit(rows, positions)
        recent.committed(rows)
    assert list(store.items()) == list(expected.items())
    assert store.positions() == ends
    assert done.applied == sum(ends.values())
    assert pending == set()


def test_records_at_or_past_the_target_are_left_for_later() -> None:
    values = _records()
    batch = _batches(values, 1000)[0]
    pending = {0, 1}
    rows, positions, _ = _fold_batch(MessageStatusProjection(), MemoryStore().get, batch, {0: 5, 1: 1000}, pending,
                                     Progress())
    assert positions == {0: 5, 1: len(values[1])}
    assert pending == {1}  # partition 0 reached its target; partition 1's target is further than its records
    assert {key for key in rows if key.startswith("msg:")} == {"msg:m0", "msg:m1", "msg:m3", "msg:m5", "msg:m7",
                                                             "msg:m9"}


def test_a_row_read_or_committed_lately_is_not_read_from_the_store_again() -> None:
    store = CountingStore()
    store.commit({"a": {"n": 1}}, {})
    recent = RecentRows(store, limit=10)
    assert recent.get("a") == {"n": 1}
    assert recent.get("a") == {"n": 1}
    assert recent.get("absent") is None
    assert recent.get("absent") is None  # "no row" is remembered too
    recent.committed({"b": {"n": 2}, "a": None})
    assert (recent.get("b"), recent.get("a")) == ({"n": 2}, None)
    assert store.reads == ["a", "absent"]


def test_rows_live_two_generations_of_limit_keys_then_are_read_again() -> None:
    store = CountingStore()
    store.commit({f"k{n}": n for n in range(10)}, {})
    recent = RecentRows(store, limit=3)
    for n in range(3):
        recent.get(f"k{n}")  # the third turns the generation over: k0..k2 are the older one now
    assert len(recent) == 3
    recent.get("k0")  # from the older generation, kept in the newer one
    recent.committed({"k3": 3, "k4": 4})  # turns over again: k0, k3, k4 are the older one, k1 and k2 dropped
    assert store.reads == ["k0", "k1", "k2"]
    assert [recent.get(key) for key in ("k0", "k3", "k4")] == [0, 3, 4]
    assert store.reads == ["k0", "k1", "k2"]
    assert recent.get("k1") == 1
    assert store.reads == ["k0", "k1", "k2", "k1"]


def test_a_zero_limit_keeps_nothing() -> None:
    store = CountingStore()
    recent = RecentRows(store, limit=0)
    recent.committed({"a": 1})
    recent.get("b")
    recent.get("b")
    assert (len(recent), store.reads) == (0, ["b", "b"])


class RoundTripStore(CountingStore):
    """A store whose every read is a round trip, as PostgreSQL's: it counts the batched reads separately."""

    batched_reads = True

    def __init__(self) -> None:
        super().__init__()
        self.batched: list[list[str]] = []

    def get_many(self, keys: Iterable[str]) -> dict[str, Any | None]:
        wanted = list(keys)
        self.batched.append(wanted)
        return {key: MemoryStore.get(self, key) for key in wanted}


@pytest.mark.parametrize("projection", [MessageStatusProjection(), DeliveryStatsProjection()], ids=lambda p: p.name)
@pytest.mark.parametrize("size", [3, 1000])
def test_a_round_trip_store_is_asked_once_per_batch_for_the_rows_the_fold_reads(
        projection: MessageStatusProjection | DeliveryStatsProjection, size: int) -> None:
    values = _records()
    expected = _one_by_one(projection, values)
    store = RoundTripStore()
    recent = RecentRows(store, 50_000)
    pending, ends = set(values), {p: len(records) for p, records in values.items()}
    batches = _batches(values, size)
    for batch in batches:
        recent.prefetch(_keys_read(projection, recent, batch, ends, pending))
        rows, positions, _ = _fold_batch(projection, recent.get, batch, ends, pending, Progress())
        store.commit(rows, positions)
        recent.committed(rows)
    assert list(store.items()) == list(expected.items())
    assert store.reads == []  # every row the folds needed came in the batched reads
    assert 1 <= len(store.batched) <= len(batches)
    read_keys = [key for keys in store.batched for key in keys]
    assert len(read_keys) == len(set(read_keys))  # no row asked for twice


def test_prefetch_reads_only_rows_not_held_and_holds_what_it_read() -> None:
    store = RoundTripStore()
    store.commit({"a": {"n": 1}, "b": {"n": 2}}, {})
    recent = RecentRows(store, limit=10)
    recent.committed({"a": {"n": 9}})
    recent.prefetch(["a", "b", "absent"])
    assert store.batched == [["b", "absent"]]
    assert [recent.peek(key) for key in ("a", "b", "absent", "other")] == [
        (True, {"n": 9}), (True, {"n": 2}), (True, None), (False, None)]
    recent.prefetch(["a", "b", "absent"])
    assert store.batched == [["b", "absent"]]  # all held: no second call
