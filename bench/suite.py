"""`bin/bench suite`: every benchmark on one broker in one run, then one summary table.

Raw aiokafka (the ceiling, same run), the pipeline's internal stage rate (in-process channel), end to end through
the WhatsApp simulator with 1, 2 and 3 workers (each a backlog, then an open-loop phase for latency), the floor
(bench/floor_bench.py: the parts no implementation can skip, with the first end-to-end run's records per message),
webhook acknowledgements/s and, when bench/replay_bench.py is there, replay events/s; the last two run as their own
commands against the same broker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import BenchBroker, benchmark_broker, peak_rss_mb, print_machine
from bench._floor import MessageShape
from bench.e2e_bench import (
    BENCH_PORT,
    E2EResult,
    Pace,
    add_pace_arguments,
    ceiling_figure,
    paced_figure,
    print_result,
    run_e2e,
)
from bench.floor_bench import measure_floor, print_floor
from bench.pipeline_bench import Bench, declaration, raw_baseline

__all__ = ["main"]

REPLAY_MODULE = Path(__file__).with_name("replay_bench.py")
WEBHOOK_RATE = re.compile(r"rate: ([\d,]+) acks/s")
WEBHOOK_LATENCY = re.compile(r"latency: p50 ([\d.]+) ms, p99 ([\d.]+) ms")
REPLAY_ROW = re.compile(r"^\| (\S+ into \S+) \| \**([\d,]+)", re.MULTILINE)


@dataclass
class Summary:
    """Every figure of one suite run, by name, in the order they were measured."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: str) -> None:
        self.rows.append((name, value))
        print(f"| {name} | {value} |", flush=True)

    def print(self) -> None:
        print("\nSummary\n\n| figure | value |\n| --- | --- |")
        for name, value in self.rows:
            print(f"| {name} | {value} |")


def load() -> str:
    """The machine's 1-minute load average now (other engineers share it)."""
    return Path("/proc/loadavg").read_text().split()[0]


