"""Messages/s end to end through the WhatsApp simulator over HTTP, every receipt back through receiver and normaliser.

Every part is its own process on this machine: the simulator (`switchboard simulator`, one phone number at Meta's
upgraded tier, 1,000 msg/s), the webhook receiver, the normaliser and 1..n pipeline workers, all on one broker.
A message counts once its MessageRead event is in sb.events.message; its rate is every message of the phase over
the span from the first request record to the last read event, its latency the broker timestamp of its read event
minus that of its request (both CreateTime, set by producers on this host). Each phase also says where the CPU
went (every part and the broker, per message, against the 2 ms budget of 1,000 msg/s on 2 cores), how busy the
machine was, how many Kafka records a message wrote per topic, and the ceiling that sets (raw records/s over it).
The backlog's latency is mostly queueing; a paced phase after it (open loop, `--paced-rate` requests a second) gives
the latency of messages that meet no queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from aggregates import Contact, Message
from bench._common import BenchBroker, benchmark_broker, peak_rss_mb, print_machine
from bench._cost import PhaseMeter
from bench._declaration import SENDER, Declaration
from bench._figures import PhaseCost, kafka_ceiling
from bench.pipeline_bench import Request, produce, raw_baseline
from connectors import whatsapp, whatsapp_simulator
from schemas import DecodedEvent, decode, default_registry
from streams.pipeline.app import PipelineSettings
from switchboard._demo_stack import (
    NORMALISER_BANNER,
    RECEIVER_BANNER,
    NormaliserCommand,
    Processes,
    ReceiverCommand,
    wait_for_group,
    wait_for_line,
)
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess

__all__ = ["E2EResult", "Pace", "run_e2e"]

BENCH_PORT = 31692  # the benchmark broker's port; 24092, 24192, 25092 and 31092 belong to others
TENANT = "bench"
TIER = "upgraded"  # Meta's 1,000 msg/s per phone number: the declared rate limit is not the bound
TIER_MPS = 1000
START_TIMEOUT = 120.0
STATUSES = ("MessageSent", "MessageDelivered", "MessageRead")
STATUS_IDS = {v.schema_id: name for name in STATUSES for v in default_registry().versions(name)}
SIMULATOR_COUNTERS = re.compile(r"simulator stopped: SimulatorCounters\((.*)\)")
PROFILE_OUT = "/tmp/sb-e2e-profile.txt"  # the first worker's; another part's goes to /tmp/sb-e2e-profile-<part>.txt
SIMULATOR_BANNER = re.compile(r"simulator at (http://[^/\s]+)/")


@dataclass(frozen=True)
class SimulatorCommand:
    """`switchboard simulator` on an ephemeral port: one number at its tier, receipts posted 64 at a time."""

    webhook_url: str
    worker_name: str = "simulator"

    def command_line(self) -> list[str]:
        return ["simulator", "--port", "0", "--webhook-url", self.webhook_url, "--phone-number", SENDER,
                "--mps", str(TIER_MPS), "--webhook-concurrency", "64"]


@dataclass(frozen=True)
class Pace:
    """An open-loop phase after the backlog: `messages` requests offered at `rate` a second."""

    messages: int
    rate: float


@dataclass
class E2EResult:
    """One phase: request and read timestamps (ms) per message, receipts seen, CPU and peak memory per process."""

    workers: int
    requested: dict[str, int]
    read: dict[str, int]
    receipts: Counter[str]
    cost: PhaseCost  # CPU per process (the broker's too), the machine's busy cores, Kafka records written
    peak_rss: dict[str, float] = field(default_factory=dict)  # MiB per process after the phase
    simulator: str = ""  # the simulator's counters, as it printed them when stopped
    offered: float | None = None  # requests a second offered (open loop); None for a backlog produced at once
    paced: E2EResult | None = None  # the paced phase that followed this backlog, if one ran

    @property
    def cpu(self) -> Mapping[str, float]:
        """CPU seconds per process during the phase (the broker's under "broker" when it is this machine's)."""
        return self.cost.cpu

    @property
    def missing(self) -> int:
        """Messages of the phase not read before the wait ended."""
        return len(self.requested) - len(self.read)

    @property
    def seconds(self) -> float:
        if not self.read:
            return float("nan")
        return (max(self.read.values()) - min(self.requested.values())) / 1000

    @property
    def rate(self) -> float:
        """Messages/s from the first request to the last read receipt."""
        return len(self.read) / self.seconds if self.read else 0.0

    def latency_ms(self, quantile: float) -> float:
        latencies = sorted(self.read[m] - self.requested[m] for m in self.read)
        if not latencies:
            return float("nan")
        if quantile == 0.5:
            return float(statistics.median(latencies))
        return float(latencies[min(len(latencies) - 1, int(quantile * len(latencies)))])


class ReceiptWatch:
    """Reads the message events from their end offsets at start; collects each message's status events."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._seen: set[str] = set()
        self.read: dict[str, int] = {}
        self.receipts: Counter[str] = Counter()

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_end(*self._partitions)
        for tp in self._partitions:
            await self._consumer.position(tp)  # resolved now, before anything is produced

    async def wait(self, expected: set[str], processes: Processes, timeout: float) -> dict[str, int]:
        """Read timestamps of the expected messages that were read within `timeout` (the result says how many
        were not); PartFailed if a part exits."""
        deadline = time.monotonic() + timeout
        try:
            while not expected <= self.read.keys() and time.monotonic() < deadline:
                processes.check("the measured phase")
                for records in (await self._consumer.getmany(timeout_ms=500, max_records=5000)).values():
                    for record in records:
                        self._take(record.value, record.timestamp)
        finally:
            await self._consumer.stop()
        return {m: self.read[m] for m in expected if m in self.read}

    def _take(self, value: bytes, timestamp: int) -> None:
        status = STATUS_IDS.get(int.from_bytes(value[1:5], "big"))
        if status is None:
            return  # the header names the schema: only the three statuses are decoded
        decoded = decode(value)
        assert isinstance(decoded, DecodedEvent)
        envelope = decoded.payload["envelope"]
        if envelope["event_id"] in self._seen:
            return  # a redelivered event keeps its event id
        self._seen.add(envelope["event_id"])
        self.receipts[status] += 1
        if status == "MessageRead":
            self.read.setdefault(envelope["aggregate_id"], timestamp)


