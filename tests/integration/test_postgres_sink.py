"""The PostgreSQL sink killed in the middle of a batch and restarted: no row lost or doubled, and replay agrees."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from projections import PROJECTIONS, MemoryStore, MessageStatusProjection, catch_up, end_offsets
from switchboard.kafka_io import new_producer
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.postgres_support import message_events

MESSAGES = 2000  # about 14,800 events
# The sink is killed three times, blocked before it writes each of these tables in a batch's transaction.
KILL_POINTS = ("message_status_v1_rows", "message_status_v1", "message_status_v1_positions")
SINK = "switchboard message_status_v1_rows writer"  # the sink's application_name in pg_stat_activity


async def test_a_sink_killed_mid_batch_resumes_exactly_after_its_last_commit(
        kafka_bootstrap: str, unique_prefix: str, postgres_database: str, tmp_path: Path) -> None:
    topic = unique_prefix + MessageStatusProjection.topic
    await _produce(kafka_bootstrap, topic, message_events(MESSAGES))
    ends = await end_offsets(kafka_bootstrap, topic)
    sink = ["project", "message-status", "--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix,
            "--root", str(tmp_path), "--store", "postgres", "--postgres-dsn", postgres_database]

    before = 0
    for table in KILL_POINTS:
        killed = await asyncio.create_subprocess_exec(sys.executable, "-m", "switchboard.cli", *sink, "--batch-size",
                                                      "250", stderr=asyncio.subprocess.DEVNULL)
        await _kill_when_blocked_at(killed, postgres_database, table, before)
        committed = _positions(postgres_database)
        assert before < sum(committed.values()) < sum(ends.values())
        # What survived is exactly the events up to the committed positions: the open batch left nothing behind.
        target = {p: committed.get(p, 0) for p in ends}
        assert _rows(postgres_database) == await _rebuilt(kafka_bootstrap, topic, target)
        before = sum(committed.values())

    code, output = await _switchboard(*sink)
    assert code == 0, output
    assert _positions(postgres_database) == ends
    expected = await _rebuilt(kafka_bootstrap, topic, ends)
    assert _rows(postgres_database) == expected
    assert _typed_statuses(postgres_database) == {key[4:]: row["status"] for key, row in expected.items()
                                                  if key.startswith("msg:")}
    assert len(_typed_statuses(postgres_database)) == MESSAGES


async def test_every_projection_rebuilt_in_postgres_from_offset_zero_equals_the_live_one(
        kafka_bootstrap: str, unique_prefix: str, postgres_database: str, tmp_path: Path) -> None:
    topic = unique_prefix + MessageStatusProjection.topic
    await _produce(kafka_bootstrap, topic, message_events(400))
    for name in sorted(PROJECTIONS):
        common = [name, "--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix, "--root", str(tmp_path),
                  "--store", "postgres", "--postgres-dsn", postgres_database]
        code, output = await _switchboard("project", *common)
        assert code == 0, output
        code, output = await _switchboard("replay", *common, "--verify", "--switch")
        assert code == 0, output
        assert "v2 is identical to v1" in output, output
        assert "now serving v2" in output


async def _kill_when_blocked_at(process: asyncio.subprocess.Process, dsn: str, table: str, beyond: int) -> None:
    """Once the sink has committed past `beyond` events, locks `table` against writes, waits until the sink's next
    batch, having written to its transaction, waits for that lock, and SIGKILLs the sink there: mid-batch."""
    with psycopg.connect(dsn, autocommit=True) as watcher, psycopg.connect(dsn) as holder:
        await _until(process, lambda: sum(_positions_in(watcher).values()) > beyond)
        holder.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(table)))  # reads still pass
        await _until(process, lambda: watcher.execute(
            "SELECT wait_event_type, backend_xid IS NOT NULL FROM pg_stat_activity WHERE application_name = %s "
            "AND datname = current_database()", (SINK,)).fetchone() == ("Lock", True))
        process.kill()
        await process.wait()
        # The orphaned session runs its statement once the lock goes, finds no client and rolls back.
        holder.rollback()


async def _until(process: asyncio.subprocess.Process, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert process.returncode is None, "the sink finished before it could be killed"
        if asyncio.get_running_loop().time() > deadline:
            process.kill()  # never leave it behind, blocked on a lock that goes with this test
            await process.wait()
            raise AssertionError(f"the sink did not get there within {timeout:g}s")
        await asyncio.sleep(0.01)


def _positions_in(connection: psycopg.Connection[Any]) -> dict[int, int]:
    if connection.execute("SELECT to_regclass('message_status_v1_positions')").fetchone() == (None,):
        return {}
    return dict(connection.execute("SELECT partition, next_offset FROM message_status_v1_positions").fetchall())


def _positions(dsn: str) -> dict[int, int]:
    with psycopg.connect(dsn) as connection:
        return _positions_in(connection)


def _rows(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as connection:
        return dict(connection.execute("SELECT key, value FROM message_status_v1_rows").fetchall())


def _typed_statuses(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as connection:
        return dict(connection.execute("SELECT message_id, status FROM message_status_v1").fetchall())


async def _rebuilt(bootstrap: str, topic: str, target: dict[int, int]) -> dict[str, Any]:
    memory = MemoryStore()
    await catch_up(bootstrap, topic, MessageStatusProjection(), memory, target)
    return dict(memory.items())


async def _produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    await ensure_topics(bootstrap, [TopicSpec(topic, 6)])
    producer = new_producer(bootstrap, linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key.encode()) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _switchboard(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "switchboard.cli", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()