async def stage_rate(bootstrap: str, requests: int, summary: Summary) -> float:
    """One worker, the in-process channel: a backlog of requests to acceptance (the engine alone)."""
    root = Path(tempfile.mkdtemp(prefix="sb-bench-suite-"))
    (root / "pipeline.toml").write_text(declaration(6))
    bench = Bench(bootstrap, root, 6, f"suite-{uuid.uuid4().hex[:6]}")
    try:
        await bench.start()
        phase = await bench.run(requests, max(1, requests // 2))
        summary.add("internal stage rate: 1 worker, in-process channel, request -> acceptance (messages/s)",
                    f"{phase.rate:,.0f} ({phase.cpu_ms_per_message:.2f} ms worker CPU each; load {load()})")
        summary.add("internal stage: worker peak RSS", f"{peak_rss_mb(bench.pid()):.0f} MiB")
        return phase.rate
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)


def e2e_label(result: E2EResult) -> str:
    return f"end to end, {result.workers} worker{'s' if result.workers > 1 else ''}"


def e2e_rows(result: E2EResult, summary: Summary, raw: float, load_then: str) -> None:
    label = e2e_label(result)
    summary.add(f"{label}: messages/s with all receipts (request -> read)",
                f"{result.rate:,.0f} ({len(result.read):,} read, {result.missing:,} not; ratio to raw "
                f"{result.rate / raw:.3f}; load {load_then})")
    summary.add(f"{label}: ceiling from Kafka client work alone (raw records/s / Kafka records per message)",
                ceiling_figure(result, raw))
    summary.add(f"{label}: latency request -> read p50 / p99 (the backlog: mostly queueing)",
                f"{result.latency_ms(0.5):,.0f} / {result.latency_ms(0.99):,.0f} ms")
    if result.paced is not None:
        name, value = paced_figure(result.paced)
        summary.add(f"{label}: {name}", value)
    summary.add(f"{label}: Kafka records written per message (per topic)", result.cost.records_line())
    summary.add(f"{label}: CPU per message (ms)", result.cost.cpu_line())
    summary.add(f"{label}: machine busy over the phase", result.cost.busy_line())
    summary.add(f"{label}: peak RSS (MiB)", ", ".join(f"{n} {m:.0f}" for n, m in sorted(result.peak_rss.items())))


def run_command(module: str, arguments: list[str], bootstrap: str) -> str:
    """A benchmark module as its own process on the suite's broker; its whole output."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    done = subprocess.run([sys.executable, "-m", module, *arguments], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    return done.stdout + done.stderr


def webhooks(bootstrap: str, requests: int, summary: Summary) -> None:
    output = run_command("bench.webhook_bench", ["--requests", str(requests), "--concurrency", "64"], bootstrap)
    rate, latency = WEBHOOK_RATE.search(output), WEBHOOK_LATENCY.search(output)
    if rate is None or latency is None:
        summary.add("webhook acknowledgements/s", f"failed: {output.strip().splitlines()[-1:]}")
        return
    summary.add("webhook acknowledgements/s (concurrency 64)", f"{rate[1]} (p50 {latency[1]} ms, p99 {latency[2]} ms; "
                                                               f"load {load()})")


def replay(bootstrap: str, events: int, summary: Summary) -> None:
    """`bin/bench replay` (one run of each projection into RocksDB): events/s from its table's rows."""
    if not REPLAY_MODULE.exists():
        summary.add("replay events/s", "not measured: bench/replay_bench.py (bin/bench replay) is not on this branch")
        return
    output = run_command("bench.replay_bench", ["--events", str(events), "--repeat", "1", "--stores", "rocksdb"],
                         bootstrap)
    found = REPLAY_ROW.findall(output)
    summary.add(f"replay events/s ({events:,}-event history, RocksDB)",
                f"{'; '.join(f'{name}: {rate}' for name, rate in found)} (load {load()})" if found else
                f"failed: {output.strip().splitlines()[-1:]}")


async def measure(broker: BenchBroker, args: argparse.Namespace, summary: Summary) -> None:
    bootstrap = broker.bootstrap
    raw = await raw_baseline(bootstrap, args.raw_records, 6)
    await stage_rate(bootstrap, args.stage_requests, summary)
    results = []
    for workers in args.workers:
        pace = Pace(args.paced_messages, args.paced_rate)
        results.append((await run_e2e(broker, workers, args.messages, args.warmup, pace=pace), load()))
        print_result(results[-1][0], raw)
    # The first raw run meets a cold broker (its JIT compiler still at work): the ratios and ceilings in the summary
    # use the faster of the two, as its first row says.
    raw = max(raw, await raw_baseline(bootstrap, args.raw_records, 6))
    for result, load_then in results:
        e2e_rows(result, summary, raw, load_then)
    summary.rows.insert(0, ("raw aiokafka consume -> produce, same broker and run (faster of two)",
                            f"{raw:,.0f} records/s"))
    if results:
        await floor_rows(broker, args, [result for result, _ in results], summary)


async def floor_rows(broker: BenchBroker, args: argparse.Namespace, results: list[E2EResult],
                     summary: Summary) -> None:
    """The floor, with the shape of the first end-to-end run's messages, and each run's CPU per message over it."""
    first = results[0].cost
    costs = await measure_floor(broker, args.floor_records, args.floor_exchanges)
    floor = print_floor(costs, MessageShape.from_records(first.records, first.messages), first.cores, summary.add)
    # A machine shared with others runs faster or slower from hour to hour; this ratio of two figures of the same
    # run moves much less than either.
    for result in results:
        total = result.cost.total_cpu_ms
        summary.add(f"{e2e_label(result)}: CPU per message over the floor",
                    f"{total / floor:.2f}x ({total:.2f} ms against {floor:.2f})")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2_000, help="end-to-end backlog per worker count")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--workers", type=lambda t: [int(p) for p in t.split(",")], default=[1, 2, 3])
    add_pace_arguments(parser)
    parser.add_argument("--stage-requests", type=int, default=5_000)
    parser.add_argument("--raw-records", type=int, default=20_000)
    parser.add_argument("--floor-records", type=int, default=50_000, help="records of each Kafka floor measurement")
    parser.add_argument("--floor-exchanges", type=int, default=20_000, help="HTTP exchanges of the floor")
    parser.add_argument("--webhook-requests", type=int, default=10_000)
    parser.add_argument("--replay-events", type=int, default=100_000)
    args = parser.parse_args()
    print_machine()
    print(f"load average at start: {load()}", flush=True)
    summary = Summary()
    with benchmark_broker("bench-suite", BENCH_PORT) as broker:
        print("| figure | value |\n| --- | --- |", flush=True)
        asyncio.run(measure(broker, args, summary))
        webhooks(broker.bootstrap, args.webhook_requests, summary)
        replay(broker.bootstrap, args.replay_events, summary)
    summary.print()


if __name__ == "__main__":
    main()
