"""Where `switchboard project` and `replay` keep a projection's versions: RocksDB folders or PostgreSQL tables."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from projections._store import ProjectionStore, RocksStore
from projections._versions import ProjectionVersions

__all__ = ["BACKENDS", "Backend", "RocksBackend", "open_backend"]

BACKENDS = ("rocksdb", "postgres")


class Backend(Protocol):
    """The versions of one projection: which serves, the next one to build, and a store for each."""

    def current(self) -> int | None: ...

    def next(self) -> int: ...

    def switch(self, version: int) -> None: ...

    def open(self, version: int, read_only: bool = False) -> ProjectionStore:
        """`read_only`: a snapshot of a version another process may be writing (the serving one, to compare)."""

    def where(self, version: int) -> str: ...


class RocksBackend:
    """`<root>/<projection>/v<N>/` RocksDB directories (see ProjectionVersions)."""

    def __init__(self, root: Path, projection: str) -> None:
        self._versions = ProjectionVersions(root, projection)

    def current(self) -> int | None:
        return self._versions.current()

    def next(self) -> int:
        return self._versions.next()

    def switch(self, version: int) -> None:
        self._versions.switch(version)

    def open(self, version: int, read_only: bool = False) -> ProjectionStore:
        return RocksStore(self._versions.path(version), read_only=read_only)

    def where(self, version: int) -> str:
        return str(self._versions.path(version))


def open_backend(store: str, projection: str, root: Path, dsn: str | None) -> Backend:
    """`--store rocksdb` (under `root`) or `--store postgres` (at `dsn`, checked to answer first)."""
    if store == "rocksdb":
        return RocksBackend(root, projection)
    from projections._postgres import PostgresVersions  # psycopg only for those who use it
    from switchboard.localpg import check_reachable, default_dsn

    chosen = dsn or default_dsn()
    check_reachable(chosen)
    return PostgresVersions(chosen, projection)
