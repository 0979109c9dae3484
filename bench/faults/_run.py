"""Runs one scenario on its platform, then the checker; a failure to settle is a violation, not a crash."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.faults._check import Report, check
from bench.faults._pg import postgres_restart
from bench.faults._projections import LiveProjections, Verified
from bench.faults._scenarios import SCENARIOS, Sizes, broker_restart
from bench.faults._stack import PartDied, Platform
from switchboard.localkafka import LocalCluster
from switchboard.localpg import LocalPostgres

# From this size on the live projections are followed and verified in processes of their own (see LiveProjections).
PROCESSES_FROM = 1_000
ALL = ("worker-sigkill", "broker-restart", "postgres-restart", "simulator-faults", "poison", "state-loss",
       "slow-sender", "worker-join")


@dataclass(frozen=True)
class Environment:
    """Where scenarios run: the single-broker bootstrap, and the 3-broker cluster and PostgreSQL when needed."""

    bootstrap: str
    directory: Path
    cluster: LocalCluster | None = None
    postgres: LocalPostgres | None = None


async def run_scenario(name: str, messages: int, env: Environment) -> Report:
    """Plays scenario `name` with `messages` requests and checks what it left in the log."""
    ha = name == "broker-restart"
    if ha and env.cluster is None:
        raise ValueError("broker-restart needs the 3-broker cluster")
    if name == "postgres-restart" and env.postgres is None:
        raise ValueError("postgres-restart needs a PostgreSQL server of its own")
    bootstrap = env.cluster.bootstrap_servers if ha and env.cluster else env.bootstrap
    directory = env.directory / name
    shutil.rmtree(directory, ignore_errors=True)
    platform = Platform(bootstrap, directory, name, replication=3 if ha else -1)
    live = LiveProjections(bootstrap, platform.prefix, directory / "projections", directory / "projections.log",
                           processes=messages >= PROCESSES_FROM)
    failure, verified = None, list[Verified]()
    try:
        if name == "postgres-restart":
            assert env.postgres is not None
            verified = await postgres_restart(platform, Sizes(messages), env.postgres)
        else:
            await live.start()
            scenario = broker_restart(env.cluster) if ha and env.cluster else SCENARIOS[name]
            await scenario(platform, Sizes(messages))
            started = time.monotonic()
            verified = await live.verify()
            platform.ledger.figures["seconds to verify the projections"] = round(time.monotonic() - started, 1)
    except (TimeoutError, PartDied) as error:
        failure = str(error)
    finally:
        try:
            await live.stop()
        finally:
            await platform.close()  # the children stop whatever the followers' stop did
    report = await check(name, bootstrap, platform.prefix, platform.ledger, verified)
    if failure is not None:
        report.violations.insert(0, failure)
    report.violations.extend(f"{what}: {result}" for what, result in platform.ledger.figures.items()
                             if what.startswith("replay --verify") and str(result).startswith("FAILED"))
    return report
