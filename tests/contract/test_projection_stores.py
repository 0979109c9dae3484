"""Every projection store keeps rows and positions together, in the manner of eventsourcing's recorder tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from projections import MemoryStore, ProjectionStore, RocksStore


class ProjectionStoreContract:
    """Subclass as `Test...` and override the `store` fixture (and `reopen`, if the store is durable)."""

    @pytest.fixture
    def store(self) -> Iterator[ProjectionStore]:
        raise NotImplementedError

    def reopen(self, store: ProjectionStore) -> ProjectionStore:
        return store

    def test_an_empty_store_has_no_rows_and_no_positions(self, store: ProjectionStore) -> None:
        assert store.get("msg:1") is None
        assert store.positions() == {}
        assert list(store.items()) == []

    def test_rows_and_positions_are_committed_together(self, store: ProjectionStore) -> None:
        store.commit({"msg:1": {"status": "sent"}, "rcpt:a": ["1"]}, {0: 10, 3: 4})
        store.commit({"msg:1": {"status": "read"}}, {0: 12})
        store = self.reopen(store)
        assert store.get("msg:1") == {"status": "read"}
        assert store.positions() == {0: 12, 3: 4}

    def test_a_none_value_deletes_its_row(self, store: ProjectionStore) -> None:
        store.commit({"due:1": {"m": 1}, "due:2": {"m": 2}}, {0: 1})
        store.commit({"due:1": None}, {0: 2})
        store = self.reopen(store)
        assert store.get("due:1") is None
        assert list(store.items("due:")) == [("due:2", {"m": 2})]

    def test_items_are_listed_by_prefix_in_key_order(self, store: ProjectionStore) -> None:
        store.commit({"msg:b": 2, "msg:a": 1, "rcpt:x": [1]}, {0: 1})
        assert list(store.items("msg:")) == [("msg:a", 1), ("msg:b", 2)]
        assert [key for key, _ in store.items()] == ["msg:a", "msg:b", "rcpt:x"]

    def test_many_rows_are_read_at_once(self, store: ProjectionStore) -> None:
        store.commit({"msg:a": {"n": 1}, "msg:b": {"n": 2}}, {0: 1})
        store = self.reopen(store)
        found = store.get_many(["msg:b", "msg:absent", "msg:a", "msg:b"])
        assert found == {"msg:b": {"n": 2}, "msg:absent": None, "msg:a": {"n": 1}}
        assert store.get_many(["msg:a"]) == {"msg:a": {"n": 1}}  # PostgreSQL: from its cache now
        assert store.get_many([]) == {}


class TestMemoryStore(ProjectionStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[ProjectionStore]:
        yield MemoryStore()  # noqa: PT022  # the contract's fixture is a generator; overrides keep its type


class TestRocksStore(ProjectionStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ProjectionStore]:
        self.path = tmp_path / "rocks"
        self.open = RocksStore(self.path)
        yield self.open
        self.open.close()

    def reopen(self, store: ProjectionStore) -> ProjectionStore:
        store.close()  # what a restart does: only what was committed is there
        self.open = RocksStore(self.path)
        return self.open
