"""`switchboard project NAME --follow --store postgres --web-port N`: ready once caught up with PostgreSQL answering,
its rounds counted as a stage, the rows in PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from projections import MessageStatusProjection
from switchboard.kafka_io import new_producer
from switchboard.topics import TopicSpec, ensure_topics
from switchboard.workers import WorkerProcess
from tests.integration.postgres_support import message_events

MESSAGES = 30


@dataclass(frozen=True)
class Follow:
    """`switchboard project message-status --follow` into PostgreSQL, with its endpoints."""

    bootstrap: str
    prefix: str
    dsn: str
    port: int
    root: str
    worker_name: str = "project-message-status"

    def command_line(self) -> list[str]:
        return ["project", "message-status", "--bootstrap", self.bootstrap, "--topic-prefix", self.prefix,
                "--root", self.root, "--store", "postgres", "--postgres-dsn", self.dsn, "--follow",
                "--web-port", str(self.port)]


async def test_a_following_projection_is_ready_with_postgres_and_counts_its_rounds(
        kafka_bootstrap: str, unique_prefix: str, postgres_database: str, tmp_path: Path) -> None:
    topic = unique_prefix + MessageStatusProjection.topic
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 6)])
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value, key=key.encode())
                               for key, value in message_events(MESSAGES)])
    finally:
        await producer.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    follow = WorkerProcess(Follow(kafka_bootstrap, unique_prefix, postgres_database, port, str(tmp_path / "p")),
                           tmp_path / "project.log")
    follow.start()
    try:
        body = await _ready(f"http://127.0.0.1:{port}/readyz", follow)
        assert body["checks"]["postgres"] == {"ok": True, "detail": "PostgreSQL answers SELECT 1"}
        assert body["checks"]["caught_up"]["ok"] is True
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
            metrics = await answer.text()
        rounds = [line for line in metrics.splitlines()
                  if line.startswith('switchboard_stage_events_total{stage="projection-message-status"}')]
        assert rounds, metrics
        assert float(rounds[0].split()[-1]) >= 1
        with psycopg.connect(postgres_database) as connection:
            count = connection.execute("SELECT count(*) FROM message_status").fetchone()
        assert count == (MESSAGES,)
    finally:
        follow.stop()


async def _ready(url: str, process: WorkerProcess[Follow], timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as answer:
                    if answer.status == 200:
                        return dict(await answer.json())
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            assert process.is_running(), process.log_tail()
            assert time.monotonic() < deadline, f"{url} not ready within {timeout:.0f} s"
            await asyncio.sleep(0.2)  # polling an HTTP endpoint: there is nothing to subscribe to
