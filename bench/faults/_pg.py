"""The postgres-restart scenario: the PostgreSQL projection sinks SIGKILLed, the server stopped and restarted."""

from __future__ import annotations

import asyncio
import sys
import time

from bench.faults._projections import NAMES, Target, Verified, replay_verify, verify_all
from bench.faults._scenarios import Sizes
from bench.faults._stack import Platform
from projections import PROJECTIONS, end_offsets
from projections._backends import open_backend
from switchboard.localpg import LocalPostgres


class Sinks:
    """`switchboard project NAME --follow --store postgres` for both projections, as child processes."""

    def __init__(self, platform: Platform, dsn: str) -> None:
        self.platform, self.dsn = platform, dsn
        self.root = platform.directory / "projections"
        self.processes: list[asyncio.subprocess.Process] = []
        self.kills = 0

    def options(self) -> list[str]:
        return ["--bootstrap", self.platform.bootstrap, "--topic-prefix", self.platform.prefix, "--root",
                str(self.root), "--store", "postgres", "--postgres-dsn", self.dsn]

    async def start(self) -> None:
        log = (self.platform.directory / "sinks.log").open("ab")
        for name in NAMES:
            self.processes.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "switchboard.cli", "project", name, *self.options(), "--follow",
                "--batch-size", "200", stdout=log, stderr=log))

    async def kill(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
                self.kills += 1
            await process.wait()
        self.processes.clear()

    async def caught_up(self, timeout: float) -> None:
        """Until each projection's serving version holds every event of its topic as it is now."""
        deadline = asyncio.get_running_loop().time() + timeout
        for name in NAMES:
            ends = await end_offsets(self.platform.bootstrap, self.platform.prefix + PROJECTIONS[name].topic)
            while self._positions(name) != ends:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"the {name} sink did not catch up within {timeout:.0f} s")
                await asyncio.sleep(0.5)  # the sink commits in its own process; its positions table is polled

    def _positions(self, name: str) -> dict[int, int]:
        backend = open_backend("postgres", name, self.root, self.dsn)
        version = backend.current()
        if version is None:
            return {}
        store = backend.open(version, read_only=True)
        try:
            return store.positions()
        finally:
            store.close()

    async def verify(self) -> tuple[list[Verified], dict[str, str]]:
        """The comparison with a rebuild (a verifier process per projection) and `switchboard replay --verify
        --store postgres` for each, all at once."""
        targets = [Target(self.platform.bootstrap, self.platform.prefix, name, self.root, "postgres", self.dsn)
                   for name in NAMES]
        replaying = asyncio.gather(*(replay_verify(name, self.options()) for name in NAMES))
        found, replayed = await asyncio.gather(verify_all(targets), replaying)
        replays = {f"replay --verify {name}": "identical" if identical else f"FAILED: {output.strip()[-300:]}"
                   for name, (identical, output) in zip(NAMES, replayed, strict=True)}
        return found, replays


async def postgres_restart(platform: Platform, sizes: Sizes, server: LocalPostgres) -> list[Verified]:
    """Sinks SIGKILLed at a quarter, restarted at a third; the server stopped and started at half way."""
    platform.declare()
    await platform.start()
    sinks = Sinks(platform, server.dsn())
    await sinks.start()
    platform.start_worker("worker-1")
    await platform.request(0, sizes.messages)
    await platform.until_settled(sizes.messages // 4, sizes.timeout)
    await sinks.kill()
    await platform.until_settled(sizes.messages // 3, sizes.timeout)
    await sinks.start()
    await platform.until_settled(sizes.messages // 2, sizes.timeout)
    await asyncio.to_thread(server.stop)
    stopped_at = platform.settled()
    await asyncio.to_thread(server.start)
    await sinks.kill()  # those that lost their server have exited; the others are killed
    await sinks.start()
    platform.ledger.faults["fault"] = (f"both sinks SIGKILLed while applying batches of 200, at "
                                       f"{sizes.messages // 4:,}+ settled, restarted; PostgreSQL stopped at "
                                       f"{stopped_at:,} settled and started, sinks restarted")
    await platform.until_settled(sizes.messages, sizes.timeout)
    platform.ledger.figures["sink processes killed"] = sinks.kills
    await sinks.caught_up(sizes.timeout)
    await sinks.kill()
    started = time.monotonic()
    verified, replays = await sinks.verify()
    platform.ledger.figures["seconds to verify the projections"] = round(time.monotonic() - started, 1)
    platform.ledger.figures.update(replays)
    return verified

