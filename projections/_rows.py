"""The rows a projection run read or wrote lately, kept across batches so the store need not answer again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from projections._store import ProjectionStore

__all__ = ["RecentRows"]


class RecentRows:
    """A read-through view of a store holding the rows of the last batches (None for "no row"), in two
    generations: when the newer one holds `limit` keys it becomes the older one, and the older one is dropped.
    So it holds between `limit` and twice as many rows, each touched since the last turn-over or the one before,
    at the cost of two dict lookups. Sound while the run is the store's only writer: every write passes here.
    """

    def __init__(self, store: ProjectionStore, limit: int) -> None:
        self._store = store
        self._limit = max(0, limit)
        self._newer: dict[str, Any] = {}
        self._older: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        """The row at `key` as the store has it (None if there is none)."""
        newer = self._newer
        if key in newer:
            return newer[key]
        value = self._older[key] if key in self._older else self._store.get(key)
        self._keep({key: value})
        return value

    def peek(self, key: str) -> tuple[bool, Any | None]:
        """(True, row) when the row is held here, (False, None) when only the store could answer."""
        if key in self._newer:
            return True, self._newer[key]
        if key in self._older:
            return True, self._older[key]
        return False, None

    def prefetch(self, keys: Iterable[str]) -> None:
        """Reads the rows at `keys` that are not held here from the store in one call, and holds them."""
        missing = [key for key in keys if key not in self._newer and key not in self._older]
        if missing:
            self._keep(self._store.get_many(missing))

    def committed(self, rows: Mapping[str, Any]) -> None:
        """Rows just committed to the store (None: deleted)."""
        self._keep(rows)

    def __len__(self) -> int:
        return len(self._newer.keys() | self._older.keys())

    def _keep(self, rows: Mapping[str, Any]) -> None:
        if not self._limit:
            return
        self._newer.update(rows)
        if len(self._newer) >= self._limit:
            self._older, self._newer = self._newer, {}
