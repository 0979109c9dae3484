"""A read model in PostgreSQL backed up, restored into another database, and caught up from its restored positions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from projections import MessageStatusProjection, end_offsets
from tests.integration.postgres_support import message_events
from tests.integration.test_postgres_sink import _produce, _rebuilt, _switchboard


async def test_a_restored_backup_holds_the_rows_and_positions_and_catches_up_without_doubling(
        kafka_bootstrap: str, unique_prefix: str, postgres_database: str, postgres_dsn: str, tmp_path: Path) -> None:
    topic = unique_prefix + MessageStatusProjection.topic
    history = message_events(600)
    await _produce(kafka_bootstrap, topic, history[: len(history) // 2])
    sink = ["message-status", "--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix,
            "--root", str(tmp_path), "--store", "postgres"]
    await _ok("project", *sink, "--postgres-dsn", postgres_database)
    dump = tmp_path / "read-models.dump"
    await _ok("postgres", "backup", "--dsn", postgres_database, "--file", str(dump))
    backed_up = _state(postgres_database)

    await _produce(kafka_bootstrap, topic, history[len(history) // 2:])
    with _scratch_database(postgres_dsn) as scratch:
        await _ok("postgres", "restore", "--dsn", scratch, "--file", str(dump))
        assert _state(scratch) == backed_up
        await _ok("project", *sink, "--postgres-dsn", scratch)
        ends = await end_offsets(kafka_bootstrap, topic)
        rows, positions = _state(scratch)
        assert positions == ends
        assert rows == await _rebuilt(kafka_bootstrap, topic, ends)


async def test_a_restore_of_a_missing_or_broken_dump_says_so_and_changes_nothing(
        postgres_database: str, tmp_path: Path) -> None:
    code, output = await _switchboard("postgres", "restore", "--dsn", postgres_database,
                                      "--file", str(tmp_path / "none.dump"))
    assert code != 0
    assert f"no backup at {tmp_path / 'none.dump'}" in output
    broken = tmp_path / "broken.dump"
    broken.write_bytes(b"PGDMP not really a dump")
    code, output = await _switchboard("postgres", "restore", "--dsn", postgres_database, "--file", str(broken))
    assert code != 0
    assert "pg_restore failed" in output, output


async def _ok(*args: str) -> str:
    code, output = await _switchboard(*args)
    assert code == 0, output
    return output


def _state(dsn: str) -> tuple[dict[str, Any], dict[int, int]]:
    with psycopg.connect(dsn) as connection:
        rows: dict[str, Any] = dict(connection.execute("SELECT key, value FROM message_status_v1_rows").fetchall())
        positions: dict[int, int] = dict(connection.execute(
            "SELECT partition, next_offset FROM message_status_v1_positions").fetchall())
    return rows, positions


@contextmanager
def _scratch_database(server_dsn: str) -> Iterator[str]:
    name = f"restore_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
