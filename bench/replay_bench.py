"""Replay speed: `switchboard replay` of each projection into a new version, against raw aiokafka on the same topic.

A synthetic history of message lifecycles (bench/_replay_history.py, encoded with the real codec) is produced once
to a topic of its own; then, `--repeat` times, the raw aiokafka consume rate over the whole topic (the ceiling)
and `switchboard replay NAME` as a process of its own into a fresh root (RocksDB) or database (PostgreSQL). A
replay's events/s and CPU seconds are its own figures (consume + decode + fold + store writes, from connecting
to its last commit); its peak RSS is the process's (getrusage). The table shows the median of the runs and their spread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench._common import benchmark_broker, print_machine
from bench._replay_history import LIFECYCLES, history
from projections import PROJECTIONS, MessageStatusProjection, end_offsets
from switchboard.kafka_io import new_producer
from switchboard.topics import TopicSpec, ensure_topics

BENCH_PORT = 31092  # others: 24092, 24192, 25092 (benchmarks), 19092 (dev), 21092+ (tests); below ephemeral
POSTGRES_PORT = 30732  # the benchmark's own PostgreSQL server, when --stores names postgres
FETCH_BYTES = 8 * 1024 * 1024  # as projections.catch_up fetches
_REBUILT = re.compile(r"([\d,]+) events rebuilt in ([\d.]+) s \([\d,]+ events/s, ([\d.]+) s of CPU\)")


@dataclass(frozen=True)
class Run:
    """One measured run: events, seconds, CPU seconds, and the process's peak RSS in MiB (None: the raw run)."""

    events: int
    seconds: float
    cpu_seconds: float
    rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Events per second of the process's own CPU: its rate on a core of its own, on a busy machine too."""
        return self.events / self.cpu_seconds


async def prepare_topic(bootstrap: str, prefix: str, args: argparse.Namespace) -> dict[int, int]:
    """Produces the history unless the topic already holds it (a rerun against KAFKA_BOOTSTRAP_SERVERS)."""
    topic = prefix + MessageStatusProjection.topic
    await ensure_topics(bootstrap, [TopicSpec(topic, args.partitions)])
    ends = await end_offsets(bootstrap, topic)
    if sum(ends.values()) >= args.events:
        print(f"history: {sum(ends.values()):,} events already on {topic}")
        return ends
    started = time.monotonic()
    producer = new_producer(bootstrap, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        pending = []
        for key, value in history(args.events, args.contacts, args.seed):
            pending.append(await producer.send(topic, value, key=key.encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    ends = await end_offsets(bootstrap, topic)
    print(f"history: {sum(ends.values()):,} events produced to {topic} in {time.monotonic() - started:.0f} s "
          f"(lifecycle weights {LIFECYCLES}; {args.contacts:,} contacts, {args.partitions} partitions)")
    return ends


async def raw_consume(bootstrap: str, topic: str, ends: dict[int, int], batch_size: int) -> Run:
    """The ceiling: aiokafka fetching the whole topic as catch_up does, touching each value, nothing else."""
    started, cpu = time.monotonic(), time.process_time()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=FETCH_BYTES)
    await consumer.start()
    count, size = 0, 0
    try:
        partitions = [TopicPartition(topic, p) for p in ends]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while count < sum(ends.values()):
            for records in (await consumer.getmany(timeout_ms=1000, max_records=batch_size)).values():
                count += len(records)
                size += sum(len(record.value or b"") for record in records)
    finally:
        await consumer.stop()
    return Run(count, time.monotonic() - started, time.process_time() - cpu)


def replay(command: Sequence[str], py_spy: Sequence[str] = ()) -> Run:
    """Runs `switchboard replay ...` as a process; its own events and seconds, and its peak RSS."""
    argv = [*py_spy, sys.executable, "-m", "switchboard.cli", "replay", *command]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    found = _REBUILT.search(output)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"replay {' '.join(command)} failed ({process.returncode}):\n{output}")
    return Run(int(found[1].replace(",", "")), float(found[2]), float(found[3]), usage.ru_maxrss / 1024)


@contextmanager
def postgres_server(wanted: bool) -> Iterator[str | None]:
    """The benchmark's own PostgreSQL (var/postgres/bench-replay), or None when only RocksDB is measured."""
    if not wanted:
        yield None
        return
    from switchboard.localpg import local_postgres

    server = local_postgres("bench-replay", port=POSTGRES_PORT)
    server.start()
    print(f"postgres: local server at {server.dsn()}")
    try:
        yield server.dsn()
    finally:
        server.stop()


@contextmanager
def fresh_target(store: str, dsn: str | None) -> Iterator[list[str]]:
    """Options for a replay into nothing yet: a new root folder, or a new database dropped afterwards."""
    root = Path(tempfile.mkdtemp(prefix="sb-bench-replay-"))
    if store == "rocksdb":
        try:
            yield ["--root", str(root), "--store", "rocksdb"]
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    import psycopg

    assert dsn is not None
    name = f"bench_replay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ["--root", str(root), "--store", "postgres", "--postgres-dsn",
               psycopg.conninfo.make_conninfo(dsn, dbname=name)]
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(root, ignore_errors=True)


