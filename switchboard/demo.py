"""The main job for now: a local broker, one worker, sample orders end to end, and what happened."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

from streams.tally import TallyConfig
from switchboard.errors import SwitchboardError
from switchboard.kafka_io import produce_json
from switchboard.localkafka import LocalCluster, cache_root, external_bootstrap, local_cluster, project_root
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess, await_tallies

CUSTOMERS = ["acme-001", "globex-002", "initech-003"]


def sample_orders(count: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """Deterministic sample orders keyed by customer id."""
    rng = random.Random(seed)
    orders = []
    for number in range(1, count + 1):
        customer = CUSTOMERS[number % len(CUSTOMERS)]
        orders.append((customer, {"order_id": f"ord-{number:04d}", "amount_cents": rng.randrange(500, 50_000)}))
    return orders


def run_demo(messages: int, partitions: int, keep_broker: bool) -> int:
    """Runs the scenario and prints each processed order and the final totals per customer."""
    if messages < 1:
        raise SwitchboardError("--messages must be at least 1")
    bootstrap, cluster = _kafka()
    run_id = time.strftime("%Y%m%d-%H%M%S")
    config = TallyConfig(bootstrap=bootstrap, data_dir=str(project_root() / "var" / "demo" / run_id / "state"),
                         app_id=f"switchboard-demo-{run_id}", topic_prefix=f"demo-{run_id}-", partitions=partitions)
    worker = WorkerProcess(config, Path(config.data_dir).parent / "worker.log")
    try:
        _run_scenario(config, worker, messages)
    finally:
        _shutdown(worker, cluster, keep_broker)
    return 0


def _kafka() -> tuple[str, LocalCluster | None]:
    external = external_bootstrap()
    if external is not None:
        print(f"Using KAFKA_BOOTSTRAP_SERVERS={external}")
        return external, None
    cluster = local_cluster("dev")
    cluster.start(cache_root())
    print(f"Kafka {cluster.version} ready at {cluster.bootstrap_servers}")
    return cluster.bootstrap_servers, cluster


def _run_scenario(config: TallyConfig, worker: WorkerProcess[TallyConfig], messages: int) -> None:
    asyncio.run(ensure_topics(config.bootstrap, config.topic_specs()))
    worker.start()
    orders = sample_orders(messages)
    asyncio.run(produce_json(config.bootstrap, config.orders_topic, orders))
    print(f"Sent {len(orders)} orders to {config.orders_topic}; waiting for the worker's tallies...")
    wanted = {order["order_id"] for _, order in orders}
    try:
        tallies = asyncio.run(await_tallies(config, wanted, [worker], timeout=120))
    except TimeoutError as error:
        raise SwitchboardError(f"{error}\nworker log tail:\n{worker.log_tail()}") from error
    _print_report(orders, tallies)


def _print_report(orders: list[tuple[str, dict[str, Any]]], tallies: list[dict[str, Any]]) -> None:
    amounts = {order["order_id"]: order["amount_cents"] for _, order in orders}
    print(f"\n{'order':<10} {'customer':<12} {'amount':>10} {'orders':>7} {'total':>12}  worker")
    for t in sorted(tallies, key=lambda t: t["order_id"]):
        print(f"{t['order_id']:<10} {t['customer_id']:<12} {amounts[t['order_id']] / 100:>10.2f} "
              f"{t['orders']:>7} {t['total_cents'] / 100:>12.2f}  {t['worker']}")
    final = {t["customer_id"]: t for t in tallies}
    print("\nFinal totals per customer (from the worker's RocksDB table):")
    for customer, t in sorted(final.items()):
        print(f"  {customer:<12} {t['orders']} orders, {t['total_cents'] / 100:.2f}")
    print(f"\nProcessed {len(orders)} of {len(orders)} orders end to end.")


def _shutdown(worker: WorkerProcess[TallyConfig], cluster: LocalCluster | None, keep_broker: bool) -> None:
    if worker.is_running():
        worker.stop()
    if cluster is not None and not keep_broker:
        cluster.stop()
        print("Kafka stopped (use --keep-broker to leave it running).", file=sys.stderr)
