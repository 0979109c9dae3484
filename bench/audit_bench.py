"""`bin/bench audit`: how long `switchboard audit` reads a contact's partitions, whole and from `--since`.

The audit reads the contact's partition of `sb.commands`, `sb.events.message` and `sb.events.contact` to their
ends, comparing each record's key: the partitions also hold every other contact of the key's hash and, on the
commands topic, the partition clock's ticks (four a second per partition, about 2.4 million in `sb.commands`'
7 days). This writes such a history (a week of records, stamped evenly across it, the contact's own in the last
hour), then times the read whole and with `--since` an hour ago.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from bench._common import benchmark_broker, own_cpu_seconds, print_machine
from projections._audit_log import read_key
from switchboard.kafka_io import new_producer
from switchboard.topics import TopicSpec, ensure_topics

__all__ = ["main"]

BENCH_PORT = 32092  # the audit's own broker; 24092-26092, 31092, 31692 and 31892 belong to other benchmarks
WEEK_MS = 7 * 24 * 3_600_000
HOUR_MS = 3_600_000
CONTACT = "contact-under-audit"
TOPICS = ("sb.commands", "sb.events.message", "sb.events.contact")
TICK = b'{"kind":"tick","at":1764160000.25}'


async def write_history(bootstrap: str, records: int) -> int:
    """`records` others' records per topic over the past week, then the contact's own in its last hour (5
    commands, 13 message events, 5 contact events); the newest record's time in ms."""
    await ensure_topics(bootstrap, [TopicSpec(name, 1) for name in TOPICS])
    now_ms = int(time.time() * 1000)
    producer = new_producer(bootstrap, linger_ms=50, max_batch_size=1 << 20)
    await producer.start()
    try:
        for topic in TOPICS:
            stamps = (now_ms - WEEK_MS + i * (WEEK_MS - HOUR_MS) // records for i in range(records))
            await _write(producer, topic, ((b"tick" if topic == TOPICS[0] else b"other", TICK, t) for t in stamps))
            own = 13 if topic == TOPICS[1] else 5  # a message's events; its commands, or the contact's events
            await _write(producer, topic, ((CONTACT.encode(), b'{"own":true}', now_ms - HOUR_MS // 2 + i)
                                           for i in range(own)))
    finally:
        await producer.stop()
    return now_ms


async def _write(producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes, bytes, int]]) -> None:
    """The records, stamped as given, in full record batches to partition 0."""
    futures, batch = [], producer.create_batch()
    for key, value, stamp in records:
        if batch.append(key=key, value=value, timestamp=stamp) is None:
            futures.append(await producer.send_batch(batch, topic, partition=0))
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=stamp)
    if batch.record_count():
        futures.append(await producer.send_batch(batch, topic, partition=0))
    await asyncio.gather(*futures)


async def timed_read(bootstrap: str, since: datetime | None) -> tuple[int, int, float, float]:
    """(the contact's records found, records read, seconds, CPU seconds of this process)."""
    read: list[int] = [0]
    started, cpu = time.perf_counter(), own_cpu_seconds()
    found = await read_key(bootstrap, list(TOPICS), CONTACT, since,
                           lambda done, total: read.__setitem__(0, done))
    return sum(map(len, found.values())), read[0], time.perf_counter() - started, own_cpu_seconds() - cpu


async def run(bootstrap: str, records: int) -> None:
    newest = await write_history(bootstrap, records)
    print("| read | contact's records found | records read | seconds | records/s | CPU seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, since in (("whole week", None),
                         ("--since an hour ago", datetime.fromtimestamp((newest - HOUR_MS) / 1000, UTC))):
        found, read, seconds, cpu = await timed_read(bootstrap, since)
        print(f"| {label} | {found} | {read:,} | {seconds:.2f} | {read / seconds:,.0f} | {cpu:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="others' records per topic (default 1M)")
    args = parser.parse_args()
    print_machine()
    with benchmark_broker("bench-audit", BENCH_PORT) as broker:
        asyncio.run(run(broker.bootstrap, args.records))


if __name__ == "__main__":
    main()