def make_requests(first: int, count: int) -> list[Request]:
    """`count` template requests numbered from `first`, each to a contact of its own (WhatsApp's pair limit
    allows one message per recipient every 6 s, so a broadcast is the shape that tier's rate is for)."""
    made = []
    for n in range(first, first + count):
        ref, key = f"e2e-{n}", f"e2e-m-{n}"
        contact_id = str(Contact.create_id(TENANT, ref))
        command = {"kind": "request", "v": 1, "command_id": f"req-{key}", "tenant": TENANT, "contact_id": contact_id,
                   "contact": {"external_ref": ref, "addresses": {"whatsapp": f"+49171{n:08d}"}},
                   "message": {"idempotency_key": key, "category": "utility", "template": "order_shipped",
                               "parameters": {"order_id": key}, "priority": "normal"}}
        made.append(Request(contact_id, str(Message.create_id(TENANT, key)), _json(command)))
    return made


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def declaration(partitions: int, simulator_url: str) -> str:
    """The bench's pipeline.toml: WhatsApp through the simulator, the sender at TIER (its rate is not the bound)."""
    return Declaration(partitions, driver="whatsapp", settings={"base_url": simulator_url}, tier=TIER).text()


def _write_pipeline(path: Path, partitions: int, simulator_url: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(declaration(partitions, simulator_url))
    return path


@dataclass
class Stack:
    """Simulator, receiver, normaliser and `workers` pipeline workers on topics of their own."""

    bootstrap: str
    root: Path
    workers: int
    partitions: int
    batch_max: int = PipelineSettings.batch_max
    broker_pids: list[int] | None = None  # None: an external broker, whose CPU is not measured
    processes: Processes = field(default_factory=Processes)
    named: dict[str, WorkerProcess[Any]] = field(default_factory=dict)
    next_request: int = 0

    def __post_init__(self) -> None:
        self.prefix = f"e2e-{uuid.uuid4().hex[:6]}-{self.workers}w-"
        token, app_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.env = {whatsapp_simulator.ENV_ACCESS_TOKEN: token, whatsapp_simulator.ENV_APP_SECRET: app_secret,
                    whatsapp.ENV_ACCESS_TOKEN: token, whatsapp.ENV_APP_SECRET: app_secret,
                    whatsapp.ENV_VERIFY_TOKEN: secrets.token_urlsafe(12)}

    def settings(self, n: int) -> PipelineSettings:
        return PipelineSettings(bootstrap=self.bootstrap, data_dir=str(self.root / self.prefix / f"state-{n}"),
                                config_path=str(self.root / self.prefix / "pipeline.toml"),
                                app_id=f"{self.prefix}pipeline", topic_prefix=self.prefix,
                                worker_name=f"pipeline-{n}", partitions=self.partitions, batch_max=self.batch_max)

    async def start(self) -> None:
        """Topics, the receiver (its URL goes to the simulator), the simulator, the workers, the normaliser."""
        first = self.settings(1)
        await ensure_topics(self.bootstrap, first.topic_specs())
        receiver = self._start("receiver", ReceiverCommand(self.bootstrap, self.prefix, self.partitions))
        receiver_url = (await wait_for_line(receiver, RECEIVER_BANNER, self.processes, START_TIMEOUT))[1]
        simulator = self._start("simulator", SimulatorCommand(f"{receiver_url}/webhooks/whatsapp"))
        simulator_url = (await wait_for_line(simulator, SIMULATOR_BANNER, self.processes, START_TIMEOUT))[1]
        config = _write_pipeline(Path(first.config_path), self.partitions, simulator_url)
        for n in range(1, self.workers + 1):
            self._start(f"pipeline-{n}", self.settings(n))
        normaliser = self._start("normaliser", NormaliserCommand(self.bootstrap, self.prefix, str(config)))
        await wait_for_line(normaliser, NORMALISER_BANNER, self.processes, START_TIMEOUT)
        await wait_for_group(self.bootstrap, first.app_id, self.workers, self.named["pipeline-1"], self.processes,
                             START_TIMEOUT)

    def _start(self, name: str, command: Any) -> WorkerProcess[Any]:
        process = WorkerProcess(command, self.root / self.prefix / f"{name}.log", env=self.env)
        self.named[name] = self.processes.start(process)
        return process

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.named.items() if process.pid is not None}

    async def run(self, count: int, rate: float | None = None, py_spy: str | None = None,
                  profiled: Sequence[str] = ("pipeline-1",)) -> E2EResult:
        """Requests for `count` new messages; returns once every one of them was read."""
        requests = make_requests(self.next_request, count)
        self.next_request += count
        topics = self.settings(1).topics
        watch = ReceiptWatch(self.bootstrap, topics.message_events, self.partitions)
        await watch.start()
        meter = PhaseMeter(self.bootstrap, self.prefix, self.pids(), self.broker_pids)
        await meter.start()
        waiting = asyncio.ensure_future(watch.wait({r.message_id for r in requests}, self.processes,
                                                   60 + count / 10))
        samplers = [await self._sample(py_spy, part) for part in profiled] if py_spy else []
        try:
            requested = await produce(self.bootstrap, topics.commands, requests, rate)
            read = await waiting
        finally:
            waiting.cancel()
            for sampler in samplers:
                await sampler.wait()
        return E2EResult(self.workers, requested, read, watch.receipts, await meter.stop(count))

    async def _sample(self, py_spy: str, part: str) -> asyncio.subprocess.Process:
        """py-spy on one part for 15 s (collapsed stacks with idle samples) to PROFILE_OUT (the first worker) or
        /tmp/sb-e2e-profile-<part>.txt."""
        output = PROFILE_OUT if part == "pipeline-1" else PROFILE_OUT.replace(".txt", f"-{part}.txt")
        command = [py_spy, "record", "--pid", str(self.pids()[part]), "--duration", "15", "--format", "raw",
                   "--idle", "--nonblocking", "--output", output]
        return await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.STDOUT)

    def peak_rss(self) -> dict[str, float]:
        return {name: peak_rss_mb(pid) for name, pid in self.pids().items()}

    def stop(self) -> str:
        """Stops every part; returns the simulator's final counters line."""
        self.processes.stop_all()
        log = self.named["simulator"].log_file if "simulator" in self.named else None
        found = SIMULATOR_COUNTERS.search(log.read_text(errors="replace")) if log and log.exists() else None
        return found[1] if found else ""