def spread(rates: Sequence[float]) -> str:
    return f"**{statistics.median(rates):,.0f}** ({min(rates):,.0f} to {max(rates):,.0f})"


def print_table(events: int, raw: list[Run], measured: dict[tuple[str, str], list[Run]]) -> None:
    ceiling = statistics.median(run.rate for run in raw)
    print(f"\n{events:,} events, {len(raw)} runs each: median (min to max)\n")
    print("| replay | events/s | events per CPU-second | ratio to raw (events/s) | peak RSS (max) |\n"
          "| --- | --- | --- | --- | --- |")
    print(f"| raw aiokafka consume (ceiling) | {spread([r.rate for r in raw])} | "
          f"{spread([r.cpu_rate for r in raw])} | 1.00 | - |")
    for (projection, store), runs in measured.items():
        rate = statistics.median(run.rate for run in runs)
        peak = max(run.rss_mb or 0.0 for run in runs)
        print(f"| {projection} into {store} | {spread([r.rate for r in runs])} | {spread([r.cpu_rate for r in runs])} "
              f"| {rate / ceiling:.2f} | {peak:.0f} MiB |")


def run_all(bootstrap: str, args: argparse.Namespace, dsn: str | None) -> None:
    prefix = f"rb2-{args.events}-{args.contacts}-{args.partitions}-{args.seed}-"
    topic = prefix + MessageStatusProjection.topic
    ends = asyncio.run(prepare_topic(bootstrap, prefix, args))
    batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    if args.py_spy:
        with fresh_target(args.stores[0], dsn) as target:
            sampler = [args.py_spy, "record", "--format", "raw", "--rate", "200", "--output", args.profile_out, "--"]
            run = replay([args.projections[0], "--bootstrap", bootstrap, "--topic-prefix", prefix, *target, *batch],
                         sampler)
            print(f"profiled {args.projections[0]} into {args.stores[0]}: {run.rate:,.0f} events/s under py-spy; "
                  f"collapsed stacks in {args.profile_out}")
    raw: list[Run] = []
    measured: dict[tuple[str, str], list[Run]] = {}
    for n in range(args.repeat):
        raw.append(asyncio.run(raw_consume(bootstrap, topic, ends, args.batch_size or 5000)))
        print(f"run {n + 1}: raw aiokafka {raw[-1].rate:,.0f} events/s, {raw[-1].cpu_rate:,.0f} per CPU-second "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
        for projection in args.projections:
            for store in args.stores:
                with fresh_target(store, dsn) as target:
                    run = replay([projection, "--bootstrap", bootstrap, "--topic-prefix", prefix, *target, *batch])
                measured.setdefault((projection, store), []).append(run)
                print(f"run {n + 1}: {projection} into {store}: {run.events:,} events in {run.seconds:.2f} s, "
                      f"{run.rate:,.0f} events/s, {run.cpu_rate:,.0f} per CPU-second, peak RSS {run.rss_mb:.0f} MiB "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print_table(sum(ends.values()), raw, measured)


def _names(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [part for part in text.split(",") if part]
        unknown = set(names) - set(choices)
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return names
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000, help="events in the history")
    parser.add_argument("--contacts", type=int, default=20_000, help="distinct recipients")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each replay")
    parser.add_argument("--projections", type=_names(sorted(PROJECTIONS)), default=sorted(PROJECTIONS, reverse=True))
    parser.add_argument("--stores", type=_names(["rocksdb", "postgres"]), default=["rocksdb", "postgres"])
    parser.add_argument("--batch-size", type=int, help="passed to replay (default: replay's own)")
    parser.add_argument("--py-spy", help="a py-spy executable: profile one extra replay (the first projection and "
                                         "store) before the measured runs")
    parser.add_argument("--profile-out", default="/tmp/sb-replay-profile.txt", help="py-spy's collapsed stacks")
    args = parser.parse_args()
    print_machine()
    with benchmark_broker("bench-replay", BENCH_PORT) as broker, \
            postgres_server("postgres" in args.stores) as dsn:
        run_all(broker.bootstrap, args, dsn)


if __name__ == "__main__":
    main()
