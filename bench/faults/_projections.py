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
    """Both projections kept up to date while the scenario runs by `switchboard project NAME --follow` child
    processes (RocksDB under `root`), so the runner's event loop only plays the scenario and the final catch-up
    is small; `verify` stops them and compares each with a rebuild, both at once (see `verify_all`)."""

    def __init__(self, bootstrap: str, prefix: str, root: Path, log: Path, batch_size: int = 500) -> None:
        self.targets = [Target(bootstrap, prefix, name, root) for name in NAMES]
        self.log, self.batch_size = log, batch_size
        self._processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        with self.log.open("ab") as log:  # the children keep their own copy of the descriptor
            for target in self.targets:
                self._processes.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "switchboard.cli", "project", target.name, *target.options(), "--follow",
                    "--batch-size", str(self.batch_size), stdout=log, stderr=log))

    async def stop(self) -> None:
        """SIGTERM, then waits. Not SIGINT: a runner started in the background (`nohup bin/faults ... &`) passes
        SIGINT on ignored, and each stop waited out its timeout. Nothing is lost: a batch's rows and positions are
        one write, so a follower ended in the middle of one resumes before it (the verifier's catch-up does)."""
        for process in self._processes:
            if process.returncode is None:
                process.terminate()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._processes.clear()

    async def verify(self) -> list[Verified]:
        await self.stop()
        return await verify_all(self.targets)


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


async def _verify(target: Target) -> Verified:
    backend = open_backend(target.store, target.name, target.root, target.dsn)
    version = backend.current()
    if version is None:  # no follower round ever finished: an empty serving version, caught up here
        version = backend.next()
        backend.switch(version)
    live = backend.open(version)
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
