"""The order-tally pipeline: a faust agent keeping per-customer totals in a RocksDB table with a changelog."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import EventT
from prometheus_client import CollectorRegistry

from streams import _faust_fixes
from streams.observability import StageMetrics, install_endpoints
from switchboard import logs
from switchboard.topics import AUDIT_LOG_CONFIG, TopicSpec, ensure_topics


@dataclass(frozen=True)
class TallyConfig:
    """Where a tally worker connects, what it names its topics and where it keeps local state."""

    bootstrap: str
    data_dir: str
    app_id: str = "switchboard-tally"
    topic_prefix: str = ""
    worker_name: str = "worker-1"
    partitions: int = 6
    web_host: str = "127.0.0.1"
    web_port: int | None = None  # None: no HTTP endpoints (/healthz, /readyz, /metrics)
    replication: int = -1  # min(3, brokers); faust's changelogs need a number, resolved in run_worker

    @property
    def orders_topic(self) -> str:
        return f"{self.topic_prefix}orders"

    @property
    def tallies_topic(self) -> str:
        return f"{self.topic_prefix}order-tallies"

    @property
    def table_name(self) -> str:
        return f"{self.topic_prefix}customer-totals"

    def command_line(self) -> list[str]:
        """The `switchboard` arguments that run this worker."""
        return ["worker", "--bootstrap", self.bootstrap, "--app-id", self.app_id, "--topic-prefix", self.topic_prefix,
                "--data-dir", self.data_dir, "--name", self.worker_name, "--partitions", str(self.partitions),
                "--replication", str(self.replication), "--web-host", self.web_host,
                *(["--web-port", str(self.web_port)] if self.web_port else [])]

    def topic_specs(self) -> list[TopicSpec]:
        """Input and output topics; faust creates the table's compacted changelog itself."""
        return [
            TopicSpec(self.orders_topic, self.partitions, self.replication, AUDIT_LOG_CONFIG),
            TopicSpec(self.tallies_topic, self.partitions, self.replication, AUDIT_LOG_CONFIG),
        ]


def tally(previous: dict[str, Any] | None, order: dict[str, Any], offset: int) -> dict[str, Any]:
    """The customer's running totals after the order read at `offset` of the customer's partition.

    Faust re-delivers records after a rebalance (it discards commits for revoked partitions), so the state
    remembers the last source offset it applied; a record at or below it is a redelivery and changes nothing.
    One key always lives in one partition, whose offsets only grow, so this per-key check is exact.
    """
    state = previous or {"orders": 0, "total_cents": 0, "applied_offset": -1}
    if offset <= state["applied_offset"]:
        return state
    return {"orders": state["orders"] + 1, "total_cents": state["total_cents"] + int(order["amount_cents"]),
            "applied_offset": offset}


def is_redelivery(previous: dict[str, Any] | None, offset: int) -> bool:
    """Whether the record at `offset` was already applied to this state."""
    return previous is not None and offset <= previous["applied_offset"]


def build_app(config: TallyConfig) -> faust.App:
    """A faust app with one agent (concurrency 1: faust #606 loses offsets with more) and one table."""
    _faust_fixes.apply()
    app = faust.App(
        config.app_id,
        broker=[f"kafka://{server}" for server in config.bootstrap.split(",")],
        store="rocksdb://",
        datadir=config.data_dir,
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication,
        consumer_auto_offset_reset="earliest",
        web_enabled=config.web_port is not None,
        web_bind=config.web_host,
        web_port=config.web_port or 6066,
        processing_guarantee="at_least_once",
    )
    orders = app.topic(config.orders_topic, key_type=str, value_serializer="json", partitions=config.partitions)
    tallies = app.topic(config.tallies_topic, key_type=str, value_serializer="json", partitions=config.partitions)
    totals = app.Table(config.table_name, key_type=str, partitions=config.partitions)

    registry = CollectorRegistry()
    stage = StageMetrics("tally", registry)
    install_endpoints(app, registry)

    @app.agent(orders, concurrency=1)
    async def count_orders(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            with stage.observe():
                await _apply(event)

    async def _apply(event: EventT[Any]) -> None:
        customer, order, offset = event.key, cast(dict[str, Any], event.value), event.message.offset
        previous = totals.get(customer)
        totals[customer] = tally(previous, order, offset)
        # A redelivered record is emitted again (its first output may not have been durable), flagged.
        out = {"order_id": order["order_id"], "customer_id": customer, "worker": config.worker_name,
               "redelivered": is_redelivery(previous, offset), **totals[customer]}
        # Awaiting the delivery keeps at-least-once honest: the offset is committed after the output is durable.
        await (await tallies.send(key=customer, value=out))

    return app


def service_worker(app: faust.App) -> faust.Worker:
    """A faust Worker for a service (log level from SWITCHBOARD_LOG_LEVEL, default WARN), without the spinner.

    faust's terminal spinner sets the root logger to DEBUG so that it spins on every record, which makes
    every debug call on the hot path build a log record (profiled: a visible share of the worker's CPU).
    """
    level = os.environ.get(logs.ENV_LEVEL, "WARN")
    # Our handler (JSON lines with the trace, phone numbers masked) instead of faust's colour console.
    worker = faust.Worker(app, loglevel=level, redirect_stdouts=False, logging_config=logs.dict_config(level))
    worker.spinner = None
    return worker


def run_worker(config: TallyConfig) -> int:
    """Creates the topics and the state directory, then runs one worker until SIGTERM or SIGINT."""
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)  # faust creates only the last path component
    default_replication = asyncio.run(ensure_topics(config.bootstrap, config.topic_specs()))
    if config.replication <= 0:
        config = replace(config, replication=default_replication)
    app = build_app(config)
    service_worker(app).execute_from_commandline()
    return 0


def encode_order(order: dict[str, Any]) -> bytes:
    """The wire form of a sample order on the orders topic."""
    return json.dumps(order, separators=(",", ":")).encode()