async def run_e2e(broker: BenchBroker, workers: int, messages: int, warmup: int, partitions: int = 6,
                  keep: bool = False, py_spy: str | None = None,
                  profiled: Sequence[str] = ("pipeline-1",), pace: Pace | None = None) -> E2EResult:
    """A fresh stack with `workers` pipeline workers: a warm-up, a backlog of `messages` requests, then the pace."""
    root = Path(tempfile.mkdtemp(prefix="sb-bench-e2e-"))
    stack = Stack(broker.bootstrap, root, workers, partitions, broker_pids=broker.pids())
    try:
        await stack.start()
        await stack.run(warmup)
        result = await stack.run(messages, py_spy=py_spy, profiled=profiled)
        result.peak_rss = stack.peak_rss()
        if pace is not None and pace.messages:
            result.paced = await stack.run(pace.messages, rate=pace.rate)
            result.paced.offered = pace.rate
    finally:
        counters = stack.stop()
        if keep:
            print(f"logs and state: {root / stack.prefix}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    result.simulator = counters
    return result


def ceiling_figure(result: E2EResult, raw: float) -> str:
    """Messages/s the Kafka client work alone would allow: raw records/s over the records a message writes."""
    per_message = result.cost.records_per_message
    return f"{kafka_ceiling(raw, per_message):,.0f} msg/s ({raw:,.0f} raw records/s / {per_message:.2f} per message)"


def paced_figure(paced: E2EResult) -> tuple[str, str]:
    """The paced phase's row: its name (with the offered rate) and its latencies and achieved rate."""
    return (f"latency request -> read p50 / p99 at {paced.offered or 0:,.0f} msg/s offered (open loop)",
            f"{paced.latency_ms(0.5):,.0f} / {paced.latency_ms(0.99):,.0f} ms ({len(paced.read):,} read at "
            f"{paced.rate:,.0f} msg/s, {paced.missing:,} not)")


def print_result(result: E2EResult, raw: float | None = None) -> None:
    label = f"{result.workers} worker{'s' if result.workers > 1 else ''}"
    receipts = ", ".join(f"{result.receipts[s]:,} {s[7:].lower()}" for s in STATUSES)
    cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(result.cpu.items()))
    cpu += "" if result.cost.broker_measured else ", broker not measured (KAFKA_BOOTSTRAP_SERVERS)"
    rss = ", ".join(f"{name} {mib:.0f}" for name, mib in sorted(result.peak_rss.items()))
    print(f"| {label}: messages/s, request -> read | {result.rate:,.0f} "
          f"({len(result.read):,} in {result.seconds:.1f} s) |")
    print(f"| {label}: latency request -> read p50 / p99 | {result.latency_ms(0.5):,.0f} / "
          f"{result.latency_ms(0.99):,.0f} ms |")
    if result.paced is not None:
        name, value = paced_figure(result.paced)
        print(f"| {label}: {name} | {value} |")
    print(f"| {label}: receipts recorded (events) | {receipts} |")
    print(f"| {label}: CPU seconds per process | {cpu} |")
    print(f"| {label}: machine busy over the phase | {result.cost.busy_line()} |")
    print(f"| {label}: CPU ms per message | {result.cost.cpu_line()} |")
    print(f"| {label}: Kafka records written per message | {result.cost.records_line()} |")
    if raw is not None:
        print(f"| {label}: ceiling from Kafka client work alone | {ceiling_figure(result, raw)} |")
    print(f"| {label}: peak RSS per process (MiB) | {rss} |")
    print(f"| {label}: messages not read when the wait ended | {result.missing:,} |")
    print(f"| {label}: simulator counters | {result.simulator} |")


