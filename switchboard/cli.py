"""The `switchboard` command line: one entry point whose subcommands grow with the platform."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from switchboard import heap, logs
from switchboard.errors import SwitchboardError
from switchboard.localkafka import cache_root, external_bootstrap, local_cluster

Handler = Callable[[argparse.Namespace], int]


# Commands a person runs at a terminal log text by default; every service (pipeline, receiver...) logs JSON lines.
_TEXT_LOGS = frozenset({"kafka", "postgres", "demo", "config", "topics", "trace", "audit", "replay", "deadletters",
                        "redeliver-callbacks"})


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line and runs one subcommand; user errors print one clear message, exit 2."""
    argv = _configure_logs(list(sys.argv[1:] if argv is None else argv))
    args, rest = _parser().parse_known_args(argv)
    if rest and getattr(args, "handler", None) is not _simulator:
        _parser().error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    handler: Handler = args.handler
    try:
        return handler(args)
    except SwitchboardError as error:
        return _user_error(error)
    except KeyboardInterrupt:
        return 130


def _user_error(error: SwitchboardError) -> int:
    """A user error as one clear line, without a traceback; exit code 2."""
    print(f"switchboard: error: {error}", file=sys.stderr)
    return 2


def _configure_logs(argv: list[str]) -> list[str]:
    """Takes `--log-format` from anywhere on the command line and configures logging once, before anything logs."""
    known, rest = _log_options().parse_known_args(argv)
    command = next((word for word in rest if not word.startswith("-")), "")
    console = command in _TEXT_LOGS
    # A console command shows warnings only (its output is what was asked for; libraries' INFO lines would mix in).
    logs.configure(known.log_format or os.environ.get(logs.ENV_FORMAT) or ("text" if console else "json"),
                   os.environ.get(logs.ENV_LEVEL) or ("WARNING" if console else "INFO"))
    return rest


def _log_options(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--log-format", choices=logs.FORMATS,
                        help="log lines as JSON objects (services' default) or text (console commands' default); "
                             f"also {logs.ENV_FORMAT}; level from {logs.ENV_LEVEL}")
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = _log_options(argparse.ArgumentParser(prog="switchboard", description=__doc__))
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_kafka(commands)
    _add_postgres(commands)
    _add_demo(commands)
    _add_callbacks(commands)
    _add_worker(commands)
    _add_pipeline(commands)
    _add_projections(commands)
    _add_topics(commands)
    _add_config(commands)
    _add_receiver(commands)
    _add_normaliser(commands)
    _add_ingest(commands)
    _add_api(commands)
    _add_run(commands)
    _add_trace(commands)
    simulator = commands.add_parser("simulator", add_help=False,
                                    help="run the WhatsApp Cloud API simulator (`switchboard simulator --help`)")
    simulator.set_defaults(handler=_simulator)
    return parser


