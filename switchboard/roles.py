"""`switchboard run`: every part in one process for development, or the parts a `--role` names, each on its port."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from switchboard.errors import SwitchboardError

if TYPE_CHECKING:
    from connectors._ingest_clients import IngestClients
    from streams.pipeline.app import PipelineSettings

__all__ = ["DEFAULT_PORTS", "ROLES", "RunSettings", "add_run_command", "plan_roles"]

# The parts, in start order; `projections` is the follow-ups runner (the API keeps its own read models).
ROLES: Final = ("pipeline", "receiver", "normaliser", "callbacks", "ingest", "api", "projections")
DEFAULT_PORTS: Final = {"pipeline": 8081, "receiver": 8088, "normaliser": 8083, "callbacks": 8084, "ingest": 8090,
                        "api": 8092, "projections": 8085}
NEEDS_CLIENTS: Final = frozenset({"ingest", "api"})
_log = logging.getLogger(__name__)
Part = Callable[["RunSettings", asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class RunSettings:
    """What `switchboard run` starts and where: ports per role, state under one directory."""

    bootstrap: str
    roles: tuple[str, ...]
    config: Path = Path("pipeline.toml")
    topic_prefix: str = ""
    state_dir: Path = Path("var/run")
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    clients_file: Path | None = None
    name: str = "pipeline-1"
    channels: tuple[str, ...] = ("whatsapp",)
    partitions: int = 6
    console_tenant: str | None = None


def plan_roles(requested: Sequence[str], clients_configured: bool) -> tuple[tuple[str, ...], list[str]]:
    """The roles to start, in start order, and notes about what `all` leaves out.

    `all` leaves out ingest and the API when no clients are configured (they refuse to start without them);
    naming them explicitly makes a missing clients file an error instead.
    """
    wanted = set(ROLES) if "all" in requested or not requested else set(requested)
    unknown = wanted - set(ROLES)
    if unknown:
        raise SwitchboardError(f"unknown role(s) {', '.join(sorted(unknown))}: choose from all, {', '.join(ROLES)}")
    notes = []
    if ("all" in requested or not requested) and not clients_configured:
        wanted -= NEEDS_CLIENTS
        notes.append("ingest and api left out: no clients (--clients-file or SWITCHBOARD_INGEST_CLIENTS)")
    return tuple(role for role in ROLES if role in wanted), notes


def add_run_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `run` to the switchboard CLI."""
    run = commands.add_parser("run", help="run every part in one process (development), or the parts --role names")
    run.add_argument("--role", action="append", dest="roles", choices=["all", *ROLES],
                     help="a part to run (repeatable; default all): " + ", ".join(ROLES))
    run.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    run.add_argument("--config", type=Path, default=Path(os.environ.get("SWITCHBOARD_PIPELINE", "pipeline.toml")))
    run.add_argument("--topic-prefix", default="", help="prefix for every topic, consumer group and changelog "
                                                        "(tests use a unique one)")
    run.add_argument("--state-dir", type=Path, default=Path("var/run"),
                     help="pipeline state in DIR/pipeline, projections in DIR/projections (default var/run)")
    run.add_argument("--host", default="127.0.0.1", help="address every part binds (0.0.0.0 in a container)")
    run.add_argument("--name", default="pipeline-1", help="the pipeline worker's name")
    run.add_argument("--clients-file", type=Path, help="ingest and api clients (default: SWITCHBOARD_INGEST_CLIENTS)")
    run.add_argument("--channel", action="append", dest="channels", help="channels the receiver serves (whatsapp)")
    run.add_argument("--console-tenant", help="the API prints a one-time console URL for this tenant")
    for role in ROLES:
        variable = f"SWITCHBOARD_{role.upper()}_PORT"
        run.add_argument(f"--{role}-port", type=int, default=int(os.environ.get(variable, DEFAULT_PORTS[role])),
                         help=f"{role}'s port (default {DEFAULT_PORTS[role]}, or {variable})")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from connectors._ingest_clients import CLIENTS_ENV
    from switchboard.config import load
    from switchboard.localkafka import external_bootstrap

    bootstrap = args.bootstrap or external_bootstrap()
    if bootstrap is None:
        raise SwitchboardError("give --bootstrap or set KAFKA_BOOTSTRAP_SERVERS (`switchboard kafka start` prints it)")
    roles, notes = plan_roles(args.roles or [], bool(args.clients_file or os.environ.get(CLIENTS_ENV)))
    for note in notes:
        print(f"switchboard run: {note}", flush=True)
    settings = RunSettings(bootstrap, roles, args.config, args.topic_prefix, args.state_dir, args.host,
                           {role: getattr(args, f"{role}_port") for role in ROLES}, args.clients_file, args.name,
                           tuple(args.channels or ["whatsapp"]), load(args.config).streams.partitions,
                           args.console_tenant)
    return run_roles(settings)