async def bench_e2e(broker: BenchBroker, args: argparse.Namespace) -> list[E2EResult]:
    results = []
    raw = await raw_baseline(broker.bootstrap, args.raw_records, args.partitions) if args.raw_records else None
    print("| figure | value |\n| --- | --- |")
    if raw is not None:
        print(f"| raw aiokafka consume -> produce, same broker ({args.raw_records:,} records) | {raw:,.0f} records/s |")
    for workers in args.workers:
        result = await run_e2e(broker, workers, args.messages, args.warmup, args.partitions, args.keep,
                                args.py_spy, args.profile, Pace(args.paced_messages, args.paced_rate))
        print_result(result, raw)
        results.append(result)
    return results


def _names(text: str) -> Sequence[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _counts(text: str) -> Sequence[int]:
    return [int(part) for part in text.split(",") if part]


def add_pace_arguments(parser: argparse.ArgumentParser) -> None:
    """The paced phase's options, shared with the suite."""
    parser.add_argument("--paced-messages", type=int, default=2_000,
                        help="requests of the open-loop phase after each backlog (0: none)")
    parser.add_argument("--paced-rate", type=float, default=100.0,
                        help="requests a second the open-loop phase offers: below capacity, so latency is not queueing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5_000, help="requests in the measured backlog")
    parser.add_argument("--warmup", type=int, default=300, help="messages sent and read before measuring")
    parser.add_argument("--workers", type=_counts, default=[1, 2, 3], help="pipeline worker counts, one run each")
    add_pace_arguments(parser)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--raw-records", type=int, default=20_000,
                        help="records of the raw aiokafka consume -> produce run before the stacks (0: none); with "
                             "the records a message writes, it gives the ceiling of the Kafka client work alone")
    parser.add_argument("--keep", action="store_true", help="keep the logs and state directories")
    parser.add_argument("--py-spy", help=f"a py-spy executable: sample the first worker 15 s into {PROFILE_OUT}")
    parser.add_argument("--profile", type=_names, default=["pipeline-1"],
                        help="the parts py-spy samples, comma-separated (default pipeline-1; also simulator, receiver, "
                             "normaliser)")
    args = parser.parse_args()
    print_machine()
    print(f"WhatsApp simulator: one number at tier {TIER} ({TIER_MPS:,} msg/s), receipts sent, delivered, read")
    with benchmark_broker("bench-suite", BENCH_PORT) as broker:
        asyncio.run(bench_e2e(broker, args))


if __name__ == "__main__":
    main()
