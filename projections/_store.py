"""Where a projection keeps its rows and the log positions they include, written together in one step."""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rocksdict import AccessType, Options, Rdict, WriteBatch

__all__ = ["MemoryStore", "ProjectionStore", "RocksStore"]

_POSITIONS = "~positions"
# One encoder for every row: json.dumps with options builds a new JSONEncoder per call (a replay writes millions).
_ENCODE = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class ProjectionStore(abc.ABC):
    """Rows (JSON values by key) and, per source partition, the next offset to read; both change atomically,
    so a restart neither loses nor doubles an event: it resumes exactly after what the rows include."""

    @abc.abstractmethod
    def get(self, key: str) -> Any | None:
        """The row at `key`, None if there is none."""

    # True where each `get` costs a round trip (a server): the runner then asks for a batch's rows in one call.
    batched_reads = False

    def get_many(self, keys: Iterable[str]) -> dict[str, Any | None]:
        """The rows at `keys` (None where there is none); stores with a round trip per `get` answer in one."""
        return {key: self.get(key) for key in keys}

    @abc.abstractmethod
    def positions(self) -> dict[int, int]:
        """Source partition -> the next offset to apply."""

    @abc.abstractmethod
    def commit(self, rows: Mapping[str, Any], positions: Mapping[int, int]) -> None:
        """Writes the rows (a None value deletes its key) and moves the positions, all or nothing."""

    @abc.abstractmethod
    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Every row whose key starts with `prefix`, in key order."""

    def close(self) -> None:  # noqa: B027  # optional: stores without resources need not override it
        """Releases the store's resources."""


class MemoryStore(ProjectionStore):
    """A store in a dict, for tests and for a projection rebuilt in memory to compare."""

    def __init__(self) -> None:
        self._rows: dict[str, Any] = {}
        self._positions: dict[int, int] = {}

    def get(self, key: str) -> Any | None:
        return self._rows.get(key)

    def positions(self) -> dict[int, int]:
        return dict(self._positions)

    def commit(self, rows: Mapping[str, Any], positions: Mapping[int, int]) -> None:
        for key, value in rows.items():
            if value is None:
                self._rows.pop(key, None)
            else:
                self._rows[key] = value
        self._positions.update(positions)

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        return iter(sorted((k, v) for k, v in self._rows.items() if k.startswith(prefix)))


class RocksStore(ProjectionStore):
    """A RocksDB directory (rocksdict): rows and positions in one WriteBatch."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """`read_only` opens a directory another process is writing (the API serving it), as of now."""
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        access = AccessType.read_only() if read_only else AccessType.read_write()
        self._db = Rdict(str(path), options, access_type=access)

    def get(self, key: str) -> Any | None:
        raw = self._db.get(key.encode())
        return None if raw is None else json.loads(raw)

    def positions(self) -> dict[int, int]:
        raw = self._db.get(_POSITIONS.encode())
        return {} if raw is None else {int(p): o for p, o in json.loads(raw).items()}

    def commit(self, rows: Mapping[str, Any], positions: Mapping[int, int]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in rows.items():
            if value is None:
                batch.delete(key.encode())
            else:
                batch.put(key.encode(), _ENCODE(value).encode())
        merged = {**self.positions(), **positions}
        batch.put(_POSITIONS.encode(), json.dumps({str(p): o for p, o in merged.items()}).encode())
        self._db.write(batch)

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for raw_key, raw_value in self._db.items(from_key=prefix.encode()):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            if not key.startswith(prefix):
                return
            if key != _POSITIONS:
                yield key, json.loads(raw_value)

    def close(self) -> None:
        self._db.close()
