"""The seek faust relies on to re-read dropped records: aiokafka's skips never-committed partitions, ours does not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams._faust_fixes import seek_to_committed_or_beginning
from switchboard.kafka_io import new_producer
from switchboard.topics import TopicSpec, ensure_topics

RECORDS = 5


Positioned = tuple[AIOKafkaConsumer, TopicPartition]


@pytest.fixture
async def read_to_end(kafka_bootstrap: str, unique_prefix: str) -> AsyncIterator[Positioned]:
    """A group consumer whose position is past every record of a partition, as after faust dropped them."""
    topic = f"{unique_prefix}seek"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        for n in range(RECORDS):
            await producer.send_and_wait(topic, f"record-{n}".encode())
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"{unique_prefix}seek-group",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([tp])
    try:
        await _read(consumer, tp, RECORDS)
        yield consumer, tp
    finally:
        await consumer.stop()


async def test_aiokafka_leaves_a_never_committed_partition_where_it_is(
        read_to_end: Positioned) -> None:
    # The trap the fix exists for; if aiokafka ever rewinds here itself, this fails and the fix can go.
    consumer, tp = read_to_end
    assert await consumer.seek_to_committed() == {tp: None}
    assert await consumer.position(tp) == RECORDS


async def test_a_never_committed_partition_is_read_again_from_its_beginning(
        read_to_end: Positioned) -> None:
    consumer, tp = read_to_end
    assert await seek_to_committed_or_beginning(consumer) == {tp: None}  # faust's read offsets come from this
    assert await consumer.position(tp) == 0
    assert await _read(consumer, tp, RECORDS) == [f"record-{n}".encode() for n in range(RECORDS)]


async def test_a_changelog_partition_stays_where_faust_recovery_put_it(read_to_end: Positioned) -> None:
    consumer, tp = read_to_end
    assert await seek_to_committed_or_beginning(consumer, positioned_elsewhere={tp.topic}) == {tp: None}
    assert await consumer.position(tp) == RECORDS  # read from the start, a changelog would put old rows back


async def test_a_committed_partition_is_read_again_from_its_committed_offset(
        read_to_end: Positioned) -> None:
    consumer, tp = read_to_end
    await consumer.commit({tp: OffsetAndMetadata(3, "")})
    assert await seek_to_committed_or_beginning(consumer) == {tp: 3}
    assert await _read(consumer, tp, RECORDS - 3) == [b"record-3", b"record-4"]


async def _read(consumer: AIOKafkaConsumer, tp: TopicPartition, count: int) -> list[bytes]:
    values: list[bytes] = []
    while len(values) < count:
        batch = await consumer.getmany(tp, timeout_ms=10_000)
        assert batch, f"no records within 10 s after {len(values)} of {count}"
        values.extend(record.value for record in batch[tp] if record.value is not None)
    return values
