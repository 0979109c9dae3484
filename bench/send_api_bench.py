"""Send API rate: signed POST /v1/messages answered 202 once the request command is in Kafka (acks=all)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

from aggregates._secrets import hash_secret
from bench._common import benchmark_broker, peak_rss_mb, print_machine
from projections._runner import end_offsets
from projections.api import claims_topic_spec, signed_post_headers
from streams.pipeline.app import COMMAND_TOPIC_CONFIG
from switchboard.localkafka import project_root
from switchboard.topics import AUDIT_LOG_CONFIG, TopicSpec, ensure_topics

BENCH_PORT = 24292  # the other benchmarks use 24092 and 24192; below the ephemeral range
CLIENT, SECRET, KEY = "bench-client", "bench-signing-secret-0123456789", "sbk_bench-api-key-0123456789"
READY_LINE = re.compile(r"read API on (http://[^/]+)/v1/")
WARMUP = 200


def message(n: int) -> bytes:
    phone = f"+49170{n % 10**7:07d}"
    return json.dumps({"to": {"external_ref": f"customer-{n}", "addresses": {"whatsapp": phone}},
                       "category": "utility", "template": "order_shipped",
                       "parameters": {"order_id": str(n)}}).encode()


def start_api(bootstrap: str, prefix: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`switchboard api` in its own process, with one unlimited client; returns once it prints its address."""
    (directory / "clients.json").write_text(json.dumps({CLIENT: {"tenant": "acme", "secret_env": "SB_BENCH_SECRET",
                                                                 "api_key_hash": hash_secret(KEY)}}))
    (directory / "limits.toml").write_text("[tiers.bench]\nper_second = 0\n[per_ip]\nper_second = 0\n")
    log = directory / "api.log"
    command = [str(project_root() / ".venv" / "bin" / "switchboard"), "api", "--bootstrap", bootstrap,
               "--topic-prefix", prefix, "--root", str(directory / "projections"), "--port", "0",
               "--clients-file", str(directory / "clients.json"), "--limits-file", str(directory / "limits.toml")]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env={**os.environ, "SB_BENCH_SECRET": SECRET}, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = READY_LINE.search(log.read_text(errors="replace"))
        if found:
            return process, found.group(1)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the API did not start:\n{log.read_text(errors='replace')[-3000:]}")


async def drive(base: str, first: int, count: int, concurrency: int, keyed: bool,
                wait: float) -> tuple[list[float], Counter[str], float]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    numbers = iter(range(first, first + count))
    path = f"/v1/messages?wait={wait:g}" if wait else "/v1/messages"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            for n in numbers:
                body = message(n)
                headers = signed_post_headers(CLIENT, SECRET, KEY, path, body)
                if keyed:
                    headers["Idempotency-Key"] = f"bench-{n}"
                began = time.perf_counter()
                async with session.post(base + path, data=body, headers=headers) as answer:
                    await answer.read()
                    statuses[str(answer.status)] += 1
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, statuses, time.perf_counter() - started


async def run(bootstrap: str, requests: int, concurrency: int) -> None:
    prefix = f"bench-send-{uuid.uuid4().hex[:8]}-"
    await ensure_topics(bootstrap, [TopicSpec(prefix + "sb.commands", 6, -1, COMMAND_TOPIC_CONFIG),
                                    TopicSpec(prefix + "sb.events.message", 6, -1, AUDIT_LOG_CONFIG),
                                    claims_topic_spec(prefix, 6)])
    with tempfile.TemporaryDirectory(prefix="send-bench-") as directory:
        process, base = start_api(bootstrap, prefix, Path(directory))
        try:
            await drive(base, 10**8, WARMUP, concurrency, True, 0)
            offset = 0
            for keyed in (False, True):
                latencies, statuses, wall = await drive(base, offset, requests, concurrency, keyed, 0)
                offset += requests
                ms = sorted(x * 1000 for x in latencies)
                print(f"{'with' if keyed else 'without'} Idempotency-Key: {requests / wall:,.0f} requests/s, "
                      f"p50 {statistics.median(ms):.1f} ms, p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms, "
                      f"max {ms[-1]:.1f} ms, answers {dict(statuses)}")
            commands = sum((await end_offsets(bootstrap, prefix + "sb.commands")).values())
            claims = sum((await end_offsets(bootstrap, prefix + "sb.api.requests")).values())
            print(f"sb.commands records {commands:,} (= {WARMUP} + 2 x {requests:,}); claims {claims:,} "
                  f"(= {WARMUP} + {requests:,}); API peak RSS {peak_rss_mb(process.pid):.0f} MiB")
        finally:
            process.terminate()
            process.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print_machine()
    print(f"{args.requests:,} signed POST /v1/messages per mode, {args.concurrency} in flight, after {WARMUP} "
          "warm-up requests; the API in its own process")
    with benchmark_broker("bench-send", BENCH_PORT) as broker:
        asyncio.run(run(broker.bootstrap, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
