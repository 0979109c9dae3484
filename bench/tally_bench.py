"""Throughput of the tally worker against the raw aiokafka consume-then-produce rate on the same broker."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench._common import benchmark_broker, peak_rss_mb, print_machine
from streams.tally import TallyConfig
from switchboard.groups import wait_for_stable_group
from switchboard.kafka_io import new_producer
from switchboard.topics import TopicSpec, ensure_topics
from switchboard.workers import WorkerProcess

BENCH_PORT = 24092  # below the ephemeral port range (32768-60999), so no client socket can hold it


async def produce_orders(bootstrap: str, topic: str, count: int) -> None:
    producer = new_producer(bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = []
        for n in range(count):
            value = json.dumps({"order_id": f"o-{n}", "amount_cents": n % 10_000}).encode()
            futures.append(await producer.send(topic, value, key=f"cust-{n % 1000}".encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume_produce(bootstrap: str, source: str, sink: str, count: int) -> float:
    """Records/s of a plain aiokafka loop: read a batch, produce each record onward, await the batch's acks."""
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"bench-raw-{uuid.uuid4().hex[:6]}", enable_auto_commit=False)
    producer = new_producer(bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    done, started = 0, 0.0
    try:
        while done < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if batches and not started:
                started = time.perf_counter()
            futures = [await producer.send(sink, r.value, key=r.key) for rs in batches.values() for r in rs]
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(futures)
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()


async def output_span(bootstrap: str, topic: str, count: int, timeout: float) -> tuple[float, int]:
    """Seconds between the first and last output record (their broker timestamps), and how many were seen."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    first, last, seen = None, 0, 0
    deadline = time.monotonic() + timeout
    try:
        while seen < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    first = record.timestamp if first is None else min(first, record.timestamp)
                    last = max(last, record.timestamp)
                    seen += 1
    finally:
        await consumer.stop()
    return (last - (first or last)) / 1000, seen


async def bench_tally(bootstrap: str, count: int, partitions: int) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    state = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    config = TallyConfig(bootstrap=bootstrap, data_dir=str(state / "state"), app_id=f"{prefix}app",
                         topic_prefix=prefix, partitions=partitions)
    await ensure_topics(bootstrap, [*config.topic_specs(), TopicSpec(f"{prefix}raw-out", partitions)])
    await produce_orders(bootstrap, config.orders_topic, count)

    raw_rate = await raw_consume_produce(bootstrap, config.orders_topic, f"{prefix}raw-out", count)
    print(f"raw aiokafka consume->produce: {raw_rate:,.0f} records/s")

    worker = WorkerProcess(config, state / "worker.log")
    worker.start()
    try:
        await wait_for_stable_group(bootstrap, config.app_id, members=1, timeout=120)
        span, seen = await output_span(bootstrap, config.tallies_topic, count, timeout=600)
        memory = peak_rss_mb(worker._require_started().pid)
    finally:
        worker.stop()
        shutil.rmtree(state, ignore_errors=True)
    rate = (seen - 1) / span if span > 0 else float("nan")
    print(f"tally worker (faust, RocksDB table, awaited output): {rate:,.0f} records/s over {seen:,} records")
    print(f"ratio to raw aiokafka: {rate / raw_rate:.2f}")
    print(f"worker peak RSS: {memory:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    print_machine()
    with benchmark_broker("bench", BENCH_PORT) as broker:
        asyncio.run(bench_tally(broker.bootstrap, args.records, args.partitions))


if __name__ == "__main__":
    main()
