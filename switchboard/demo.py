"""The main job: the platform with a local Kafka on the bundled WhatsApp simulator, playing a realistic scenario.

Kafka (local, or KAFKA_BOOTSTRAP_SERVERS), the simulator in this process, and the webhook receiver, the pipeline
workers, the normaliser and the read API (with the web console) as child processes with logs under var/demo/<run>/;
an ERP stream, a marketing campaign and replies go in, every message is followed on sb.events.message to a final
state, and the funnel comes out as a table and an HTML report. Everything is stopped at the end, on an error and on
Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.twilio_simulator import TwilioSimulator
from connectors.whatsapp_simulator import WhatsAppSimulator
from streams.pipeline.app import PipelineSettings
from switchboard._demo_campaign import build_campaign
from switchboard._demo_config import SmsStandIn, write_demo_declaration
from switchboard._demo_play import Play, Run
from switchboard._demo_scenario import build_scenario
from switchboard._demo_stack import (
    API_BANNER,
    CONSOLE_BANNER,
    NORMALISER_BANNER,
    RECEIVER_BANNER,
    ApiCommand,
    DemoSecrets,
    NormaliserCommand,
    ReceiverCommand,
    log_paths,
    simulator_config,
    start_faults,
    twilio_config,
    wait_for_group,
    wait_for_line,
)
from switchboard.config import PipelineConfig, default_path, load
from switchboard.errors import SwitchboardError
from switchboard.localkafka import LocalCluster, cache_root, external_bootstrap, local_cluster
from switchboard.serving import free_port
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess

__all__ = ["DEFAULT_CAMPAIGN", "DEFAULT_DURATION", "DemoOptions", "run_demo"]

DEFAULT_CAMPAIGN = 10_000  # recipients of the marketing campaign
DEFAULT_DURATION = 900.0  # seconds the scenario may take once it is sent; what is unfinished then is reported
DEFAULT_WORKERS = 2  # pipeline workers (measured: see BENCHMARKS.md, "The demo")
START_TIMEOUT = 120.0  # seconds for each part to come up


@dataclass(frozen=True)
class DemoOptions:
    """The command line: sizes, the time bound, how many pipeline workers, what is left running afterwards."""

    messages: int = 8
    campaign: int = DEFAULT_CAMPAIGN
    duration: float = DEFAULT_DURATION
    workers: int = DEFAULT_WORKERS
    keep_broker: bool = False
    stay: bool = False  # keep the platform and the console up after the report, until Ctrl-C


def run_demo(options: DemoOptions, source: Path | None = None) -> int:
    """Runs the demo; 0 when every message reached a final state, 1 when --duration ended it first (the report is
    written either way), 130 on Ctrl-C and 143 on SIGTERM (everything stopped); SwitchboardError when a part fails
    to start."""
    _check(options)
    source = source or default_path()
    production = load(source)  # a broken declaration is reported before anything starts
    at = datetime.now(UTC)
    run = Run(options.duration, source, production, build_scenario(options.messages, production, at),
              build_campaign(options.campaign, production, at), workers=options.workers, stay=options.stay)
    cluster: LocalCluster | None = None
    interrupted: tuple[str, int] | None = None
    code = 1
    try:
        run.bootstrap, cluster = _kafka()
        code = asyncio.run(_platform(run))
    except KeyboardInterrupt:
        interrupted = ("Ctrl-C", 130)
    except asyncio.CancelledError:  # SIGTERM cancels the platform's task
        interrupted = ("SIGTERM", 143)
    finally:
        _shutdown(run, cluster, options.keep_broker)
    if interrupted is not None:
        print(f"Interrupted ({interrupted[0]}): every part of the demo is stopped.", file=sys.stderr, flush=True)
        return interrupted[1]
    return code


def _check(options: DemoOptions) -> None:
    if options.messages < 1:
        raise SwitchboardError("--messages must be at least 1")
    if options.campaign < 0:
        raise SwitchboardError("--campaign must not be negative")
    if options.duration <= 0:
        raise SwitchboardError("--duration must be positive")
    if not 1 <= options.workers <= 6:
        raise SwitchboardError("--workers must be between 1 and 6 (the topics' partitions)")


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


def _shutdown(run: Run, cluster: LocalCluster | None, keep_broker: bool) -> None:
    """Whatever is still running is stopped (normally the platform has stopped its parts already)."""
    run.processes.stop_all()
    shutil.rmtree(run.directory / "state", ignore_errors=True)  # derived from the run's topics; logs are kept
    if cluster is not None and not keep_broker:
        cluster.stop()
        print("Kafka stopped (use --keep-broker to leave it running).", file=sys.stderr, flush=True)


async def _platform(run: Run) -> int:
    """Starts the simulator and the children, plays the scenario, reports; stops them whatever happens."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    # The receiver's port is chosen first: Twilio's status callback URL (in the declaration, and what its
    # signatures cover) names it before the receiver starts.
    receiver_port = free_port()
    secrets_ = replace(DemoSecrets.from_environment(os.environ),
                       sms_webhook_url=f"http://127.0.0.1:{receiver_port}/webhooks/sms")
    undeliverable = run.scenario.undeliverable | run.campaign.undeliverable
    simulator = WhatsAppSimulator(simulator_config(run.production, secrets_, undeliverable))
    twilio = TwilioSimulator(twilio_config(secrets_))
    await simulator.start()
    try:
        await twilio.__aenter__()
        sms = SmsStandIn(twilio.url, secrets_.sms_webhook_url)
        config = write_demo_declaration(run.source, run.directory / "pipeline.toml", simulator.url, sms)
        print(f"WhatsApp simulator at {simulator.url} ({start_faults(simulator)})", flush=True)
        print(f"Twilio simulator at {twilio.url} (the SMS fallback; status callbacks to {sms.webhook_url})",
              flush=True)
        await _start_parts(run, config, simulator, secrets_, receiver_port)
        return await Play(run, config, simulator, secrets_, twilio).play()
    finally:
        await simulator.stop(drain=False)  # first: no webhook is posted to a receiver that is going away
        await twilio.__aexit__(None, None, None)
        stopped = await asyncio.to_thread(run.processes.stop_all)
        if stopped:
            print(f"Stopped the simulator, {', '.join(_exited(name, code) for name, code in stopped.items())}.",
                  flush=True)


