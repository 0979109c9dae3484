"""The main job: the platform with a local Kafka on the bundled WhatsApp simulator, playing a small scenario.

Kafka (local, or KAFKA_BOOTSTRAP_SERVERS), the simulator in this process, and the webhook receiver, one pipeline
worker and the normaliser as child processes with logs under var/demo/<run>/; the scenario's customers, consent,
business events and requests go in, every message is followed on sb.events.message to a final state, and a table
and the funnel come out. Everything is stopped at the end, on an error and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from connectors.whatsapp_simulator import WhatsAppSimulator
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from streams.pipeline.app import PipelineSettings
from switchboard._demo_config import receipt_statuses, write_demo_declaration
from switchboard._demo_report import funnel_lines, progress_line, table_lines
from switchboard._demo_scenario import PlannedMessage, Scenario, build_scenario
from switchboard._demo_stack import (
    NORMALISER_BANNER,
    RECEIVER_BANNER,
    DemoSecrets,
    NormaliserCommand,
    Processes,
    ReceiverCommand,
    log_paths,
    simulator_config,
    simulator_summary,
    start_faults,
    wait_for_group,
    wait_for_line,
)
from switchboard._demo_track import Tracker
from switchboard.config import PipelineConfig, default_path, load
from switchboard.errors import SwitchboardError
from switchboard.kafka_io import new_producer
from switchboard.localkafka import LocalCluster, cache_root, external_bootstrap, local_cluster, project_root
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess

__all__ = ["DEFAULT_TIMEOUT", "run_demo"]

DEFAULT_TIMEOUT = 120.0  # seconds for every message to reach a final state once the scenario is sent
START_TIMEOUT = 120.0  # seconds for each part to come up


@dataclass
class _Run:
    """One run: its id (in topic names and the folder var/demo/<id>), its inputs and what it has started."""

    timeout: float
    source: Path
    production: PipelineConfig
    scenario: Scenario
    bootstrap: str = ""
    id: str = field(default_factory=lambda: f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")
    processes: Processes = field(default_factory=Processes)
    started: float = field(default_factory=time.monotonic)

    @property
    def directory(self) -> Path:
        return project_root() / "var" / "demo" / self.id

    @property
    def prefix(self) -> str:
        return f"demo-{self.id}-"

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def run_demo(messages: int, keep_broker: bool, timeout: float = DEFAULT_TIMEOUT, source: Path | None = None) -> int:
    """Runs the demo; 0 when every message reached a final state, 130 on Ctrl-C and 143 on SIGTERM (everything
    stopped either way); SwitchboardError when a part fails to start or a message does not get anywhere."""
    if messages < 1:
        raise SwitchboardError("--messages must be at least 1")
    if timeout <= 0:
        raise SwitchboardError("--timeout must be positive")
    source = source or default_path()
    production = load(source)  # a broken declaration is reported before anything starts
    run = _Run(timeout, source, production, build_scenario(messages, production, datetime.now(UTC)))
    cluster: LocalCluster | None = None
    interrupted: tuple[str, int] | None = None
    try:
        run.bootstrap, cluster = _kafka()
        asyncio.run(_platform(run))
    except KeyboardInterrupt:
        interrupted = ("Ctrl-C", 130)
    except asyncio.CancelledError:  # SIGTERM cancels the platform's task
        interrupted = ("SIGTERM", 143)
    finally:
        _shutdown(run, cluster, keep_broker)
    if interrupted is not None:
        print(f"Interrupted ({interrupted[0]}): every part of the demo is stopped.", file=sys.stderr)
        return interrupted[1]
    return 0


def _kafka() -> tuple[str, LocalCluster | None]:
    """The broker to use and, when this run started it, the cluster to stop afterwards."""
    external = external_bootstrap()
    if external is not None:
        print(f"Using KAFKA_BOOTSTRAP_SERVERS={external}", flush=True)
        return external, None
    cluster = local_cluster("dev")
    running = cluster.is_running()
    try:
        cluster.start(cache_root())
    except BaseException:  # Ctrl-C or a failure half-way: a broker this run started is not left behind
        if not running:
            cluster.stop()
        raise
    print(f"Kafka {cluster.version} {'already running' if running else 'ready'} at {cluster.bootstrap_servers}",
          flush=True)
    return cluster.bootstrap_servers, None if running else cluster


def _shutdown(run: _Run, cluster: LocalCluster | None, keep_broker: bool) -> None:
    """Whatever is still running is stopped (normally the platform has stopped its parts already)."""
    run.processes.stop_all()
    shutil.rmtree(run.directory / "state", ignore_errors=True)  # derived from the run's topics; logs are kept
    if cluster is not None and not keep_broker:
        cluster.stop()
        print("Kafka stopped (use --keep-broker to leave it running).", file=sys.stderr)


async def _platform(run: _Run) -> None:
    """Starts the simulator and the children, plays the scenario, reports; stops them whatever happens."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    secrets_ = DemoSecrets.from_environment(os.environ)
    simulator = WhatsAppSimulator(simulator_config(run.production, secrets_, run.scenario.undeliverable))
    await simulator.start()
    try:
        config = write_demo_declaration(run.source, run.directory / "pipeline.toml", simulator.url)
        print(f"WhatsApp simulator at {simulator.url} ({start_faults(simulator)})", flush=True)
        await _start_parts(run, config, simulator, secrets_.child_environment())
        await _play(run, config, run.scenario, simulator)
    finally:
        stopped = await asyncio.to_thread(run.processes.stop_all)
        await simulator.stop(drain=False)
        if stopped:
            print(f"Stopped the simulator, {', '.join(_exited(name, code) for name, code in stopped.items())}.",
                  flush=True)


