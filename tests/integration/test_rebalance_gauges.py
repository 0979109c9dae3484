"""After a rebalance, each sender account's gauges and each partition's lag come from its current owner only."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from streams.pipeline._runtime import Topics
from streams.pipeline.app import PipelineSettings
from switchboard.groups import wait_for_stable_group
from switchboard.kafka_io import MURMUR2_PARTITIONER, produce_json
from switchboard.workers import WorkerProcess
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import TENANT, contact_id, write_pipeline

PARTITIONS = 6


def _one_sender_per_partition() -> dict[str, int]:
    """Sender ids of the `bulk` channel whose dispatch keys land on each partition once."""
    chosen: dict[int, str] = {}
    for n in itertools.count():
        sender = f"b{n}"
        partition = MURMUR2_PARTITIONER(f"bulk/{sender}".encode(), list(range(PARTITIONS)), list(range(PARTITIONS)))
        chosen.setdefault(partition, sender)
        if len(chosen) == PARTITIONS:
            return {sender: partition for partition, sender in chosen.items()}
    raise AssertionError("unreachable")


SENDERS = _one_sender_per_partition()
BULK_CHANNEL = '''
[[channels]]
id = "bulk"
kind = "sms"
tenant = "acme"
provider = "sms-gateway"
driver = "inprocess"
''' + "".join(f'''[[channels.senders]]
id = "{sender}"
address = "+49150000001{n:02d}"
per_second = 1000
''' for n, sender in enumerate(SENDERS))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _jobs(round_: str) -> list[tuple[str, dict[str, Any]]]:
    """One send job per bulk sender, straight onto sb.dispatch (the writer's output, keyed as it keys them)."""
    jobs = []
    for n, sender in enumerate(SENDERS):
        job = {"kind": "send", "v": 1, "message_id": str(uuid.uuid4()), "contact_id": contact_id(f"{round_}-{n}"),
               "tenant": TENANT, "attempt": 1, "channel": "bulk", "sender": sender, "address": f"+4917055{n:05d}",
               "content": {"type": "text", "body": "hello"}, "priority": "normal"}
        jobs.append((f"bulk/{sender}", job))
    return jobs


async def _scrape(port: int) -> dict[str, set[str]]:
    """Senders with a backlog gauge, and `topic/partition` with a lag series, in one worker's /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        text = await answer.text()
    found: dict[str, set[str]] = {"senders": set(), "lag": set()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "switchboard_dispatch_queued":
                found["senders"].add(sample.labels["sender"])
            elif sample.name == "switchboard_consumer_lag":
                found["lag"].add(f"{sample.labels['topic']}/{sample.labels['partition']}")
    return found


async def _ready(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/readyz") as answer:
            return answer.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def _until(condition: Callable[[], Any], workers: list[WorkerProcess[PipelineSettings]], what: str,
                 timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        for worker in workers:
            assert worker.is_running(), worker.log_tail()
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.2)  # polling HTTP endpoints: there is nothing to subscribe to


async def test_a_worker_that_loses_partitions_stops_reporting_their_senders_and_lag(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    config = write_pipeline(tmp_path, partitions=PARTITIONS, extra=BULK_CHANNEL)
    dispatch = Topics(unique_prefix).dispatch
    first_port, second_port = _free_port(), _free_port()
    first = await start_pipeline(config, "pipeline-1", web_port=first_port)
    await _until(lambda: _ready(first_port), [first], "first worker ready")
    await produce_json(kafka_bootstrap, dispatch, _jobs("before"))

    async def first_reports_all() -> bool:
        return set(SENDERS) <= {key.split("/", 1)[1] for key in (await _scrape(first_port))["senders"]}

    await _until(first_reports_all, [first], "the only worker reports every sender account")

    second = await start_pipeline(config, "pipeline-2", web_port=second_port)
    await wait_for_stable_group(kafka_bootstrap, f"{unique_prefix}pipeline", members=2, timeout=120)
    await _until(lambda: _both_ready(first_port, second_port), [first, second], "both workers ready")
    rounds = itertools.count()
    sent_at = 0.0

    async def each_sender_reported_by_one_worker() -> bool:
        """Jobs keep coming (every 5 s): a rebalance, which a loaded machine may repeat, removes the gauges of an
        idle sender account everywhere until its next job. Without the fix, the first worker keeps reporting every
        account it ever had, so some account is always reported twice."""
        nonlocal sent_at
        if time.monotonic() - sent_at > 5:
            await produce_json(kafka_bootstrap, dispatch, _jobs(f"after-{next(rounds)}"))
            sent_at = time.monotonic()
        a, b = await _scrape(first_port), await _scrape(second_port)
        bulk_a, bulk_b = _bulk(a["senders"]), _bulk(b["senders"])
        lag_a, lag_b = _of_topic(a["lag"], dispatch), _of_topic(b["lag"], dispatch)
        every = {f"bulk/{sender}" for sender in SENDERS} <= bulk_a | bulk_b
        return every and bool(bulk_b) and not bulk_a & bulk_b and bool(lag_b) and not lag_a & lag_b

    await _until(each_sender_reported_by_one_worker, [first, second],
                 "each sender account and dispatch partition reported by exactly one worker", timeout=300)


def _bulk(senders: set[str]) -> set[str]:
    return {sender for sender in senders if sender.startswith("bulk/")}


def _of_topic(partitions: set[str], topic: str) -> set[str]:
    return {tp for tp in partitions if tp.startswith(topic + "/")}


async def _both_ready(first: int, second: int) -> bool:
    return await _ready(first) and await _ready(second)
