"""A worker's /healthz, /readyz and /metrics: ready after recovery, and metrics that count what it processed."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from streams.tally import TallyConfig
from switchboard.kafka_io import collect_json, produce_json
from switchboard.topics import ensure_topics
from switchboard.workers import TallyWorker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url) as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return 0  # not listening yet


async def _until_ready(url: str, worker: TallyWorker, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while await _status(session, f"{url}/readyz") != 200:
            assert worker.is_running(), worker.log_tail()
            assert time.monotonic() < deadline, f"/readyz not 200 after {timeout:.0f}s"
            await asyncio.sleep(0.2)  # polling an HTTP endpoint: there is nothing to subscribe to


async def test_worker_serves_health_readiness_and_metrics(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_worker: Callable[[TallyConfig], TallyWorker]
) -> None:
    port = _free_port()
    config = TallyConfig(bootstrap=kafka_bootstrap, data_dir=str(tmp_path / "state"), app_id=f"{unique_prefix}app",
                         topic_prefix=unique_prefix, partitions=3, web_port=port)
    await ensure_topics(kafka_bootstrap, config.topic_specs())
    worker = start_worker(config)
    url = f"http://127.0.0.1:{port}"
    await _until_ready(url, worker)

    orders: list[tuple[str, dict[str, Any]]] = [(f"c-{n % 4}", {"order_id": f"o-{n}", "amount_cents": n})
                                                 for n in range(25)]
    await produce_json(kafka_bootstrap, config.orders_topic, orders)
    await collect_json(kafka_bootstrap, config.tallies_topic, lambda seen: len(seen) >= 25, timeout=120)

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/healthz") as health:
            assert health.status == 200
            assert (await health.json()) == {"status": "ok"}
        async with session.get(f"{url}/metrics") as metrics:
            assert metrics.status == 200
            text = await metrics.text()
    assert _sample(text, "switchboard_ready") == 1
    assert _sample(text, 'switchboard_stage_events_total{stage="tally"}') == 25
    assert _sample(text, 'switchboard_stage_errors_total{stage="tally"}') == 0
    assert _sample(text, 'switchboard_stage_duration_seconds_count{stage="tally"}') == 25
    lags = re.findall(rf'^switchboard_consumer_lag{{partition="\d",topic="{re.escape(config.orders_topic)}"}} (\S+)$',
                      text, re.MULTILINE)
    assert lags, "no consumer lag series for the orders topic"
    assert all(float(lag) == 0 for lag in lags)  # everything produced was processed


def _sample(exposition: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", exposition, re.MULTILINE)
    assert found, f"{series} missing from /metrics"
    return float(found.group(1))
