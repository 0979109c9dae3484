"""CPU per raw webhook of `switchboard normaliser` at a high rate: a burst of signed-and-stored status webhooks.

The normaliser runs as its own process on fresh topics; once it is ready, `--webhooks` status webhooks (one status
each, as the receiver stores them: headers channel, received_at, signature-verified, content-sha256; each a receipt
of a message of ours) are written to the raw topic at once, and the figure is the normaliser's CPU from the first
record until its group has committed the last one, divided by the count.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench._common import benchmark_broker, print_machine
from bench._declaration import SENDER
from bench.e2e_bench import BENCH_PORT, declaration
from bench.pipeline_bench import process_cpu
from connectors.receiver import KafkaWebhookSink
from connectors.whatsapp_simulator import status_object, status_webhook_body
from streams.pipeline import send_reference
from streams.pipeline.app import PipelineSettings
from switchboard._demo_stack import NORMALISER_BANNER, NormaliserCommand, Processes, wait_for_line
from switchboard.kafka_io import new_producer
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess

STATUSES = ("sent", "delivered", "read")


def raw_webhook(n: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The n-th status webhook as the receiver stores it: compact body and the receiver's headers."""
    contact, message = str(uuid.UUID(int=n // 3 + 1)), str(uuid.UUID(int=10**12 + n // 3))
    status = status_object(f"wamid.bench{n // 3:012d}", STATUSES[n % 3], 1_764_000_000 + n, f"49171{n // 3:08d}",
                           callback_data=send_reference(contact, message))
    body = json.dumps(status_webhook_body("200000000000001", SENDER, "15550001111", [status]),
                      separators=(",", ":")).encode()
    headers = {"channel": "whatsapp", "received_at": str(int(time.time() * 1000)), "signature-verified": "true",
               "content-sha256": hashlib.sha256(body).hexdigest()}
    return body, [(name, value.encode()) for name, value in headers.items()]


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum([await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions)])
    finally:
        await consumer.stop()


def _declare(root: Path, prefix: str, bootstrap: str, partitions: int) -> PipelineSettings:
    """The topics' settings, and a declaration with the bench's channel (its sends go nowhere: none are made)."""
    settings = PipelineSettings(bootstrap=bootstrap, data_dir=str(root / "state"), config_path=str(root / "p.toml"),
                                app_id=f"{prefix}pipeline", topic_prefix=prefix, partitions=partitions)
    Path(settings.config_path).write_text(declaration(partitions, "http://127.0.0.1:9"))
    return settings


async def run(bootstrap: str, webhooks: int, partitions: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="sb-bench-norm-"))
    prefix = f"norm-{uuid.uuid4().hex[:6]}-"
    settings = _declare(root, prefix, bootstrap, partitions)
    sink = KafkaWebhookSink(bootstrap, prefix=prefix, partitions=partitions)
    await ensure_topics(bootstrap, [*settings.topic_specs(), *sink.topic_specs()])
    processes = Processes()
    normaliser = processes.start(WorkerProcess(NormaliserCommand(bootstrap, prefix, settings.config_path),
                                               root / "normaliser.log"))
    try:
        await wait_for_line(normaliser, NORMALISER_BANNER, processes, 120)
        records = [raw_webhook(n) for n in range(webhooks)]
        assert normaliser.pid is not None
        cpu_before, started = process_cpu(normaliser.pid), time.perf_counter()
        producer = new_producer(bootstrap, linger_ms=5, max_batch_size=256 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(sink.raw_topic, body, key=dict(headers)["content-sha256"],
                                           headers=headers) for body, headers in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        while await committed(bootstrap, f"{prefix}normaliser", sink.raw_topic, partitions) < webhooks:
            processes.check("normalising")
            await asyncio.sleep(0.2)  # polling the group's committed offsets: the condition waited on
        cpu, seconds = process_cpu(normaliser.pid) - cpu_before, time.perf_counter() - started
    finally:
        processes.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    print(f"normaliser: {webhooks:,} raw status webhooks in {seconds:.1f} s ({webhooks / seconds:,.0f}/s), "
          f"CPU {cpu:.2f} s = {cpu / webhooks * 1e6:.0f} µs per webhook; load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    print_machine()
    with benchmark_broker("bench-suite", BENCH_PORT) as broker:
        asyncio.run(run(broker.bootstrap, args.webhooks, args.partitions))


if __name__ == "__main__":
    main()
