"""`switchboard project` keeps a projection up to date, `replay` rebuilds one beside it, `audit` tells a story."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from projections import (
    PROJECTIONS,
    MessageStatusProjection,
    ProjectionStore,
    RocksStore,
    catch_up,
    differences,
    end_offsets,
    message_key,
    print_progress,
)
from projections._audit import audit_message, audit_recipient, render, render_recipient, to_json
from projections._audit_state import time_argument
from projections._backends import BACKENDS, open_backend
from projections._followup_runner import run_followups
from projections._followups import FollowUpRules, FollowUps
from projections._parked_cli import add_deadletters_command
from projections._read_progress import ReadProgress
from projections._versions import ProjectionVersions
from switchboard.observability import Observability, serve_endpoints

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `project`, `replay`, `followups`, `audit` and `deadletters` to the switchboard CLI."""
    for name, helptext in (("project", "bring a projection up to date with its topic (once, or --follow)"),
                           ("replay", "rebuild a projection into a new version beside the serving one")):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("projection", choices=sorted(PROJECTIONS))
        command.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
        command.add_argument("--topic-prefix", default="")
        command.add_argument("--root", type=Path, default=Path("var/projections"), help="where versions live")
        command.add_argument("--store", choices=BACKENDS, default="rocksdb",
                             help="rocksdb (folders under --root) or postgres (tables for BI; docs/PROJECTIONS.md)")
        command.add_argument("--postgres-dsn", help="with --store postgres (default SWITCHBOARD_POSTGRES_DSN or the "
                                                    "local server of `switchboard postgres start`)")
        command.add_argument("--batch-size", type=int, default=5000, help="events per committed batch (default 5000)")
        command.set_defaults(handler=_project if name == "project" else _replay)
    replay = commands.choices["replay"]
    replay.add_argument("--from", dest="start", help="an offset (all partitions) or an ISO time; default the start")
    replay.add_argument("--verify", action="store_true", help="compare with the serving version; exit 1 if different")
    replay.add_argument("--switch", action="store_true", help="serve the new version once it is built (and verified)")
    project = commands.choices["project"]
    project.add_argument("--follow", action="store_true", help="keep applying new events")
    project.add_argument("--web-host", default="127.0.0.1", help="address of /healthz, /readyz and /metrics")
    project.add_argument("--web-port", type=int, help="with --follow: port of /healthz, /readyz (caught up once, "
                                                     "PostgreSQL answering with --store postgres) and /metrics")
    followups = commands.add_parser("followups", help="raise follow-ups for failed and unread messages")
    followups.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    followups.add_argument("--topic-prefix", default="")
    followups.add_argument("--root", type=Path, default=Path("var/projections"), help="where its state lives")
    followups.add_argument("--read-within", type=float, default=24 * 3600.0,
                           help="seconds after acceptance a message must be read (default 86400)")
    followups.add_argument("--categories", default="utility,authentication",
                           help="message categories whose unread messages are followed up")
    followups.add_argument("--web-host", default="127.0.0.1", help="address of /healthz, /readyz and /metrics")
    followups.add_argument("--web-port", type=int, help="port of /healthz, /readyz and /metrics (default: none)")
    followups.set_defaults(handler=_followups)
    audit = commands.add_parser("audit", help="a message's or a recipient's full history, each step with its cause")
    audit.add_argument("what", choices=["message", "recipient"])
    audit.add_argument("id", help="the message id, or the recipient's contact id")
    audit.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    audit.add_argument("--topic-prefix", default="")
    audit.add_argument("--contact", help="message: the recipient's contact id (default: looked up in the "
                                         "message-status projection under --root)")
    audit.add_argument("--root", type=Path, default=Path("var/projections"))
    audit.add_argument("--as-of", type=time_argument,
                       help="recipient: also the state of the contact and its messages at this time (ISO-8601, e.g. "
                            "2026-11-25T22:40:00Z, or unix seconds)")
    audit.add_argument("--since", type=time_argument,
                       help="read only records stamped at or after this time (same forms as --as-of): the contact's "
                            "partitions hold every other contact of their hash and the partition clock's ticks, so a "
                            "long history takes long to read whole")
    audit.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    audit.set_defaults(handler=_audit)
    add_deadletters_command(commands)


