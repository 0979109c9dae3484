"""aiokafka against the real broker: acks=all round trip, keys and headers kept, murmur2 like the Java client."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from switchboard.kafka_io import new_producer
from switchboard.topics import TopicSpec, ensure_topics

PARTITIONS = 6


async def test_round_trip_keeps_keys_headers_and_order(kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = f"{unique_prefix}roundtrip"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, PARTITIONS)])
    sent = [(f"recipient-{i % 5}".encode(), f"payload-{i}".encode(), [("trace", f"t-{i}".encode())])
            for i in range(50)]
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        acks = [await producer.send_and_wait(topic, value, key=key, headers=headers) for key, value, headers in sent]
    finally:
        await producer.stop()
    assert all(ack.offset >= 0 for ack in acks)

    received = await _read_all(kafka_bootstrap, topic, len(sent))
    assert sorted(received) == sorted((k, v, tuple(h)) for k, v, h in sent)
    _assert_per_key_order(received)


async def test_partitioner_matches_java_murmur2(kafka_bootstrap: str, unique_prefix: str, kafka_libs: Path,
                                                tmp_path: Path) -> None:
    topic = f"{unique_prefix}murmur2"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, PARTITIONS)])
    keys = [f"+5511{n:08d}" for n in range(40)] + ["21", "foobar", "a-little-bit-long-string"]
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        ours = {key: (await producer.send_and_wait(topic, b"x", key=key.encode())).partition for key in keys}
    finally:
        await producer.stop()
    assert ours == _java_partitions(kafka_libs, tmp_path, keys)
    assert len(set(ours.values())) == PARTITIONS  # the keys really spread, so the comparison means something


def _java_partitions(libs: Path, workdir: Path, keys: list[str]) -> dict[str, int]:
    source = workdir / "JavaPartitioner.java"
    shutil.copy(Path(__file__).parent / "data" / "JavaPartitioner.java", source)
    done = subprocess.run(["java", "-cp", f"{libs}/*", str(source), str(PARTITIONS), *keys],
                          capture_output=True, text=True, check=True, timeout=120)
    pairs = (line.rsplit(" ", 1) for line in done.stdout.splitlines())
    return {key: int(partition) for key, partition in pairs}


async def _read_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: list[tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]] = []
    try:
        while len(records) < count:
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"no records within 10 s after {len(records)} of {count}"
            records.extend((r.key, r.value, tuple(r.headers)) for batch in batches.values() for r in batch)
    finally:
        await consumer.stop()
    return records


def _assert_per_key_order(records: list[tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]]) -> None:
    by_key: dict[bytes, list[int]] = {}
    for key, value, _ in records:
        by_key.setdefault(key, []).append(int(value.decode().rsplit("-", 1)[1]))
    assert all(seq == sorted(seq) for seq in by_key.values())
