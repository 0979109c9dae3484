"""The audit's key reads on the real broker: one partition, a time to start from, and progress as it goes."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from projections._audit_log import read_key
from switchboard.kafka_io import MURMUR2_PARTITIONER, new_producer
from switchboard.topics import TopicSpec, ensure_topics

HOUR_MS = 3_600_000


async def test_since_starts_each_partition_at_its_first_record_stamped_then_and_progress_reaches_the_end(
        kafka_bootstrap: str, unique_prefix: str) -> None:
    topic, key, now_ms = f"{unique_prefix}audit.log", "contact-1", int(time.time() * 1000)
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3)])
    partition = MURMUR2_PARTITIONER(key.encode(), [0, 1, 2], [0, 1, 2])
    # Three days of the contact's partition: two of its records then, one since, and others' records around them.
    stamps = [(now_ms - 72 * HOUR_MS, key, "old-1"), (now_ms - 48 * HOUR_MS, "someone-else", "x"),
              (now_ms - 47 * HOUR_MS, key, "old-2"), (now_ms - HOUR_MS, "someone-else", "y"),
              (now_ms - HOUR_MS, key, "new-1"), (now_ms, "someone-else", "z")]
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        for stamp, record_key, value in stamps:
            await producer.send_and_wait(topic, value.encode(), key=record_key.encode(), partition=partition,
                                         timestamp_ms=stamp)
    finally:
        await producer.stop()

    seen: list[tuple[int, int]] = []
    whole = await read_key(kafka_bootstrap, [topic], key, progress=lambda read, total: seen.append((read, total)))
    recent = await read_key(kafka_bootstrap, [topic], key, since=_at(now_ms - 2 * HOUR_MS))
    nothing = await read_key(kafka_bootstrap, [topic], key, since=_at(now_ms + HOUR_MS))

    assert [record.value for record in whole[topic]] == [b"old-1", b"old-2", b"new-1"]
    assert seen[-1] == (6, 6)  # every record of the partition read, the others' too
    assert [record.value for record in recent[topic]] == [b"new-1"]
    assert {record.partition for record in whole[topic]} == {partition}
    assert nothing[topic] == []


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