def _followups(args: argparse.Namespace) -> int:
    rules = FollowUps(FollowUpRules(args.read_within, frozenset(filter(None, args.categories.split(",")))))
    store = RocksStore(args.root / "followups")

    def ready() -> None:
        print(f"raising follow-ups on {args.topic_prefix}sb.events.followup (unread after {args.read_within:g} s: "
              f"{args.categories}); state in {args.root / 'followups'}", file=sys.stderr, flush=True)

    try:
        asyncio.run(_serve_followups(args, rules, store, ready))
    except KeyboardInterrupt:
        return 130
    finally:
        store.close()
    return 0


async def _serve_followups(args: argparse.Namespace, rules: FollowUps, store: ProjectionStore,
                           ready: Callable[[], None]) -> int:
    observability = Observability("followups")
    endpoints = None if args.web_port is None else \
        await serve_endpoints(observability, args.web_host, args.web_port)
    try:
        return await run_followups(args.bootstrap, args.topic_prefix, rules, store, on_ready=ready,
                                   observability=observability)
    finally:
        if endpoints is not None:
            await endpoints.cleanup()


def _audit(args: argparse.Namespace) -> int:
    as_of, since = args.as_of, args.since
    if args.what == "recipient":
        return _audit_recipient(args, as_of, since)
    if as_of is not None:
        print("--as-of is for `audit recipient`", file=sys.stderr)
        return 2
    contact = args.contact or _contact_of(args.root, args.id)
    if contact is None:
        print(f"message {args.id} is not in the message-status projection under {args.root}: build it "
              "with `switchboard project message-status`, or pass --contact", file=sys.stderr)
        return 2
    with ReadProgress("audit") as progress:
        audit = asyncio.run(audit_message(args.bootstrap, args.topic_prefix, args.id, contact, since, progress))
    print(json.dumps(to_json(audit), ensure_ascii=False, indent=1) if args.json else render(audit))
    return 0


def _audit_recipient(args: argparse.Namespace, as_of: datetime | None, since: datetime | None) -> int:
    if as_of is not None and since is not None:
        print("--as-of needs the whole history (a state folds every event before it): leave out --since",
              file=sys.stderr)
        return 2
    with ReadProgress("audit") as progress:
        audit = asyncio.run(audit_recipient(args.bootstrap, args.topic_prefix, args.id, as_of, since, progress))
    print(json.dumps(to_json(audit), ensure_ascii=False, indent=1) if args.json else render_recipient(audit))
    return 0


def _contact_of(root: Path, message_id: str) -> str | None:
    versions = ProjectionVersions(root, MessageStatusProjection.name)
    current = versions.current()
    if current is None:
        return None
    store = RocksStore(versions.path(current))
    try:
        row = store.get(message_key(message_id))
        return None if row is None else str(row["contact_id"])
    finally:
        store.close()


def _project(args: argparse.Namespace) -> int:
    return asyncio.run(_run_project(args))