def run_roles(settings: RunSettings) -> int:
    """The pipeline (faust owns the main thread, its loop and the signals) and the other parts beside it.

    Without the pipeline, the parts run in this thread's event loop until SIGINT or SIGTERM. With it, they run in
    one other thread's loop, stopped when the faust worker stops; a part that fails stops the worker too.
    """
    others = [role for role in settings.roles if role != "pipeline"]
    if "pipeline" not in settings.roles:
        return asyncio.run(_serve(settings, others, None))
    from streams.pipeline.app import run_pipeline

    beside = _Beside(settings, others)
    beside.start()
    try:
        run_pipeline(_pipeline_settings(settings))
    finally:
        beside.stop()
    return beside.exit_code


class _Beside:
    """The parts other than the pipeline, in a thread with an event loop of their own."""

    def __init__(self, settings: RunSettings, roles: list[str]) -> None:
        self._settings, self._roles = settings, roles
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="switchboard-parts",
                                        daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._running = threading.Event()
        self._asked = False  # stop() was called: the worker is stopping, nothing failed on its own
        self.exit_code = 0

    def start(self) -> None:
        self._thread.start()

    async def _main(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        self._running.set()
        self.exit_code = await _serve(self._settings, self._roles, self._stopping)
        if self.exit_code and not self._asked:
            # A part failed on its own: exit at once rather than look healthy half-running. The pipeline's
            # unacknowledged records are read again by whoever takes its partitions (at least once).
            _log.error("a part failed; the process exits")
            logging.shutdown()
            os._exit(self.exit_code)

    def stop(self) -> None:
        """Sets the parts' stop event and waits for them to close (the faust worker has stopped by now)."""
        self._asked = True
        self._running.wait(10)
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(60)


async def _serve(settings: RunSettings, roles: Sequence[str], stop: asyncio.Event | None) -> int:
    """Runs the parts until `stop` (None: SIGINT or SIGTERM); 1 if a part failed, which stops the others."""
    from switchboard.observability import until_stopped

    signals = None
    if stop is None:
        stop = asyncio.Event()
        signals = asyncio.create_task(until_stopped())
        signals.add_done_callback(lambda _: stop.set())
    await _ensure_topics(settings, roles)
    tasks = [asyncio.create_task(PARTS[role](settings, stop), name=role) for role in roles]
    failed = False
    try:
        for finished in asyncio.as_completed(tasks):
            try:
                await finished
            except Exception:
                _log.exception("a part stopped with an error; stopping the others")
                failed = True
            stop.set()  # one part ending ends the process: a half-running platform would look healthy
    finally:
        if signals is not None:
            signals.cancel()
    return 1 if failed else 0


async def _ensure_topics(settings: RunSettings, roles: Sequence[str]) -> None:
    """Every topic the parts read, before any starts: in one process they cannot wait on each other's set-up."""
    from connectors._receiver_sinks import KafkaWebhookSink
    from connectors.ingest import business_topic_spec
    from switchboard.topics import ensure_topics, event_topic_specs

    specs = [*_pipeline_settings(settings).topic_specs(),
             *event_topic_specs(settings.partitions, prefix=settings.topic_prefix),
             business_topic_spec(settings.topic_prefix, settings.partitions)]
    if "receiver" in roles or "normaliser" in roles:
        specs += KafkaWebhookSink(settings.bootstrap, prefix=settings.topic_prefix,
                                  partitions=settings.partitions).topic_specs()
    await ensure_topics(settings.bootstrap, list({spec.name: spec for spec in specs}.values()))


def _pipeline_settings(settings: RunSettings) -> PipelineSettings:
    from streams.pipeline.app import PipelineSettings

    return PipelineSettings(bootstrap=settings.bootstrap, data_dir=str(settings.state_dir / "pipeline"),
                            config_path=str(settings.config), topic_prefix=settings.topic_prefix,
                            app_id=f"{settings.topic_prefix}switchboard-pipeline",
                            worker_name=settings.name, partitions=settings.partitions, web_host=settings.host,
                            web_port=settings.ports["pipeline"])


def _clients(settings: RunSettings) -> IngestClients:
    from connectors._ingest_clients import load_clients

    clients = load_clients(settings.clients_file)
    clients.check_secrets()
    return clients


async def _receiver(settings: RunSettings, stop: asyncio.Event) -> None:
    from connectors.receiver import run_receiver

    await run_receiver(settings.bootstrap, host=settings.host, port=settings.ports["receiver"],
                       channels=settings.channels, prefix=settings.topic_prefix, partitions=settings.partitions,
                       stop=stop)


async def _normaliser(settings: RunSettings, stop: asyncio.Event) -> None:
    from connectors.normaliser import NormaliserConfig, run_normaliser

    await run_normaliser(NormaliserConfig(settings.bootstrap, settings.topic_prefix,
                                          group=f"{settings.topic_prefix}switchboard-normaliser",
                                          config_path=settings.config,
                                          web_host=settings.host, web_port=settings.ports["normaliser"]), stop)


async def _callbacks(settings: RunSettings, stop: asyncio.Event) -> None:
    from connectors.callback_feeder import FeederConfig, run_callback_feeder

    await run_callback_feeder(FeederConfig(settings.bootstrap, settings.topic_prefix,
                                           group=f"{settings.topic_prefix}switchboard-callbacks",
                                           web_host=settings.host,
                                           web_port=settings.ports["callbacks"]), stop)


async def _ingest(settings: RunSettings, stop: asyncio.Event) -> None:
    from connectors.ingest import run_ingest

    await run_ingest(settings.bootstrap, _clients(settings), host=settings.host, port=settings.ports["ingest"],
                     prefix=settings.topic_prefix, partitions=settings.partitions, stop=stop)


async def _api(settings: RunSettings, stop: asyncio.Event) -> None:
    from projections.api import run_api

    await run_api(settings.bootstrap, _clients(settings), settings.state_dir / "projections",
                  prefix=settings.topic_prefix, host=settings.host, port=settings.ports["api"],
                  console_tenant=settings.console_tenant, stop=stop)


async def _projections(settings: RunSettings, stop: asyncio.Event) -> None:
    """The follow-ups runner; it has no stop of its own, so it is cancelled (each follow-up is produced before the
    position that includes it is stored, and has a deterministic id: a cancelled round is redone the same)."""
    from projections import RocksStore
    from projections._followup_runner import run_followups
    from projections._followups import FollowUpRules, FollowUps
    from switchboard.observability import Observability, serve_endpoints

    observability = Observability("followups")
    store = RocksStore(settings.state_dir / "projections" / "followups")
    endpoints = await serve_endpoints(observability, settings.host, settings.ports["projections"])
    runner = asyncio.create_task(run_followups(
        settings.bootstrap, settings.topic_prefix,
        FollowUps(FollowUpRules(24 * 3600.0, frozenset({"utility", "authentication"}))), store,
        observability=observability))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([runner, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopping, runner):
            task.cancel()
        await asyncio.gather(runner, stopping, return_exceptions=True)
        await endpoints.cleanup()
        store.close()
    if not runner.cancelled():
        runner.result()  # re-raises what ended the runner on its own


PARTS: Final[dict[str, Part]] = {"receiver": _receiver, "normaliser": _normaliser, "callbacks": _callbacks,
                                 "ingest": _ingest, "api": _api, "projections": _projections}
