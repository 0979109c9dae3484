"""Feeding a projection from its topic: batches applied with their positions, live or as a replay to a target."""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from projections._rows import RecentRows
from projections._store import ProjectionStore
from schemas.codec import ProjectedDecoder, default_codec

__all__ = ["Progress", "Projection", "catch_up", "differences", "end_offsets"]


Outputs = Callable[[list[dict[str, Any]]], Awaitable[None]]


class Projection(Protocol):
    """A pure fold: the rows one event changes (and records to publish), given a way to read current rows.

    The rows `lookup` returns are shared (with the batch in progress and the runner's recent rows): a projection
    never changes them in place, it returns new objects for the rows it changes. A projection may also have
    `reads`, the payload fields its fold uses ("envelope.aggregate_id", "channel"...): the runner then decodes only
    those (timestamps as the wire's milliseconds, see `schemas.from_millis`) and the fold must accept both forms.
    """

    topic: str

    def apply(self, lookup: Callable[[str], Any], event_type: str,
              payload: Mapping[str, Any]) -> dict[str, Any] | tuple[dict[str, Any], list[dict[str, Any]]]: ...


@dataclass
class Progress:
    """How far a run got: events applied, their rate, and the share of the target behind us."""

    applied: int = 0
    total: int = 0
    started: float = 0.0
    finished: float | None = None
    cpu_started: float = 0.0  # time.process_time() at the start
    cpu_seconds: float = 0.0  # the process's CPU from the start to the end of the run

    @property
    def seconds(self) -> float:
        """From the start to the end of the run (or to now while it runs)."""
        return max((self.finished or time.monotonic()) - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Events applied per second, consume + decode + fold + store writes."""
        return self.applied / self.seconds

    def line(self) -> str:
        share = self.applied / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        return f"[{bar:<30}] {self.applied:,}/{self.total:,} events  {self.rate:,.0f} events/s"


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> the offset after its last record, now."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()  # subscribing (without a group) fetches the topic's metadata
    try:
        ids = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in ids])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def catch_up(bootstrap: str, topic: str, projection: Projection, store: ProjectionStore,
                   target: Mapping[int, int], start: Mapping[int, int] | None = None,
                   progress: Callable[[Progress], None] | None = None, batch_size: int = 5000,
                   outputs: Outputs | None = None, recent_rows: int = 50_000) -> Progress:
    """Applies the topic's events from the store's positions (or `start`) up to `target`, then returns.

    A projection may also return records to publish (rows, records); `outputs` makes them durable before
    the positions that include their events are stored, so a crash repeats them rather than losing them.
    Rows read or written lately (about `recent_rows` to twice that) are kept across batches, so a message's
    later events need not read its row back from the store; this run is the store's only writer meanwhile.
    """
    begin = {p: store.positions().get(p, (start or {}).get(p, 0)) for p in target}
    done = Progress(total=sum(max(0, target[p] - begin[p]) for p in target), started=time.monotonic(),
                    cpu_started=time.process_time())
    pending = {p for p in target if begin[p] < target[p]}
    if not pending:
        return _finished(done)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    recent = RecentRows(store, recent_rows)
    try:
        consumer.assign([TopicPartition(topic, p) for p in pending])
        for p in pending:
            consumer.seek(TopicPartition(topic, p), begin[p])
        with _fewer_collections():
            while pending:
                batches = await consumer.getmany(timeout_ms=1000, max_records=batch_size)
                if store.batched_reads:
                    recent.prefetch(_keys_read(projection, recent, batches, target, pending))
                rows, positions, records = _fold_batch(projection, recent.get, batches, target, pending, done)
                if outputs is not None and records:
                    await outputs(records)
                store.commit(rows, positions)
                recent.committed(rows)
                if progress is not None:
                    progress(done)
    finally:
        await consumer.stop()
    return _finished(done)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic GC less often meanwhile: a run allocates containers by the million (rows, payloads), few of
    them garbage and none in cycles, and at the default threshold (700) the collections took some 13% of a replay's
    CPU, each one scanning the young rows again. Restored afterwards; garbage with cycles is still collected."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _finished(done: Progress) -> Progress:
    done.finished, done.cpu_seconds = time.monotonic(), time.process_time() - done.cpu_started
    return done


def _fold_batch(projection: Projection, read: Callable[[str], Any], batches: Mapping[TopicPartition, list[Any]],
                target: Mapping[int, int], pending: set[int],
                done: Progress) -> tuple[dict[str, Any], dict[int, int], list[dict[str, Any]]]:
    """The rows a batch changes (folded in memory, written once), the next positions and records to publish."""
    overlay: dict[str, Any] = {}
    positions: dict[int, int] = {}
    published: list[dict[str, Any]] = []

    def lookup(key: str) -> Any:
        return overlay[key] if key in overlay else read(key)

    decode, apply, update = _decoder(projection), projection.apply, overlay.update
    for tp, fetched in batches.items():
        end = target[tp.partition]
        records = fetched if not fetched or fetched[-1].offset < end else [r for r in fetched if r.offset < end]
        for record in records:
            decoded = decode(record.value)
            if decoded is not None:  # an unknown (newer) type changes nothing this model knows
                result = apply(lookup, *decoded)
                if isinstance(result, tuple):
                    update(result[0])
                    published.extend(result[1])
                else:
                    update(result)
        if records:
            positions[tp.partition] = records[-1].offset + 1
            done.applied += len(records)
        if positions.get(tp.partition, 0) >= end:
            pending.discard(tp.partition)
    return overlay, positions, published


def _keys_read(projection: Projection, recent: RecentRows, batches: Mapping[TopicPartition, list[Any]],
               target: Mapping[int, int], pending: set[int]) -> list[str]:
    """The stored rows a batch's fold will ask for, found by folding it once against the rows held in memory
    (a row not held reads as absent). A row whose key depends on another row's content may be missed; the real
    fold then reads it alone. Costs a second fold, so only for stores with a round trip per read."""
    missing: dict[str, None] = {}

    def read(key: str) -> Any | None:
        held, row = recent.peek(key)
        if not held:
            missing[key] = None
        return row

    # A fold that fails on a row it was not shown stops the search early; the real fold will read the rest.
    with contextlib.suppress(Exception):
        _fold_batch(projection, read, batches, target, set(pending), Progress())
    return list(missing)


def _decoder(projection: Projection) -> Callable[[bytes], tuple[str, dict[str, Any]] | None]:
    """The codec's full payload decode, or one of only the fields the projection declares it reads."""
    reads = getattr(projection, "reads", None)
    return default_codec().decode_payload if reads is None else _projected(tuple(reads))


@functools.cache
def _projected(reads: tuple[str, ...]) -> ProjectedDecoder:
    """One decoder per field list, so its generated readers are built once per process, not once per batch."""
    return default_codec().projected(reads)


def differences(left: ProjectionStore, right: ProjectionStore, limit: int = 20) -> list[str]:
    """Keys whose rows differ between two stores (at most `limit`), empty when they are identical."""
    rows_left, rows_right = dict(left.items()), dict(right.items())
    keys = sorted(set(rows_left) | set(rows_right))
    return [key for key in keys if rows_left.get(key) != rows_right.get(key)][:limit]


def print_progress(progress: Progress) -> None:
    """One refreshed line on stderr."""
    sys.stderr.write("\r" + progress.line())
    sys.stderr.flush()