def _exited(name: str, code: int) -> str:
    if code < 0:
        return f"{name} (ended by {signal.Signals(-code).name})"
    return name if code == 0 else f"{name} (exit code {code})"


async def _start_parts(run: _Run, config: PipelineConfig, simulator: WhatsAppSimulator,
                       env: dict[str, str]) -> None:
    """Topics, then the receiver (its URL goes to the simulator), the pipeline worker and the normaliser."""
    settings = PipelineSettings(bootstrap=run.bootstrap, data_dir=str(run.directory / "state"),
                                config_path=str(run.directory / "pipeline.toml"), app_id=f"{run.prefix}pipeline",
                                topic_prefix=run.prefix, worker_name="pipeline worker",
                                partitions=config.streams.partitions, replication=config.streams.replication)
    await ensure_topics(run.bootstrap, settings.topic_specs())
    receiver = _child(run, ReceiverCommand(run.bootstrap, run.prefix, config.streams.partitions), "receiver", env)
    banner = await wait_for_line(receiver, RECEIVER_BANNER, run.processes, START_TIMEOUT)
    simulator.webhook_url = f"{banner[1]}/webhooks/whatsapp"
    print(f"Webhook receiver at {simulator.webhook_url}", flush=True)
    pipeline = _child(run, settings, "pipeline", env)
    normaliser = _child(run, NormaliserCommand(run.bootstrap, run.prefix, settings.config_path), "normaliser", env)
    print("Pipeline worker and normaliser starting (faust joins its consumer group)...", flush=True)
    await wait_for_line(normaliser, NORMALISER_BANNER, run.processes, START_TIMEOUT)
    await wait_for_group(run.bootstrap, settings.app_id, 1, pipeline, run.processes, START_TIMEOUT)
    print(f"Platform ready after {run.elapsed():.1f} s; logs: "
          f"{', '.join(log_paths(run.processes.started, Path.cwd()))}", flush=True)


def _child(run: _Run, spec: Any, name: str, env: dict[str, str]) -> WorkerProcess[Any]:
    return run.processes.start(WorkerProcess(spec, run.directory / f"{name}.log", env=env, own_session=True))


