"""Messages/s of one pipeline worker from request to dispatch, latency under load and memory as state grows.

One `switchboard pipeline` worker, an in-process channel (no network), one sender whose rate limit is never the
bound; against the raw aiokafka consume-then-produce rate measured in the same run on the same broker. Latency
is the broker timestamp of a message's MessageAcceptedByProvider record minus that of its request record (both
CreateTime, set by producers on this host).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from aggregates import Contact, Message
from bench._common import benchmark_broker, peak_rss_mb, print_machine
from bench._declaration import Declaration
from bench.tally_bench import raw_consume_produce
from schemas import DecodedEvent, decode, default_registry
from streams.pipeline.app import PipelineSettings
from switchboard.groups import wait_for_stable_group
from switchboard.kafka_io import new_producer
from switchboard.topics import TopicSpec, ensure_topics
from switchboard.workers import WorkerExited, WorkerProcess

BENCH_PORT = 25092  # 19092, 21092, 24092, 24192 and 26092 belong to others; below the ephemeral range
TENANT = "bench"
SENDER_RATE = 100_000  # per second: far above what one worker reaches, so the token bucket never holds a job
WARMUP = 500  # requests before any measured phase (tables, changelogs, driver, producer metadata)
ACCEPTED_IDS = frozenset(v.schema_id for v in default_registry().versions("MessageAcceptedByProvider"))
Worker = WorkerProcess[PipelineSettings]
T = TypeVar("T")


def declaration(partitions: int) -> str:
    """The bench's pipeline.toml: the in-process channel, one sender at SENDER_RATE."""
    return Declaration(partitions, per_second=SENDER_RATE).text()


@dataclass(frozen=True)
class Request:
    """One request command with the message id the writer will give it."""

    contact_id: str
    message_id: str
    value: bytes


@dataclass(frozen=True)
class Phase:
    """What one measured phase saw: broker timestamps (ms) of each message's request and its acceptance, and CPU."""

    requested: dict[str, int]
    accepted: dict[str, int]
    worker_cpu: float  # seconds of CPU the worker process used during the phase
    machine_busy: float  # share of all cores busy during the phase (broker, worker and this process)

    @property
    def seconds(self) -> float:
        """From the first request record to the last acceptance."""
        return (max(self.accepted.values()) - min(self.requested.values())) / 1000

    @property
    def rate(self) -> float:
        """Messages/s from request to acceptance: every message of the phase over the phase's span.

        Not first to last acceptance: with a backlog, the outcomes that lead to acceptances queue behind all the
        requests on the command topic, so that span would leave out the requests' whole first pass.
        """
        return len(self.accepted) / self.seconds

    @property
    def cpu_ms_per_message(self) -> float:
        return 1000 * self.worker_cpu / len(self.accepted)

    def latency_ms(self, quantile: float) -> float:
        """A latency quantile (0..1), request record to acceptance record."""
        latencies = sorted(self.accepted[m] - self.requested[m] for m in self.accepted)
        return float(latencies[min(len(latencies) - 1, int(quantile * len(latencies)))])

    @property
    def median_ms(self) -> float:
        return statistics.median(self.accepted[m] - self.requested[m] for m in self.accepted)


