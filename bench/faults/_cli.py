"""`bin/faults [SCENARIO ...] [--messages N] [--quick]`: the fault-injection suite, a tally table per scenario."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bench._common import print_machine
from bench.faults._check import Report
from bench.faults._run import ALL, Environment, run_scenario
from switchboard.localkafka import LocalCluster, cache_root, external_bootstrap, local_cluster
from switchboard.localpg import LocalPostgres, local_postgres

# Full sizes: the SIGKILL run is the 50,000 messages; the others are sized to take a few minutes each.
FULL = {"worker-sigkill": 50_000, "broker-restart": 5_000, "postgres-restart": 5_000, "simulator-faults": 2_000,
        "poison": 1_000, "state-loss": 5_000, "slow-sender": 5_000, "worker-join": 5_000}
QUICK = {"worker-sigkill": 300, "broker-restart": 400, "postgres-restart": 400, "simulator-faults": 100,
         "poison": 100, "state-loss": 200, "slow-sender": 600, "worker-join": 720}
KAFKA_PORT, HA_PORT, POSTGRES_PORT = 27092, 27192, 27432  # the suite's own; below the ephemeral range


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The clients' own complaints while a broker is down or a topic's metadata spreads would bury the tallies;
    # the parts' logs in the run's folder keep theirs.
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    names = args.scenarios or list(ALL)
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        print(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(ALL)}", file=sys.stderr)
        return 2
    sizes = {name: args.messages or (QUICK if args.quick else FULL)[name] for name in names}
    print_machine()
    print(f"fault-injection suite: {', '.join(f'{n} ({sizes[n]:,} messages)' for n in names)}", flush=True)
    reports = _run_all(names, sizes, args)  # each report's table is printed as its scenario ends
    failed = [r.scenario for r in reports if not r.ok]
    print(f"\n{len(reports) - len(failed)} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bin/faults", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(ALL)} (default: all)")
    parser.add_argument("--messages", type=int, help="messages per scenario (default: each scenario's full size)")
    parser.add_argument("--quick", action="store_true", help="a few hundred messages each (as the test suite)")
    parser.add_argument("--kafka-port", type=int, default=KAFKA_PORT, help=f"single broker (default {KAFKA_PORT})")
    parser.add_argument("--ha-port", type=int, default=HA_PORT,
                        help=f"first of the 3-broker cluster's six ports (default {HA_PORT})")
    parser.add_argument("--postgres-port", type=int, default=POSTGRES_PORT, help=f"default {POSTGRES_PORT}")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, state) afterwards")
    return parser


def _run_all(names: list[str], sizes: dict[str, int], args: argparse.Namespace) -> list[Report]:
    directory = Path(tempfile.mkdtemp(prefix="sb-faults-"))
    reports = []
    with ExitStack() as stack:
        single = local_cluster(f"faults-{args.kafka_port}", base_port=args.kafka_port)
        bootstrap = external_bootstrap() or _started(stack, single)
        cluster = _ha(stack, args.ha_port) if "broker-restart" in names else None
        postgres = _postgres(stack, args.postgres_port) if "postgres-restart" in names else None
        env = Environment(bootstrap, directory, cluster, postgres)
        for name in names:
            started = time.monotonic()
            print(f"-- {name}: {sizes[name]:,} messages ...", flush=True)
            report = asyncio.run(run_scenario(name, sizes[name], env))
            report.tally["seconds"] = round(time.monotonic() - started, 1)
            print("\n".join(report.lines()), flush=True)
            reports.append(report)
    if args.keep:
        print(f"run folder kept: {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)
    return reports


def _started(stack: ExitStack, cluster: LocalCluster) -> str:
    cluster.stop()
    shutil.rmtree(cluster.directory, ignore_errors=True)
    stack.callback(cluster.stop)
    cluster.start(cache_root())
    print(f"broker: local Apache Kafka {cluster.version}, {cluster.bootstrap_servers}", flush=True)
    return cluster.bootstrap_servers


def _ha(stack: ExitStack, port: int) -> LocalCluster:
    cluster = local_cluster(f"faults-ha-{port}", brokers=3, base_port=port)
    _started(stack, cluster)
    return cluster


def _postgres(stack: ExitStack, port: int) -> LocalPostgres:
    server = local_postgres(f"faults-{port}", port=port)
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)
    stack.callback(server.stop)
    server.start()
    print(f"postgres: {server.dsn()}", flush=True)
    return server


__all__ = ["FULL", "QUICK", "main"]