def _add_kafka(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kafka = commands.add_parser("kafka", help="start, stop or inspect the project's local Kafka cluster")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument("--brokers", type=int, choices=[1, 3], default=1, help="1 (default) or a 3-broker cluster")
    kafka.add_argument("--name", default="dev", help="cluster name; its data lives in var/kafka/NAME")
    kafka.set_defaults(handler=_kafka)


def _kafka(args: argparse.Namespace) -> int:
    if args.action != "status" and external_bootstrap() is not None:
        print("KAFKA_BOOTSTRAP_SERVERS is set: using that cluster, starting and stopping nothing.")
        return 0
    base_port = 29092 if args.brokers == 3 else None
    cluster = local_cluster(args.name, brokers=args.brokers, base_port=base_port)
    if args.action == "start":
        cluster.start(cache_root())
        print(f"Kafka {cluster.version} (metadata.version {cluster.reported_metadata_version()}) "
              f"ready at {cluster.bootstrap_servers}")
    elif args.action == "stop":
        cluster.stop()
        print("Kafka stopped")
    else:
        state = "running" if cluster.is_running() else "stopped"
        print(f"Kafka {cluster.version} ({len(cluster.nodes)} broker(s)) at {cluster.bootstrap_servers}: {state}")
    return 0


def _add_postgres(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from switchboard.localpg._cli import add_command

    add_command(commands)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="run the platform with a local Kafka on the WhatsApp simulator and play "
                                            "a realistic scenario end to end (what bin/run runs)")
    demo.add_argument("--campaign", type=int, default=10_000,
                      help="recipients of the marketing campaign (default 10,000; 0: none)")
    demo.add_argument("--messages", type=int, help="messages of the ERP stream and direct requests (default: "
                                                   "demo.messages of pipeline.toml)")
    demo.add_argument("--duration", type=float, default=900.0,
                      help="seconds the scenario may take once sent; what is unfinished then is reported (default "
                           "900)")
    demo.add_argument("--timeout", type=float, dest="duration", help=argparse.SUPPRESS)  # the old name
    demo.add_argument("--workers", type=int, default=2, help="pipeline worker processes (default 2)")
    demo.add_argument("--stay", action=argparse.BooleanOptionalAction, default=None,
                      help="keep the platform and the console up after the report until Ctrl-C (default: when "
                           "run from a terminal)")
    demo.add_argument("--keep-broker", action="store_true", help="leave the local broker running afterwards")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from switchboard.config import default_path, load
    from switchboard.demo import DemoOptions, run_demo

    messages = load(default_path()).demo.messages if args.messages is None else args.messages
    stay = sys.stdin.isatty() and sys.stdout.isatty() if args.stay is None else args.stay
    return run_demo(DemoOptions(messages=messages, campaign=args.campaign, duration=args.duration,
                                workers=args.workers, keep_broker=args.keep_broker, stay=stay))


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser("worker", help="run a stream worker (faust) of the order-tally pipeline")
    worker.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    worker.add_argument("--app-id", default="switchboard-tally", help="consumer group and changelog prefix")
    worker.add_argument("--topic-prefix", default="", help="prefix for every topic (tests use a unique one)")
    worker.add_argument("--data-dir", required=True, help="local RocksDB state directory")
    worker.add_argument("--name", default="worker-1", help="worker name written into its outputs")
    worker.add_argument("--partitions", type=int, default=6, help="partitions of the orders topic and table")
    worker.add_argument("--replication", type=int, default=-1, help="copies of each topic; -1: min(3, brokers)")
    worker.add_argument("--web-host", default="127.0.0.1", help="address of /healthz, /readyz and /metrics")
    worker.add_argument("--web-port", type=int, help="port of /healthz, /readyz and /metrics (default: none)")
    worker.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace) -> int:
    from streams.tally import TallyConfig, run_worker

    config = TallyConfig(bootstrap=args.bootstrap, app_id=args.app_id, topic_prefix=args.topic_prefix,
                         data_dir=args.data_dir, worker_name=args.name, partitions=args.partitions,
                         replication=args.replication, web_host=args.web_host, web_port=args.web_port)
    return run_worker(config)