class CpuMeter:
    """CPU used by one process and by the whole machine between start and stop (from /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._process, self._busy, self._total = process_cpu(pid), *machine_cpu()

    def stop(self) -> tuple[float, float]:
        """(process CPU seconds, share of the machine's cores busy) since start."""
        busy, total = machine_cpu()
        return process_cpu(self.pid) - self._process, (busy - self._busy) / max(1, total - self._total)


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


def make_requests(first: int, count: int, contacts: int, contact_base: int) -> list[Request]:
    """`count` requests numbered from `first`, spread round robin over `contacts` contacts from `contact_base`."""
    made = []
    for n in range(first, first + count):
        ref = f"c-{contact_base + n % contacts}"
        contact_id, key = str(Contact.create_id(TENANT, ref)), f"m-{n}"
        phone = f"+49170{contact_base + n % contacts:08d}"
        command = {"kind": "request", "v": 1, "command_id": f"req-{key}", "tenant": TENANT, "contact_id": contact_id,
                   "contact": {"external_ref": ref, "addresses": {"whatsapp": phone}},
                   "message": {"idempotency_key": key, "category": "utility", "template": "order_shipped",
                               "parameters": {"order_id": key}, "priority": "normal"}}
        made.append(Request(contact_id, str(Message.create_id(TENANT, key)),
                            json.dumps(command, separators=(",", ":")).encode()))
    return made


async def produce(bootstrap: str, topic: str, requests: Sequence[Request], rate: float | None = None) -> dict[str, int]:
    """Sends the requests (all at once, or paced at `rate`/s); returns each one's record timestamp (CreateTime)."""
    producer = new_producer(bootstrap, linger_ms=1 if rate else 5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        started, futures = time.perf_counter(), []
        for sent, request in enumerate(requests):
            if rate and sent >= (time.perf_counter() - started) * rate:
                await asyncio.sleep(max(0.0, sent / rate - (time.perf_counter() - started)))
            futures.append(await producer.send(topic, request.value, key=request.contact_id.encode()))
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return {request.message_id: meta.timestamp for request, meta in zip(requests, metadata, strict=True)}


class AcceptedWatch:
    """Reads the message events from their end offsets at start; collects MessageAcceptedByProvider timestamps."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._seen: set[str] = set()
        self.accepted: dict[str, int] = {}

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_end(*self._partitions)
        for tp in self._partitions:
            await self._consumer.position(tp)  # resolved now, before anything is produced

    async def wait(self, expected: set[str], worker: Worker, timeout: float) -> dict[str, int]:
        """Acceptance timestamps of the expected messages; WorkerExited or TimeoutError if they do not all come."""
        deadline = time.monotonic() + timeout
        try:
            while not expected <= self.accepted.keys():
                if not worker.is_running():
                    raise WorkerExited(f"the pipeline worker exited; its log ends with:\n{worker.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(expected - self.accepted.keys())} of {len(expected)} not accepted")
                for records in (await self._consumer.getmany(timeout_ms=500, max_records=5000)).values():
                    for record in records:
                        self._read(record.value, record.timestamp)
        finally:
            await self._consumer.stop()
        return {m: self.accepted[m] for m in expected}

    def _read(self, value: bytes, timestamp: int) -> None:
        if int.from_bytes(value[1:5], "big") not in ACCEPTED_IDS:
            return  # the header names the schema: only acceptances are decoded
        decoded = decode(value)
        assert isinstance(decoded, DecodedEvent)
        envelope = decoded.payload["envelope"]
        if envelope["event_id"] not in self._seen:  # a redelivered event keeps its event id
            self._seen.add(envelope["event_id"])
            self.accepted.setdefault(envelope["aggregate_id"], timestamp)


@dataclass
class Bench:
    """One worker on its own topics and state directory, fed and measured phase by phase."""

    bootstrap: str
    root: Path
    partitions: int
    name: str
    batch_max: int = PipelineSettings.batch_max
    worker: Worker | None = None
    next_request: int = 0

    @property
    def settings(self) -> PipelineSettings:
        prefix = f"{self.name}-"
        return PipelineSettings(bootstrap=self.bootstrap, data_dir=str(self.root / self.name / "state"),
                                config_path=str(self.root / "pipeline.toml"), app_id=f"{prefix}pipeline",
                                topic_prefix=prefix, worker_name=self.name, partitions=self.partitions,
                                batch_max=self.batch_max)

    async def start(self) -> Worker:
        await ensure_topics(self.bootstrap, self.settings.topic_specs())
        self.worker = WorkerProcess(self.settings, self.root / f"{self.name}.log")
        self.worker.start()
        await wait_for_stable_group(self.bootstrap, self.settings.app_id, members=1, timeout=120)
        await self.run(WARMUP, contacts=WARMUP, contact_base=10_000_000)
        return self.worker

    async def run(self, count: int, contacts: int, contact_base: int = 0, rate: float | None = None) -> Phase:
        """Requests for `count` new messages; returns once every one of them was accepted by the channel."""
        assert self.worker is not None
        requests = make_requests(self.next_request, count, contacts, contact_base)
        self.next_request += count
        topics = self.settings.topics
        watch = AcceptedWatch(self.bootstrap, topics.message_events, self.partitions)
        await watch.start()
        cpu = CpuMeter(self.pid())
        waiting = asyncio.ensure_future(watch.wait({r.message_id for r in requests}, self.worker, 120 + count / 10))
        try:
            requested = await produce(self.bootstrap, topics.commands, requests, rate)
            accepted = await waiting
            return Phase(requested, accepted, *cpu.stop())
        finally:
            waiting.cancel()

    def pid(self) -> int:
        assert self.worker is not None
        return self.worker._require_started().pid

    def state_mb(self) -> float:
        files = Path(self.settings.data_dir).rglob("*")
        return sum(f.stat().st_size for f in files if f.is_file()) / 2**20

    def stop(self) -> None:
        if self.worker is not None and self.worker.is_running():
            self.worker.stop()


def rss_mb(pid: int) -> float:
    """A live process's current resident memory (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def raw_baseline(bootstrap: str, requests: int, partitions: int) -> float:
    """The raw aiokafka consume->produce rate over the same request records, on the same broker."""
    prefix = f"bench-raw-{uuid.uuid4().hex[:6]}-"
    source, sink = f"{prefix}in", f"{prefix}out"
    await ensure_topics(bootstrap, [TopicSpec(source, partitions), TopicSpec(sink, partitions)])
    await produce(bootstrap, source, make_requests(0, requests, max(1, requests // 4), 0))
    return await raw_consume_produce(bootstrap, source, sink, requests)


def row(label: str, value: str) -> None:
    print(f"| {label} | {value} |")


def print_phase(label: str, phase: Phase) -> None:
    row(f"{label}: messages/s (first request to last acceptance)", f"{phase.rate:,.0f} ({phase.seconds:.1f} s)")
    row(f"{label}: latency p50 / p99 / max", f"{phase.median_ms:,.0f} / {phase.latency_ms(0.99):,.0f} / "
                                              f"{phase.latency_ms(1.0):,.0f} ms")
    row(f"{label}: worker CPU per message; machine busy", f"{phase.cpu_ms_per_message:.2f} ms; "
                                                          f"{phase.machine_busy:.0%} of {os.cpu_count()} cores")


async def profiled(bench: Bench, args: argparse.Namespace, phase: str, run: Awaitable[Phase]) -> Phase:
    """Runs a phase, sampled by py-spy if this is the phase `--profile` names (collapsed stacks to --profile-out)."""
    if args.py_spy is None or args.profile != phase:
        return await run
    out = Path(args.profile_out)
    command = [args.py_spy, "record", "--pid", str(bench.pid()), "--duration", str(args.profile_seconds),
               "--format", "raw", "--idle", "--nonblocking", "--output", str(out)]
    sampler = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        return await run
    finally:
        await sampler.wait()


async def throughput_and_latency(bench: Bench, args: argparse.Namespace) -> float:
    """The backlog phase (max rate), then open-loop phases at shares of it, in one worker; returns the max rate."""
    worker = await bench.start()
    backlog = await profiled(bench, args, "backlog", bench.run(args.requests, args.contacts))
    print_phase(f"backlog of {args.requests:,} requests, {args.contacts:,} contacts", backlog)
    row("worker peak RSS after the backlog", f"{peak_rss_mb(bench.pid()):.0f} MiB")
    for n, load in enumerate(args.loads):
        offered = load * backlog.rate
        count = int(offered * args.paced_seconds)
        run = bench.run(count, args.contacts, contact_base=1_000_000 * (n + 1), rate=offered)
        paced = await profiled(bench, args, "paced" if n == 0 else "", run)
        print_phase(f"open loop at {load:.0%} ({offered:,.0f}/s offered, {count:,} requests)", paced)
    assert worker.is_running()
    row("worker peak RSS after all phases", f"{peak_rss_mb(bench.pid()):.0f} MiB")
    return backlog.rate


async def memory_growth(bench: Bench, args: argparse.Namespace) -> None:
    """One request per new contact until `--memory-sizes` distinct contacts: memory and state after each size."""
    await bench.start()
    done = 0
    for size in args.memory_sizes:
        run = bench.run(size - done, size - done, contact_base=done)
        phase = await profiled(bench, args, "memory" if size == args.memory_sizes[-1] else "", run)
        done = size
        row(f"{size:,} distinct contacts: messages/s, CPU per message, peak RSS / RSS, state on disk",
            f"{phase.rate:,.0f}, {phase.cpu_ms_per_message:.2f} ms, {peak_rss_mb(bench.pid()):.0f} / "
            f"{rss_mb(bench.pid()):.0f} MiB, {bench.state_mb():.0f} MiB")


async def bench_pipeline(bootstrap: str, args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="sb-bench-pipeline-"))
    (root / "pipeline.toml").write_text(declaration(args.partitions))
    run_id = uuid.uuid4().hex[:6]
    benches = [Bench(bootstrap, root, args.partitions, f"bp-{run_id}-{n}", args.batch_max) for n in ("load", "memory")]
    try:
        print("| figure | value |\n| --- | --- |")
        raw = [await raw_baseline(bootstrap, args.requests, args.partitions)]  # a fresh broker's JVM is still cold
        rate = await throughput_and_latency(benches[0], args)
        benches[0].stop()
        raw.append(await raw_baseline(bootstrap, args.requests, args.partitions))
        row("raw aiokafka consume -> produce (batches of up to 2,000, acks awaited per batch): first, after the "
            "load phases", f"{raw[0]:,.0f}, {raw[1]:,.0f} records/s")
        row("ratio of the worker's max rate to the faster raw run", f"{rate / max(raw):.3f}")
        if args.memory_sizes:
            await memory_growth(benches[1], args)
    finally:
        for bench in benches:
            bench.stop()
        if args.keep:
            print(f"worker logs and state: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _numbers(kind: Callable[[str], T]) -> Callable[[str], list[T]]:
    return lambda text: [kind(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000, help="requests in the backlog phase")
    parser.add_argument("--contacts", type=int, default=5_000, help="distinct contacts they go to")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch-max", type=int, default=PipelineSettings.batch_max, help="the worker's batch size")
    parser.add_argument("--loads", type=_numbers(float), default=[0.8, 0.4, 0.2],
                        help="open-loop rates as shares of the measured max, comma-separated")
    parser.add_argument("--paced-seconds", type=float, default=20.0, help="how long the open-loop phase offers load")
    parser.add_argument("--memory-sizes", type=_numbers(int), default=[20_000, 100_000],
                        help="distinct contacts after which memory is read (cumulative, one worker)")
    parser.add_argument("--py-spy", help="a py-spy executable: sample the worker during the phase --profile names")
    parser.add_argument("--profile", choices=["backlog", "paced", "memory"], default="backlog",
                        help="the phase py-spy samples: backlog, the first open-loop one, or the last memory size")
    parser.add_argument("--profile-seconds", type=int, default=15)
    parser.add_argument("--profile-out", default="/tmp/sb-pipeline-profile.txt", help="py-spy's collapsed stacks")
    parser.add_argument("--keep", action="store_true", help="keep the worker logs and state directories")
    args = parser.parse_args()
    print_machine()
    print(f"sender rate limit {SENDER_RATE:,}/s (never the bound); no quiet hours, no caps; in-process driver")
    with benchmark_broker("bench-pipeline", BENCH_PORT) as broker:
        asyncio.run(bench_pipeline(broker.bootstrap, args))


if __name__ == "__main__":
    main()
