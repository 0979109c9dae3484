"""The read models kept live during a scenario, then compared row for row with a rebuild from the log."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

from projections import PROJECTIONS, MemoryStore, ProjectionStore, catch_up, differences, end_offsets
from projections._backends import open_backend

NAMES = ("message-status", "delivery-stats")


@dataclass(frozen=True)
class Verified:
    """One projection's comparison: rows in the live version, rows differing from the rebuild, events folded."""

    name: str
    rows: int
    differing: list[str]
    events: int


class LiveProjections:
    """Both projections brought up to date in rounds while the scenario runs (as `switchboard project --follow`),
    in RocksDB under `root`; `verify` catches them up, rebuilds each from offset 0 to the same positions, compares."""

    def __init__(self, bootstrap: str, prefix: str, root: Path, batch_size: int = 500) -> None:
        self.bootstrap, self.prefix, self.root, self.batch_size = bootstrap, prefix, root, batch_size
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            for name in NAMES:
                await self._round(name)
            await asyncio.sleep(0.5)  # between rounds, as `project --follow` polls

    async def _round(self, name: str) -> None:
        backend = open_backend("rocksdb", name, self.root, None)
        version = backend.current() or backend.next()
        backend.switch(version)
        topic = self.prefix + PROJECTIONS[name].topic
        store = backend.open(version)
        try:
            await catch_up(self.bootstrap, topic, PROJECTIONS[name](), store,
                           await end_offsets(self.bootstrap, topic), batch_size=self.batch_size)
        finally:
            store.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def verify(self) -> list[Verified]:
        await self.stop()
        found = []
        for name in NAMES:
            await self._round(name)  # up to the end of the log as it is now
            backend = open_backend("rocksdb", name, self.root, None)
            version = backend.current()
            assert version is not None
            live = backend.open(version, read_only=True)
            try:
                found.append(await rebuilt_equals(self.bootstrap, self.prefix, name, live))
            finally:
                live.close()
        return found


async def rebuilt_equals(bootstrap: str, prefix: str, name: str, live: ProjectionStore) -> Verified:
    """Rebuilds `name` from offset 0 to the live store's positions in memory and lists the differing rows."""
    rebuilt = MemoryStore()
    done = await catch_up(bootstrap, prefix + PROJECTIONS[name].topic, PROJECTIONS[name](), rebuilt, live.positions())
    rows = sum(1 for _ in live.items())
    return Verified(name, rows, differences(live, rebuilt), done.applied)


async def replay_verify(name: str, common: list[str]) -> tuple[bool, str]:
    """`switchboard replay NAME --verify` with these options: (identical, its output)."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "switchboard.cli", "replay", name, *common,
                                                   "--verify", stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    return process.returncode == 0 and "is identical to" in text, text