async def _run_project(args: argparse.Namespace) -> int:
    versions = open_backend(args.store, args.projection, args.root, args.postgres_dsn)
    version = versions.current() or versions.next()
    versions.switch(version)
    topic, projection = args.topic_prefix + PROJECTIONS[args.projection].topic, PROJECTIONS[args.projection]()
    store = versions.open(version)
    rounds = [0]  # catch-up rounds finished
    observability = _project_observability(args, lambda: rounds[0] > 0)
    endpoints = None if not (args.follow and args.web_port) else \
        await serve_endpoints(observability, args.web_host, args.web_port)
    stage = observability.stage(f"projection-{args.projection}")
    try:
        while True:
            with stage.observe():  # one event per catch-up round
                done = await catch_up(args.bootstrap, topic, projection, store,
                                      await end_offsets(args.bootstrap, topic), batch_size=args.batch_size)
            rounds[0] += 1
            print(f"{args.projection} v{version}: {done.applied:,} events applied", file=sys.stderr)
            if not args.follow:
                return 0
            await asyncio.sleep(1.0)  # polling interval between catch-ups while following
    finally:
        if endpoints is not None:
            await endpoints.cleanup()
        store.close()


def _project_observability(args: argparse.Namespace, caught_up: Callable[[], bool]) -> Observability:
    """Ready once a catch-up round has finished (Kafka read to its end) and, with PostgreSQL, while it answers."""
    observability = Observability("projections")
    observability.readiness.add_flag("caught_up", caught_up, "read the topic to its end once")
    if args.store == "postgres":
        from switchboard.localpg import check_reachable, default_dsn

        dsn = args.postgres_dsn or default_dsn()

        async def postgres() -> tuple[bool, str]:
            try:
                await asyncio.to_thread(check_reachable, dsn)
            except Exception as error:  # any failure means "not reachable"; the detail names it, no password
                return False, f"PostgreSQL: {type(error).__name__}"
            return True, "PostgreSQL answers SELECT 1"
        observability.readiness.add("postgres", postgres)
    return observability


def _replay(args: argparse.Namespace) -> int:
    return asyncio.run(_run_replay(args))


async def _run_replay(args: argparse.Namespace) -> int:
    versions = open_backend(args.store, args.projection, args.root, args.postgres_dsn)
    serving, version = versions.current(), versions.next()
    topic, projection = args.topic_prefix + PROJECTIONS[args.projection].topic, PROJECTIONS[args.projection]()
    live = versions.open(serving, read_only=True) if serving is not None else None
    # Rebuild up to exactly where the serving version is, so the two can be compared row for row.
    target = live.positions() if (live is not None and args.verify) else await end_offsets(args.bootstrap, topic)
    start = await _start_offsets(args.bootstrap, topic, args.start, target)
    rebuilt = versions.open(version)
    try:
        done = await catch_up(args.bootstrap, topic, projection, rebuilt, target, start, print_progress,
                              batch_size=args.batch_size)
        print(f"\n{args.projection} v{version}: {done.applied:,} events rebuilt in {done.seconds:.2f} s "
              f"({done.rate:,.0f} events/s, {done.cpu_seconds:.2f} s of CPU) into {versions.where(version)}")
        if args.verify and live is not None and serving is not None and not _same(live, rebuilt, serving, version):
            return 1
        if args.switch:
            versions.switch(version)
            print(f"{args.projection}: now serving v{version}")
        return 0
    finally:
        rebuilt.close()
        if live is not None:
            live.close()


def _same(live: ProjectionStore, rebuilt: ProjectionStore, serving: int, version: int) -> bool:
    differing = differences(live, rebuilt)
    if differing:
        print(f"v{version} differs from v{serving} at {len(differing)}+ rows, e.g. {', '.join(differing[:5])}")
        return False
    print(f"v{version} is identical to v{serving}")
    return True


async def _start_offsets(bootstrap: str, topic: str, start: str | None, target: dict[int, int]) -> dict[int, int]:
    """`--from`: an offset for every partition, or the first offset at or after an ISO time."""
    if start is None:
        return dict.fromkeys(target, 0)
    if start.isdigit():
        return dict.fromkeys(target, int(start))
    at = int(datetime.fromisoformat(start).timestamp() * 1000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        found = await consumer.offsets_for_times({TopicPartition(topic, p): at for p in target})
        return {tp.partition: (hit.offset if hit is not None else target[tp.partition]) for tp, hit in found.items()}
    finally:
        await consumer.stop()
