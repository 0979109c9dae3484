"""Acknowledgement rate of the webhook receiver: signature check plus a durable (acks=all) Kafka write before 200."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench._common import benchmark_broker, peak_rss_mb, print_machine
from bench.pipeline_bench import process_cpu
from connectors import SIGNATURE_HEADER, hub_signature
from connectors.receiver import RAW_TOPIC
from connectors.whatsapp import ENV_APP_SECRET, ENV_VERIFY_TOKEN
from switchboard.localkafka import project_root

BENCH_PORT = 24192  # 24092, 21092 and 19092 belong to other benchmarks and clusters; below the ephemeral range
APP_SECRET = "bench-app-secret"
READY_LINE = re.compile(r"webhook receiver on http://[^:/]+:(\d+)/")
WARMUP = 200  # requests before the measured ones (connections, producer metadata); counted in the topic check


def status_webhook(n: int) -> bytes:
    """A WhatsApp Cloud API status webhook as Meta sends it (compact JSON, two statuses), about 1 KB, unique per n."""
    def wamid(kind: str) -> str:
        return "wamid." + base64.b64encode(f"HBgLMTY1NTU1NTEyMzQVAgARGBI{kind}{n:012d}".encode()).decode()

    now = 1_764_000_000 + n
    statuses = [
        {"id": wamid("S"), "status": "sent", "timestamp": str(now), "recipient_id": "16505551234",
         "biz_opaque_callback_data": f"msg-{uuid.UUID(int=2 * n)}",
         "conversation": {"id": f"{n:032x}", "expiration_timestamp": str(now + 86_400),
                          "origin": {"type": "utility"}},
         "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}},
        {"id": wamid("D"), "status": "delivered", "timestamp": str(now + 1), "recipient_id": "16505554321",
         "biz_opaque_callback_data": f"msg-{uuid.UUID(int=2 * n + 1)}",
         "conversation": {"id": f"{n + 1:032x}", "origin": {"type": "utility"}},
         "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}},
    ]
    body = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "metadata": {"display_phone_number": "15550783881",
                                                     "phone_number_id": "106540352242922"},
                                        "statuses": statuses}}]}]}
    return json.dumps(body, separators=(",", ":")).encode()


def start_receiver(bootstrap: str, prefix: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`switchboard receiver` in its own process on an ephemeral port; returns once it prints where it listens."""
    env = {**os.environ, ENV_APP_SECRET: APP_SECRET, ENV_VERIFY_TOKEN: "bench-verify-token"}
    command = [str(project_root() / ".venv" / "bin" / "switchboard"), "receiver", "--bootstrap", bootstrap,
               "--host", "127.0.0.1", "--port", "0", "--topic-prefix", prefix]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = READY_LINE.search(log.read_text(errors="replace"))
        if found:
            return process, int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop_receiver(process)
    raise RuntimeError(f"the receiver did not start; its output:\n{log.read_text(errors='replace')[-3000:]}")


def stop_receiver(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def drive(url: str, bodies: list[tuple[bytes, str]], concurrency: int) -> tuple[list[float], Counter[str], float]:
    """POSTs every body with at most `concurrency` in flight; per-request seconds, status counts, wall seconds."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            for raw, signature in queue:
                headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
                began = time.perf_counter()
                try:
                    async with session.post(url, data=raw, headers=headers) as response:
                        await response.read()
                        statuses[str(response.status)] += 1
                except aiohttp.ClientError as error:
                    statuses[type(error).__name__] += 1
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, statuses, wall


async def raw_topic_count(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)  # subscribed: metadata known
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"no partitions known for {topic}")
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench_webhooks(bootstrap: str, requests: int, concurrency: int, py_spy: str | None, profile_out: str) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    bodies = [(raw, hub_signature(raw, APP_SECRET)) for raw in map(status_webhook, range(WARMUP + requests))]
    sizes = [len(raw) for raw, _ in bodies]
    print(f"body: WhatsApp status webhook, {min(sizes)}-{max(sizes)} bytes, signed (X-Hub-Signature-256)")
    state = Path(tempfile.mkdtemp(prefix="sb-wh-bench-"))
    receiver, port = start_receiver(bootstrap, prefix, state / "receiver.log")
    profiler = None
    try:
        url = f"http://127.0.0.1:{port}/webhooks/whatsapp"
        asyncio.run(drive(url, bodies[:WARMUP], min(concurrency, 8)))
        if py_spy:
            profiler = subprocess.Popen([py_spy, "record", "-p", str(receiver.pid), "-d", "10", "-o", profile_out,
                                         "-f", "raw", "--nonblocking"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu_before = process_cpu(receiver.pid)
        latencies, statuses, wall = asyncio.run(drive(url, bodies[WARMUP:], concurrency))
        cpu = process_cpu(receiver.pid) - cpu_before
        memory = peak_rss_mb(receiver.pid)
    finally:
        if profiler is not None:
            profiler.wait(timeout=30)
        stop_receiver(receiver)
    accepted = statuses["200"]
    stored = asyncio.run(raw_topic_count(bootstrap, prefix + RAW_TOPIC))
    shutil.rmtree(state, ignore_errors=True)
    ordered = sorted(latencies)
    others = {status: count for status, count in statuses.items() if status != "200"}
    print(f"requests: {requests:,} (after {WARMUP} warm-up), concurrency: {concurrency}")
    print(f"acknowledged (200): {accepted:,}; other answers: {others or 'none'}")
    print(f"rate: {accepted / wall:,.0f} acks/s over {wall:.2f} s")
    print(f"latency: p50 {percentile(ordered, 0.50) * 1000:.1f} ms, p99 {percentile(ordered, 0.99) * 1000:.1f} ms, "
          f"max {ordered[-1] * 1000:.1f} ms, mean {statistics.fmean(ordered) * 1000:.1f} ms")
    print(f"receiver CPU: {cpu:.2f} s, {cpu / max(accepted, 1) * 1e6:.0f} µs per acknowledged webhook; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"receiver peak RSS: {memory:.0f} MiB")
    expected = WARMUP + accepted  # the warm-up requests were accepted too (checked by this count)
    verdict = "OK" if stored == expected else "MISMATCH"
    print(f"raw topic {prefix + RAW_TOPIC}: {stored:,} records, expected {expected:,} "
          f"({WARMUP} warm-up + {accepted:,} measured): {verdict}")
    if py_spy:
        print(f"py-spy profile of the receiver (10 s, raw format): {profile_out}")
    if verdict != "OK" or others:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--py-spy", help="path to py-spy: record the receiver for 10 s while the load runs")
    parser.add_argument("--profile-out", default="/tmp/wh.txt", help="where py-spy writes (default /tmp/wh.txt)")
    args = parser.parse_args()
    print_machine()
    with benchmark_broker("bench-webhooks", BENCH_PORT) as broker:
        bench_webhooks(broker.bootstrap, args.requests, args.concurrency, args.py_spy, args.profile_out)


if __name__ == "__main__":
    main()