def _add_projections(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from projections.cli import add_commands

    add_commands(commands)


def _add_api(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from projections.api import add_api_command

    add_api_command(commands)


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from switchboard.roles import add_run_command

    add_run_command(commands)


def _add_pipeline(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pipeline = commands.add_parser("pipeline", help="run a message-pipeline worker (triggers, writer, dispatcher)")
    pipeline.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    pipeline.add_argument("--config", default="pipeline.toml", help="the pipeline declaration (reloaded on change)")
    pipeline.add_argument("--app-id", default="switchboard-pipeline", help="consumer group and changelog prefix")
    pipeline.add_argument("--topic-prefix", default="", help="prefix for every topic (tests use a unique one)")
    pipeline.add_argument("--data-dir", required=True, help="local RocksDB state directory")
    pipeline.add_argument("--name", default="pipeline-1", help="worker name, in logs and dead letters")
    pipeline.add_argument("--partitions", type=int, default=6, help="partitions of every keyed topic")
    pipeline.add_argument("--replication", type=int, default=-1, help="copies of each topic; -1: min(3, brokers)")
    pipeline.add_argument("--web-host", default="127.0.0.1", help="address of /healthz, /readyz and /metrics")
    pipeline.add_argument("--web-port", type=int, help="port of /healthz, /readyz and /metrics (default: none)")
    pipeline.add_argument("--ready-lag", type=int, default=10_000,
                          help="/readyz answers 503 while a partition is more records behind (default 10000)")
    pipeline.add_argument("--batch-max", type=int, default=500, help="records an agent takes per batch at most")
    pipeline.add_argument("--batch-within", type=float, default=0.05,
                          help="seconds a batch waits for more records before it is processed")
    pipeline.set_defaults(handler=_pipeline)


def _pipeline(args: argparse.Namespace) -> int:
    from streams.pipeline.app import PipelineSettings, run_pipeline

    settings = PipelineSettings(bootstrap=args.bootstrap, config_path=args.config, app_id=args.app_id,
                                topic_prefix=args.topic_prefix, data_dir=args.data_dir, worker_name=args.name,
                                partitions=args.partitions, replication=args.replication, web_host=args.web_host,
                                web_port=args.web_port, ready_lag=args.ready_lag, batch_max=args.batch_max,
                                batch_within=args.batch_within)
    return run_pipeline(settings)


def _simulator(args: argparse.Namespace) -> int:
    from connectors.whatsapp_simulator import main as simulator_main

    return simulator_main(args.rest)


def _add_config(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser("config", help="validate pipeline.toml without starting anything")
    config.add_argument("action", choices=["check"])
    config.add_argument("file", nargs="?", help="the file to check (default: SWITCHBOARD_PIPELINE or pipeline.toml)")
    config.set_defaults(handler=_config)


def _config(args: argparse.Namespace) -> int:
    from pathlib import Path

    from switchboard.config import default_path, load

    path = Path(args.file) if args.file else default_path()
    config = load(path)
    print(f"{path}: valid: {len(config.tenants)} tenants, {len(config.channels)} channels, "
          f"{len(config.triggers)} triggers, {len(config.routes)} routes, {len(config.retry)} retry policies")
    return 0


def _add_topics(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = commands.add_parser("topics", help="create the event topics (sb.events.*) as pipeline.toml lays them out")
    topics.add_argument("action", choices=["create"])
    topics.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    topics.set_defaults(handler=_topics)


def _topics(args: argparse.Namespace) -> int:
    import asyncio

    from switchboard.config import default_path, load
    from switchboard.topics import ensure_topics, event_topic_specs

    bootstrap = _bootstrap(args)
    streams = load(default_path()).streams
    specs = event_topic_specs(streams.partitions, streams.replication)
    asyncio.run(ensure_topics(bootstrap, specs))
    for spec in specs:
        print(f"{spec.name}: {spec.partitions} partitions, retention forever")
    return 0


def _add_callbacks(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from projections._audit_state import time_argument

    callbacks = commands.add_parser("callbacks", help="POST message status events from Kafka to tenants' callback URLs")
    callbacks.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    callbacks.add_argument("--topic-prefix", default="", help="prefix for sb.events.* and sb.deadletters")
    callbacks.add_argument("--group", default="switchboard-callbacks", help="consumer group of the message topic")
    callbacks.add_argument("--secrets-dir", help="signing secrets in DIR/callbacks/<tenant id> (env vars win)")
    _add_endpoint_options(callbacks)
    callbacks.set_defaults(handler=_callbacks)
    redeliver = commands.add_parser("redeliver-callbacks",
                                    help="send given-up status callbacks (sb.deadletters) again, in order per message")
    redeliver.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    redeliver.add_argument("--topic-prefix", default="", help="prefix for sb.deadletters and sb.events.tenant")
    redeliver.add_argument("--since", type=time_argument,
                           help="letters written at or after this time (ISO-8601 or unix seconds); needed unless "
                                "--message names one message")
    redeliver.add_argument("--message", help="only this message's events")
    redeliver.add_argument("--tenant", help="only this tenant's events")
    redeliver.add_argument("--secrets-dir", help="signing secrets in DIR/callbacks/<tenant id> (env vars win)")
    redeliver.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    redeliver.set_defaults(handler=_redeliver_callbacks)


def _redeliver_callbacks(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from connectors.callback_redelivery import RedeliveryConfig, redeliver
    from projections._read_progress import ReadProgress

    bootstrap = _bootstrap(args)
    if args.since is None and args.message is None:
        raise SwitchboardError("give --since (when the endpoint went down) or --message: a run without either would "
                               "send every callback ever given up again")
    config = RedeliveryConfig(bootstrap, args.topic_prefix, args.since, args.message, args.tenant,
                              Path(args.secrets_dir) if args.secrets_dir else None, dry_run=args.dry_run)
    with ReadProgress("redeliver-callbacks") as progress:
        report = asyncio.run(redeliver(config, progress=progress))
    print(report.summary(args.dry_run))
    return 0 if args.dry_run or report.complete else 1


def _bootstrap(args: argparse.Namespace) -> str:
    """--bootstrap, else KAFKA_BOOTSTRAP_SERVERS; a clear error (exit 2) without either."""
    bootstrap = args.bootstrap or external_bootstrap()
    if bootstrap is None:
        raise SwitchboardError("give --bootstrap or set KAFKA_BOOTSTRAP_SERVERS (`switchboard kafka start` prints it)")
    return bootstrap


def _add_endpoint_options(command: argparse.ArgumentParser) -> None:
    """--web-host, --web-port and --ready-lag of a consumer that serves no HTTP of its own."""
    command.add_argument("--web-host", default="127.0.0.1", help="address of /healthz, /readyz and /metrics")
    command.add_argument("--web-port", type=int, help="port of /healthz, /readyz and /metrics (default: none)")
    command.add_argument("--ready-lag", type=int, default=10_000,
                         help="/readyz answers 503 while a partition is more records behind (default 10000)")


def _callbacks(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from connectors.callback_feeder import FeederConfig, run_callback_feeder

    bootstrap = _bootstrap(args)
    secrets_dir = Path(args.secrets_dir) if args.secrets_dir else None
    asyncio.run(run_callback_feeder(FeederConfig(bootstrap, args.topic_prefix, args.group, secrets_dir,
                                                 web_host=args.web_host, web_port=args.web_port,
                                                 ready_lag=args.ready_lag)))
    return 0


def _add_receiver(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    receiver = commands.add_parser("receiver", help="serve provider webhooks, storing verified bodies in Kafka")
    receiver.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    receiver.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 behind a load balancer)")
    receiver.add_argument("--port", type=int, default=8088, help="port to bind (0: an ephemeral one)")
    receiver.add_argument("--channel", action="append", dest="channels", help="channel to serve (default: whatsapp)")
    receiver.add_argument("--topic-prefix", default="", help="prefix for sb.webhooks.raw and sb.rejects")
    receiver.add_argument("--partitions", type=int, default=6, help="partitions of the two topics when created")
    receiver.set_defaults(handler=_receiver)


def _receiver(args: argparse.Namespace) -> int:
    import asyncio

    from connectors.receiver import run_receiver

    bootstrap = _bootstrap(args)
    asyncio.run(run_receiver(bootstrap, host=args.host, port=args.port, channels=args.channels or ["whatsapp"],
                             prefix=args.topic_prefix, partitions=args.partitions))
    return 0


def _add_normaliser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    normaliser = commands.add_parser("normaliser", help="turn raw webhooks (sb.webhooks.raw) into pipeline commands")
    normaliser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    normaliser.add_argument("--topic-prefix", default="", help="prefix for every topic (tests use a unique one)")
    normaliser.add_argument("--group", default="switchboard-normaliser", help="consumer group of the raw topic")
    normaliser.add_argument("--config", default="pipeline.toml", help="channels and tenants (reloaded on change)")
    _add_endpoint_options(normaliser)
    normaliser.set_defaults(handler=_normaliser)


def _normaliser(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from connectors.normaliser import NormaliserConfig, run_normaliser

    bootstrap = _bootstrap(args)
    asyncio.run(run_normaliser(NormaliserConfig(bootstrap, args.topic_prefix, args.group, Path(args.config),
                                                web_host=args.web_host, web_port=args.web_port,
                                                ready_lag=args.ready_lag)))
    return 0


def _add_ingest(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingest = commands.add_parser("ingest", help="serve POST /v1/events for ERP systems, producing to Kafka")
    ingest.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    ingest.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 behind a load balancer)")
    ingest.add_argument("--port", type=int, default=8090, help="port to bind (0: an ephemeral one)")
    ingest.add_argument("--topic-prefix", default="", help="prefix for sb.events.business")
    ingest.add_argument("--clients-file", help="clients JSON or secrets folder (default: SWITCHBOARD_INGEST_CLIENTS)")
    ingest.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from connectors.ingest import load_clients, run_ingest
    from switchboard.config import default_path, load

    clients = load_clients(Path(args.clients_file) if args.clients_file else None)
    clients.check_secrets()  # before any network: a missing secret is a set-up error, not a 500 later
    bootstrap = _bootstrap(args)
    streams = load(default_path()).streams
    asyncio.run(run_ingest(bootstrap, clients, host=args.host, port=args.port, prefix=args.topic_prefix,
                           partitions=streams.partitions, replication=streams.replication))
    return 0


def _add_trace(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trace = commands.add_parser("trace", help="show every record of one trace across the topics, in time order")
    trace.add_argument("trace_id", metavar="TRACE_ID", help="32 hex digits (a traceparent's second field, or a log "
                                                            "line's trace_id); a whole traceparent works too")
    trace.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    trace.add_argument("--topic-prefix", default="", help="prefix of the topics (tests use a unique one)")
    trace.add_argument("--json", action="store_true", help="the records as a JSON list instead of a table")
    trace.set_defaults(handler=_trace)


def _trace(args: argparse.Namespace) -> int:
    import asyncio

    from projections._read_progress import ReadProgress
    from switchboard._trace_scan import check_trace_id, render, scan_trace

    trace_id = check_trace_id(args.trace_id)  # before any network: a typo is a clear error, not a long scan
    bootstrap = _bootstrap(args)

    with ReadProgress("trace") as progress:
        steps = asyncio.run(scan_trace(bootstrap, trace_id, args.topic_prefix, progress))
    print(render(steps, args.json))
    return 0 if steps else 1


def run() -> int:
    """The `switchboard` executable: main() in a process whose garbage collector is set for a service (heap.py)."""
    try:
        heap.settle()
    except SwitchboardError as error:
        return _user_error(error)
    return main()


if __name__ == "__main__":
    sys.exit(run())
