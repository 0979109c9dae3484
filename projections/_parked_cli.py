"""`switchboard deadletters`: what was parked (dead letters, refused webhooks) and why, summed up or listed."""

from __future__ import annotations

import argparse
import asyncio
import sys

from projections._audit_state import time_argument
from projections._parked import DEAD_LETTERS, REJECTS, Parked, parked, render_list, render_summary, summarise
from projections._read_progress import ReadProgress
from switchboard.log_reads import read_topics

__all__ = ["add_deadletters_command"]


def add_deadletters_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `deadletters` to the switchboard CLI."""
    command = commands.add_parser("deadletters", help="what was parked (sb.deadletters, sb.rejects) and why")
    command.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    command.add_argument("--topic-prefix", default="")
    command.add_argument("--since", type=time_argument,
                         help="only what was parked at or after this time (ISO-8601, e.g. 2026-11-25T22:40:00Z, or "
                              "unix seconds)")
    command.add_argument("--stage", help="only this stage (writer, dispatch, triggers, normaliser, status-callback, "
                                         "'receiver (whatsapp)', ...)")
    command.add_argument("--reason", help="only reasons containing this text (case-insensitive)")
    command.add_argument("--list", action="store_true", help="each parked record, oldest first, not the summary")
    command.add_argument("--json", action="store_true", help="with --list: one JSON object per line")
    command.add_argument("--top", type=int, default=20, help="reasons shown in the summary (default 20)")
    command.set_defaults(handler=_deadletters)


def _deadletters(args: argparse.Namespace) -> int:
    if args.top < 1:
        print("--top must be at least 1", file=sys.stderr)
        return 2
    topics = {args.topic_prefix + name: name for name in (DEAD_LETTERS, REJECTS)}
    with ReadProgress("deadletters") as progress:
        found = asyncio.run(read_topics(args.bootstrap, topics, args.since, progress))
    read = sum(len(records) for records in found.values())
    items = [item for name, records in found.items() for record in records
             if _wanted(item := parked(record, topics[name]), args)]
    if args.list or args.json:
        print(render_list(items, as_json=args.json) or f"nothing parked matches ({read} records read)")
    else:
        print(render_summary(summarise(items), read, args.top))
    return 0


def _wanted(item: Parked, args: argparse.Namespace) -> bool:
    return (args.stage is None or item.stage == args.stage) and \
        (args.reason is None or args.reason.lower() in item.reason.lower())
