"""A batch's table rows written once per batch: changelog records straight to the producer, then the local store."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Iterable
from typing import Any

from faust.types import TP
from rocksdict import WriteBatch

from switchboard.kafka_io import send_in_batches

__all__ = ["LiveRows", "Outbox", "write_rows"]

# key, partition of the table (its source partition), value as the codec wrote it (None: the row is deleted)
Row = tuple[str, int, bytes | None]


async def write_rows(producer: Any, table: Any, rows: Iterable[Row]) -> None:
    """Writes each row's changelog record and local copy, one per key (the caller keeps the last per key).

    What faust's `table[key] = value` does per row, per batch instead: faust sends each changelog record through a
    buffer of 100 records drained one at a time (a batch writing more stalls the agents) and puts the row into
    RocksDB. Here the records go to the producer directly and each partition's rows are one RocksDB write batch.
    The records are not awaited: faust flushes the producer before it commits the batch's offsets, as it does for
    its own changelog sends. When a partition's last record is acknowledged, its offset becomes the store's
    persisted offset, so a restart reads the changelog only from there (faust's `_on_changelog_sent`).
    """
    topic = table.changelog_topic.get_topic_name()
    store = table.data
    by_partition: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
    last: dict[int, Awaitable[Any]] = {}
    for key, partition, value in rows:
        raw_key = store._encode_key(key)  # faust's table key codec (JSON for str keys)
        last[partition] = await producer.send(topic, raw_key, value, partition, None, None)
        by_partition[partition].append((raw_key, value))
    for partition, items in by_partition.items():
        batch = WriteBatch(raw_mode=True)
        for raw_key, value in items:
            if value is None:  # the changelog record is a tombstone: restores and compaction delete the key too
                batch.delete(raw_key)
                store._key_index.pop(raw_key, None)
                continue
            batch.put(raw_key, value)
            store._key_index[raw_key] = partition  # what faust's store keeps for reads outside a partition's event
        store._db_for_partition(partition).write(batch)
    for partition, future in last.items():
        future.add_done_callback(_persist(store, TP(topic, partition)))  # type: ignore[attr-defined]


def _persist(store: Any, tp: TP) -> Any:
    def done(future: Any) -> None:
        if not future.cancelled() and future.exception() is None:
            store.set_persisted_offset(tp, future.result().offset)
    return done


class LiveRows:
    """The rows this worker wrote last, as live objects, per owned partition: a row the next batches read again is
    not unpickled again. Bounded (the least recently used leave first); a revoked or newly assigned partition's rows
    are dropped, since another worker may have changed them."""

    def __init__(self, limit: int = 10_000) -> None:
        self._rows: OrderedDict[tuple[int, str], Any] = OrderedDict()
        self._limit = limit

    def get(self, partition: int, key: str) -> Any:
        """The row as last written, None when it is not held."""
        row = self._rows.get((partition, key))
        if row is not None:
            self._rows.move_to_end((partition, key))
        return row

    def put(self, partition: int, key: str, row: Any) -> None:
        """Holds a row just written (the object, which the next batch changes in place)."""
        self._rows[(partition, key)] = row
        self._rows.move_to_end((partition, key))
        while len(self._rows) > self._limit:
            self._rows.popitem(last=False)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drops every row of these partitions."""
        dropped = set(partitions)
        for key in [key for key in self._rows if key[0] in dropped]:
            del self._rows[key]


class Outbox:
    """A batch's output records, handed to the producer as one record batch per partition when the batch ends,
    instead of one `send` (a future, a partition lookup, faust's sensors) per record."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer  # aiokafka's producer, under faust's
        self._records: dict[tuple[str, int], list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]] = \
            defaultdict(list)
        self._topics: set[str] = set()

    async def add(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """Queues a record for the partition aiokafka's partitioner gives its key (as `send` would)."""
        if topic not in self._topics:
            await self._producer.client._wait_on_metadata(topic)
            self._topics.add(topic)
        partition = self._producer._partition(topic, None, None, None, key, value)
        self._records[(topic, partition)].append((key, value, headers))

    async def send(self) -> list[Awaitable[Any]]:
        """Hands every queued record to the producer, in order per partition; the futures of their delivery."""
        sent: list[Awaitable[Any]] = []
        for (topic, partition), records in self._records.items():
            sent.extend(await send_in_batches(self._producer, topic, partition, records))
        self._records.clear()
        return sent