def _exited(name: str, code: int) -> str:
    if code < 0:
        return f"{name} (ended by {signal.Signals(-code).name})"
    return name if code == 0 else f"{name} (exit code {code})"


async def _start_parts(run: Run, config: PipelineConfig, simulator: WhatsAppSimulator, secrets_: DemoSecrets,
                       receiver_port: int) -> None:
    """Topics, then the receiver (its URL goes to the simulator), the pipeline workers, the normaliser and the API."""
    env = secrets_.child_environment()
    settings = [_pipeline(run, config, number) for number in range(1, run.workers + 1)]
    await ensure_topics(run.bootstrap, settings[0].topic_specs())
    receiving = ReceiverCommand(run.bootstrap, run.prefix, config.streams.partitions, receiver_port,
                                ("whatsapp", "sms"))
    receiver = _child(run, receiving, "receiver", env)
    banner = await wait_for_line(receiver, RECEIVER_BANNER, run.processes, START_TIMEOUT)
    simulator.webhook_url = f"{banner[1]}/webhooks/whatsapp"
    print(f"Webhook receiver at {simulator.webhook_url}", flush=True)
    pipelines = [_child(run, s, f"pipeline-{n}", env) for n, s in enumerate(settings, start=1)]
    normaliser = _child(run, NormaliserCommand(run.bootstrap, run.prefix, settings[0].config_path), "normaliser", env)
    api = _child(run, _api(run, secrets_), "api", env)
    print(f"{len(pipelines)} pipeline worker{'s' if len(pipelines) > 1 else ''}, the normaliser and the read API "
          "starting (faust joins its consumer group)...", flush=True)
    await wait_for_line(normaliser, NORMALISER_BANNER, run.processes, START_TIMEOUT)
    run.api_url = (await wait_for_line(api, API_BANNER, run.processes, START_TIMEOUT))[1]
    run.console_url = (await wait_for_line(api, CONSOLE_BANNER, run.processes, START_TIMEOUT))[1]
    await wait_for_group(run.bootstrap, settings[0].app_id, len(pipelines), pipelines[0], run.processes,
                         START_TIMEOUT)
    print(f"Platform ready after {run.elapsed():.1f} s; logs: "
          f"{', '.join(log_paths(run.processes.started, Path.cwd()))}", flush=True)
    print(f"Web console (one-time sign-in link, open within 10 minutes): {run.console_url}", flush=True)


def _pipeline(run: Run, config: PipelineConfig, number: int) -> PipelineSettings:
    return PipelineSettings(bootstrap=run.bootstrap, data_dir=str(run.directory / "state" / f"pipeline-{number}"),
                            config_path=str(run.directory / "pipeline.toml"), app_id=f"{run.prefix}pipeline",
                            topic_prefix=run.prefix, worker_name=f"pipeline worker {number}",
                            partitions=config.streams.partitions, replication=config.streams.replication)


def _api(run: Run, secrets_: DemoSecrets) -> ApiCommand:
    clients = run.directory / "api-clients.json"  # names the variable the secret is in, never the secret
    clients.write_text(secrets_.api_clients(run.scenario.tenant))
    return ApiCommand(run.bootstrap, run.prefix, str(run.directory / "projections"), str(clients),
                      run.scenario.tenant)


def _child(run: Run, spec: Any, name: str, env: dict[str, str]) -> WorkerProcess[Any]:
    return run.processes.start(WorkerProcess(spec, run.directory / f"{name}.log", env=env, own_session=True))
