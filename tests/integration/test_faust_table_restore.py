"""A faust agent's RocksDB table survives the loss of its local state: it is restored from the changelog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.tally import TallyConfig
from switchboard.kafka_io import produce_json
from switchboard.topics import ensure_topics
from switchboard.workers import TallyWorker, await_tallies

CUSTOMERS = ["c-ana", "c-bruno", "c-carla"]


def _orders(start: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    return [(CUSTOMERS[n % 3], {"order_id": f"o-{n:03d}", "amount_cents": 100 * n})
            for n in range(start, start + count)]


async def _tallies_for(config: TallyConfig, orders: list[tuple[str, dict[str, Any]]],
                       worker: TallyWorker) -> dict[str, dict[str, Any]]:
    wanted = {order["order_id"] for _, order in orders}
    values = await await_tallies(config, wanted, [worker], timeout=120)
    return {v["order_id"]: v for v in values if v["order_id"] in wanted}


async def test_table_restored_from_changelog_into_empty_state_dir(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_worker: Callable[[TallyConfig], TallyWorker]
) -> None:
    first = TallyConfig(bootstrap=kafka_bootstrap, data_dir=str(tmp_path / "state-a"), app_id=f"{unique_prefix}app",
                        topic_prefix=unique_prefix, worker_name="a", partitions=3)
    await ensure_topics(kafka_bootstrap, first.topic_specs())
    worker_a = start_worker(first)
    before = _orders(0, 9)
    await produce_json(kafka_bootstrap, first.orders_topic, before)
    await _tallies_for(first, before, worker_a)
    assert worker_a.stop() == 0, worker_a.log_tail()

    empty_state_dir = tmp_path / "state-b"
    assert not empty_state_dir.exists()
    second = TallyConfig(**{**first.__dict__, "data_dir": str(empty_state_dir), "worker_name": "b"})
    worker_b = start_worker(second)
    after = _orders(9, 3)
    await produce_json(kafka_bootstrap, second.orders_topic, after)
    tallies = await _tallies_for(second, after, worker_b)

    for customer, order in after:
        expected_orders = sum(1 for c, _ in before + after[: after.index((customer, order)) + 1] if c == customer)
        expected_total = sum(o["amount_cents"] for c, o in before + after if c == customer
                             and int(o["order_id"][2:]) <= int(order["order_id"][2:]))
        got = tallies[order["order_id"]]
        assert got["worker"] == "b"
        assert (got["orders"], got["total_cents"]) == (expected_orders, expected_total), customer
    assert await _changelog_policy(kafka_bootstrap, f"{first.app_id}-{first.table_name}-changelog") == "compact"


async def _changelog_policy(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = {entry[0]: entry[1] for entry in response.resources[0][4]}
    return str(entries["cleanup.policy"])
