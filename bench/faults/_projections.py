"""The read models kept live during a scenario, then compared row for row with a rebuild from the log."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from bench.faults._log import stop_task
from projections import PROJECTIONS, MemoryStore, Progress, ProjectionStore, catch_up, differences, end_offsets
from projections._backends import open_backend

NAMES = ("message-status", "delivery-stats")
PROGRESS_EVERY = 5.0  # seconds between a verifier's progress lines


@dataclass(frozen=True)
class Verified:
    """One projection's comparison: rows in the live version, rows differing from the rebuild, events folded."""

    name: str
    rows: int
    differing: list[str]
    events: int
    caught_up: int = 0  # events the final catch-up applied to the live version before the comparison


@dataclass(frozen=True)
class Target:
    """Where one projection's live version is: what a verifier process needs to catch it up and rebuild it."""

    bootstrap: str
    prefix: str
    name: str
    root: Path
    store: str = "rocksdb"
    dsn: str | None = None

    def options(self) -> list[str]:
        """The `switchboard project`/`replay` options that reach this projection's store and topic."""
        found = ["--bootstrap", self.bootstrap, "--topic-prefix", self.prefix, "--root", str(self.root),
                 "--store", self.store]
        return found + (["--postgres-dsn", self.dsn] if self.dsn else [])


class LiveProjections:
    """Both projections kept up to date while the scenario runs (RocksDB under `root`), so the final catch-up is
    small; `verify` stops the following and compares each with a rebuild (see `_verify`).

    With `processes` (the full sizes) by `switchboard project NAME --follow` children, and verified by a process
    per projection, both at once, so the runner's event loop only plays the scenario; without (the quick sizes,
    where starting four Python processes costs more than the folding they would spread) by rounds of `catch_up`
    in the runner, verified one after the other there."""

    def __init__(self, bootstrap: str, prefix: str, root: Path, log: Path, *, processes: bool = True,
                 batch_size: int = 500) -> None:
        self.targets = [Target(bootstrap, prefix, name, root) for name in NAMES]
        self.log, self.processes, self.batch_size = log, processes, batch_size
        self._children: list[asyncio.subprocess.Process] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.processes:
            self._task = asyncio.create_task(self._follow())
            return
        with self.log.open("ab") as log:  # the children keep their own copy of the descriptor
            for target in self.targets:
                self._children.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "switchboard.cli", "project", target.name, *target.options(), "--follow",
                    "--batch-size", str(self.batch_size), stdout=log, stderr=log))

    async def _follow(self) -> None:
        while True:
            for target in self.targets:
                store = _serving(target)
                try:
                    topic = target.prefix + PROJECTIONS[target.name].topic
                    await catch_up(target.bootstrap, topic, PROJECTIONS[target.name](), store,
                                   await end_offsets(target.bootstrap, topic), batch_size=self.batch_size)
                finally:
                    store.close()
            await asyncio.sleep(0.5)  # between rounds, as `project --follow` polls

    async def stop(self) -> None:
        """SIGTERM, then waits. Not SIGINT: a runner started in the background (`nohup bin/faults ... &`) passes
        SIGINT on ignored, and each stop waited out its timeout. Nothing is lost: a batch's rows and positions are
        one write, so a follower ended in the middle of one resumes before it (the verifier's catch-up does)."""
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        for process in self._children:
            if process.returncode is None:
                process.terminate()
        for process in self._children:
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._children.clear()

    async def verify(self) -> list[Verified]:
        await self.stop()
        if self.processes:
            return await verify_all(self.targets)
        return [await _verify(target) for target in self.targets]


async def verify_all(targets: list[Target]) -> list[Verified]:
    """Each target caught up and compared with its rebuild in a process of its own, all at once: folding is CPU
    work, and at 50,000 messages one process folding both (some 350,000 events) took longer than the scenario."""
    context = multiprocessing.get_context("spawn")  # no forked copy of the runner's event loop and sockets
    with ProcessPoolExecutor(max_workers=len(targets), mp_context=context) as pool:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(pool, verify_target, t) for t in targets)))


def verify_target(target: Target) -> Verified:
    """In a verifier process: the live version caught up to the log's end, then rebuilt and compared."""
    return asyncio.run(_verify(target))


def _serving(target: Target) -> ProjectionStore:
    """The projection's serving version, opened for writing; a first, empty one when there is none yet."""
    backend = open_backend(target.store, target.name, target.root, target.dsn)
    version = backend.current()
    if version is None:
        version = backend.next()
        backend.switch(version)
    return backend.open(version)


async def _verify(target: Target) -> Verified:
    """The live version caught up to the log's end, then compared row for row with a rebuild to its positions."""
    live = _serving(target)
    topic = target.prefix + PROJECTIONS[target.name].topic
    try:
        final = await catch_up(target.bootstrap, topic, PROJECTIONS[target.name](), live,
                               await end_offsets(target.bootstrap, topic), progress=Reporter(f"{target.name} catch-up"))
        verified = await rebuilt_equals(target.bootstrap, target.prefix, target.name, live)
        return replace(verified, caught_up=final.applied)
    finally:
        live.close()


class Reporter:
    """A progress callback printing `label: folded/total events` at most every `every` seconds, and at the end."""

    def __init__(self, label: str, every: float = PROGRESS_EVERY, clock: Callable[[], float] = time.monotonic,
                 out: Callable[[str], None] | None = None) -> None:
        self.label, self.every, self.clock = label, every, clock
        self.out = out or (lambda line: print(line, flush=True))
        self._last: float | None = None

    def __call__(self, progress: Progress) -> None:
        now, done = self.clock(), progress.applied >= progress.total
        if done or self._last is None or now - self._last >= self.every:
            self._last = now
            self.out(f"  verify {self.label}: {progress.applied:,}/{progress.total:,} events folded")


async def rebuilt_equals(bootstrap: str, prefix: str, name: str, live: ProjectionStore) -> Verified:
    """Rebuilds `name` from offset 0 to the live store's positions in memory and lists the differing rows."""
    rebuilt = MemoryStore()
    done = await catch_up(bootstrap, prefix + PROJECTIONS[name].topic, PROJECTIONS[name](), rebuilt, live.positions(),
                          progress=Reporter(f"{name} rebuild"))
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
