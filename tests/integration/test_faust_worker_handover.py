"""Two faust workers in one group split the partitions; when one stops, the other takes over without loss."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.tally import TallyConfig
from switchboard.groups import wait_for_stable_group
from switchboard.kafka_io import produce_json
from switchboard.topics import ensure_topics
from switchboard.workers import TallyWorker, await_tallies

PARTITIONS = 6
CUSTOMERS = [f"cust-{n:02d}" for n in range(30)]
Orders = list[tuple[str, dict[str, Any]]]


def _orders(start: int, count: int) -> Orders:
    return [(CUSTOMERS[n % len(CUSTOMERS)], {"order_id": f"o-{n:04d}", "amount_cents": n})
            for n in range(start, start + count)]


def _ids(orders: Orders) -> set[str]:
    return {order["order_id"] for _, order in orders}


async def _until_all_tallied(config: TallyConfig, orders: Orders, alive: list[TallyWorker]) -> list[dict[str, Any]]:
    return await await_tallies(config, _ids(orders), alive, timeout=180)


async def test_two_workers_split_partitions_and_survivor_takes_over(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_worker: Callable[[TallyConfig], TallyWorker]
) -> None:
    def config(name: str) -> TallyConfig:
        # A nested, not yet existing state directory: the worker must create its parents itself.
        return TallyConfig(bootstrap=kafka_bootstrap, data_dir=str(tmp_path / "state" / name),
                           app_id=f"{unique_prefix}app", topic_prefix=unique_prefix, worker_name=name,
                           partitions=PARTITIONS)

    await ensure_topics(kafka_bootstrap, config("one").topic_specs())
    one, two = start_worker(config("one")), start_worker(config("two"))
    await wait_for_stable_group(kafka_bootstrap, one.config.app_id, members=2, timeout=120)

    first = _orders(0, 300)
    await produce_json(kafka_bootstrap, one.config.orders_topic, first)
    before = await _until_all_tallied(one.config, first, [one, two])
    assert {v["worker"] for v in before} == {"one", "two"}  # the group really split the partitions
    assert one.stop() == 0, one.log_tail()

    second = _orders(300, 300)
    await produce_json(kafka_bootstrap, one.config.orders_topic, second)
    everything = await _until_all_tallied(one.config, first + second, [two])

    assert {v["worker"] for v in everything if v["order_id"] in _ids(second)} == {"two"}
    _assert_exact_totals(first + second, everything)


def _assert_exact_totals(orders: Orders, tallies: list[dict[str, Any]]) -> None:
    final: dict[str, int] = {}
    for tally in tallies:
        final[tally["customer_id"]] = max(final.get(tally["customer_id"], 0), tally["orders"])
    # Exact counts: records redelivered by a rebalance are recognised by their offset and not counted twice,
    # and the survivor continued from the other worker's table (restored from the changelog), not from zero.
    assert final == dict(Counter(customer for customer, _ in orders))
