"""PostgresStore passes the store contract, keeps the typed message_status table and serves versions through views."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from projections import ProjectionStore
from projections._postgres import PostgresStore, PostgresVersions, ProjectionStoreBusy
from tests.contract.test_projection_stores import ProjectionStoreContract


class TestPostgresStore(ProjectionStoreContract):
    @pytest.fixture
    def store(self, postgres_database: str) -> Iterator[ProjectionStore]:
        self.dsn = postgres_database
        self.open = PostgresStore(postgres_database, "contract", 1)
        yield self.open
        self.open.close()

    def reopen(self, store: ProjectionStore) -> ProjectionStore:
        store.close()  # a new session: only what was committed is there
        self.open = PostgresStore(self.dsn, "contract", 1)
        return self.open

    def test_a_failed_commit_changes_nothing(self, store: ProjectionStore) -> None:
        store.commit({"msg:1": {"status": "sent"}}, {0: 1})
        with pytest.raises(psycopg.Error):
            store.commit({"msg:1": {"status": "read"}, "bad": {"text": "nul \u0000"}}, {0: 2})  # jsonb refuses NUL
        assert store.get("msg:1") == {"status": "sent"}  # nor in what the store remembers
        store = self.reopen(store)
        assert store.get("msg:1") == {"status": "sent"}
        assert store.positions() == {0: 1}

    def test_keys_sort_bytewise_and_like_patterns_in_prefixes_are_literal(self, store: ProjectionStore) -> None:
        store.commit({"a_b:1": 1, "a%b:2": 2, "axb:3": 3, "B:4": 4, "a:5": 5}, {0: 1})
        assert [key for key, _ in store.items("a_")] == ["a_b:1"]
        assert [key for key, _ in store.items("a%")] == ["a%b:2"]
        assert [key for key, _ in store.items()] == ["B:4", "a%b:2", "a:5", "a_b:1", "axb:3"]

    def test_a_second_writer_of_the_same_version_is_refused(self, store: ProjectionStore) -> None:
        with pytest.raises(ProjectionStoreBusy, match="contract_v1_rows"):
            PostgresStore(self.dsn, "contract", 1, lock_timeout=0.5)
        other = PostgresStore(self.dsn, "contract", 2, lock_timeout=0.5)  # another version has its own lock
        other.close()


def _message_row(status: str, errors: list[dict[str, object]]) -> dict[str, object]:
    return {"message_id": "m-1", "tenant": "acme", "contact_id": "c-1", "version": 9, "phase": "accepted",
            "receipt": "delivered", "status": status, "attempts": 2, "channels": ["whatsapp", "sms"],
            "sender": "sms-main", "provider_message_ids": ["wamid.1", "sms.1"], "errors": errors, "reason": None,
            "category": "utility", "template": "order_shipped",
            "times": {"requested": "2026-03-01T09:00:00+00:00", "accepted": "2026-03-01T09:00:02.500000+00:00",
                      "delivered": "2026-03-01T09:00:04+00:00", "failed": "2026-03-01T09:00:01+00:00"}}


def test_the_typed_message_status_table_follows_the_rows_in_the_same_commit(postgres_database: str) -> None:
    store = PostgresStore(postgres_database, "message-status", 1)
    error = {"code": "131026", "class": "permanent", "detail": "not on WhatsApp", "attempt": 1, "at": "x"}
    try:
        store.commit({"msg:m-1": _message_row("delivered", [error]), "rcpt:c-1": ["m-1"]}, {0: 10})
        store.commit({"msg:m-gone": _message_row("sent", [])}, {0: 11})
        store.commit({"msg:m-gone": None}, {0: 12})
    finally:
        store.close()
    with psycopg.connect(postgres_database) as connection:
        rows = connection.execute(
            "SELECT message_id, status, channel, channel_path, attempts, requested_at, accepted_at, read_at, "
            "last_error_code, error_count FROM message_status_v1").fetchall()
    assert rows == [("m-1", "delivered", "sms", "whatsapp>sms", 2, datetime(2026, 3, 1, 9, tzinfo=UTC),
                     datetime(2026, 3, 1, 9, 0, 2, 500000, tzinfo=UTC), None, "131026", 1)]


def test_switching_versions_moves_the_views_bi_tools_read(postgres_database: str) -> None:
    versions = PostgresVersions(postgres_database, "message-status")
    assert (versions.current(), versions.next()) == (None, 1)
    for version, status in ((1, "sent"), (2, "read")):
        store = versions.open(version)
        store.commit({"msg:m-1": _message_row(status, [])}, {0: version})
        store.close()
    versions.switch(1)
    assert (versions.current(), versions.next()) == (1, 3)
    with psycopg.connect(postgres_database, autocommit=True) as connection:  # a transaction would block the switch
        assert connection.execute("SELECT status FROM message_status").fetchall() == [("sent",)]
        versions.switch(2)
        assert connection.execute("SELECT status FROM message_status").fetchall() == [("read",)]
        assert connection.execute("SELECT value->>'status' FROM message_status_rows").fetchall() == [("read",)]
        assert connection.execute("SELECT projection, version FROM projection_serving").fetchall() == [
            ("message-status", 2)]


def test_a_reader_sees_one_snapshot_and_never_blocks_the_writer(postgres_database: str) -> None:
    writer = PostgresStore(postgres_database, "message-status", 1)
    writer.commit({"msg:m-1": _message_row("sent", [])}, {0: 1})
    reader = PostgresStore(postgres_database, "message-status", 1, read_only=True)
    try:
        assert reader.positions() == {0: 1}  # the snapshot starts here
        writer.commit({"msg:m-1": _message_row("read", []), "msg:m-2": _message_row("sent", [])}, {0: 3})
        assert reader.positions() == {0: 1}
        assert [(key, row["status"]) for key, row in reader.items("msg:")] == [("msg:m-1", "sent")]
        with pytest.raises(TypeError, match="read-only"):
            reader.commit({}, {0: 9})
    finally:
        reader.close()
        writer.close()