async def _play(run: _Run, config: PipelineConfig, scenario: Scenario, simulator: WhatsAppSimulator) -> None:
    planned = scenario.expected(config)
    _describe(scenario, planned)
    await _send(run.bootstrap, Topics(run.prefix), scenario)
    receipts = receipt_statuses(config)
    tracker = Tracker([p.message_id for p in planned], receipts)
    played = time.monotonic()
    done = await _follow(run, tracker, lambda: _progress(run, tracker, len(planned), played))
    print(f"\nMessages ({len(planned)}):", flush=True)
    print("\n".join(f"  {line}" for line in table_lines(planned, tracker.views, receipts)))
    print("\nFunnel:")
    print("\n".join(funnel_lines(tracker.counts(time.time()))))
    print(f"\nSimulator: {simulator_summary(simulator.counters)}")
    print(f"Logs and the demo's declaration: {_shown(run.directory)}/")
    if not done:
        raise SwitchboardError(f"not every message reached a final state within {run.timeout:.0f} s; "
                               f"see the logs in {_shown(run.directory)}/")
    print(f"Every message reached a final state {time.monotonic() - played:.1f} s after the scenario was sent; "
          f"{run.elapsed():.1f} s in all.", flush=True)


def _describe(scenario: Scenario, planned: list[PlannedMessage]) -> None:
    customers = scenario.customers
    cities = sorted({c.city for c in customers})
    vip = sum("vip" in c.tags for c in customers)
    consent = sum(c.marketing_consent for c in customers)
    if scenario.night:
        zone, city = scenario.night
        night = f"in {city} it is {scenario.at.astimezone(ZoneInfo(zone)):%H:%M}: quiet hours"
    else:
        night = f"nobody is inside quiet hours: {scenario.night_note}"
    requests = len(scenario.requests)
    print(f"Scenario: {len(customers)} customers in {', '.join(cities)} ({night}); {vip} vip, {consent} opted in "
          f"to marketing on WhatsApp, {len(scenario.undeliverable)} not on WhatsApp.\n"
          f"  {len(scenario.events)} business events and {requests} direct requests "
          f"(one-time passwords, marketing offers): {len(planned)} messages expected.", flush=True)


async def _send(bootstrap: str, topics: Topics, scenario: Scenario) -> None:
    """Contacts and consent first (acknowledged, so the writer knows them before any trigger), then the direct
    requests and the business events."""
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        registrations = (*scenario.contact_commands(), *scenario.consent_commands())
        await _produce(producer, topics.commands, [(key, _json(value)) for key, value in registrations])
        await _produce(producer, topics.commands, [(key, _json(value)) for key, value in scenario.request_commands()])
        await _produce(producer, topics.business_events, scenario.business_records())
    finally:
        await producer.stop()


async def _produce(producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[str, bytes]]) -> None:
    await asyncio.gather(*[await producer.send(topic, value, key=key.encode()) for key, value in records])


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


async def _follow(run: _Run, tracker: Tracker, tick: Callable[[], None]) -> bool:
    """Reads the message events into the tracker until every message is final (True) or the timeout (False);
    `tick` runs about once a second, and a part that exits ends the wait with its log."""
    consumer = AIOKafkaConsumer(Topics(run.prefix).message_events, bootstrap_servers=run.bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    deadline, next_tick = time.monotonic() + run.timeout, time.monotonic()
    try:
        while not tracker.done(time.time()):
            if time.monotonic() >= next_tick:
                tick()
                next_tick += 1.0
            if time.monotonic() > deadline:
                return False
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode(record.value) if record.value is not None else None
                    if isinstance(event, DecodedEvent):
                        tracker.apply(event.event_type, event.payload)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    tick()
    return True


def _progress(run: _Run, tracker: Tracker, expected: int, played: float) -> None:
    run.processes.check()
    print(progress_line(time.monotonic() - played, tracker.counts(time.time()), expected), flush=True)


def _shown(path: Path) -> str:
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
