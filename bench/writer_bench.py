"""The contact writer's own path per message, in process: the five commands of a message's life, no Kafka.

Each message is a request, the dispatcher's `accepted` outcome, and the sent, delivered and read receipts, applied to
a fresh contact row by `Writer.handle` exactly as the runtime applies them; after each command the row is pickled
(the rollback image and the bytes written, as `_runtime._apply` does) and every event is built into its record and
encoded (`to_record`, `encode(validate=False)`, as `_runtime._ship` does). Prints milliseconds per message per step.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aggregates import to_record
from bench._common import print_machine
from schemas import TraceContext, encode
from streams.pipeline._state import ContactRow
from streams.pipeline._writer import Effects, Writer
from switchboard._config_parse import load_bytes
from tests.unit.pipeline.conftest import PIPELINE, outcome, request

NOON = 1_795_000_000.0
STEPS = ("handle", "pickle", "records", "jobs")
T = TypeVar("T")


class WriterPath:
    """One writer and the time each step took, summed over the messages played."""

    def __init__(self) -> None:
        config = load_bytes(Path("bench-writer.toml"), PIPELINE)
        self.writer = Writer(lambda: config, random.Random(7))
        self.seconds = dict.fromkeys(STEPS, 0.0)

    def command(self, row: ContactRow, command: dict[str, Any], now: float) -> Effects:
        effects = self._timed("handle", lambda: self.writer.handle(row, command, now))
        self._timed("pickle", lambda: pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL))
        self._timed("records", lambda: [encode(r.event, r.event_type, validate=False) for r in (
            to_record(e.aggregate, e.event, TraceContext(causation_id="bench")) for e in effects.events)])
        self._timed("jobs", lambda: [json.dumps(job, separators=(",", ":")).encode() for job in effects.jobs])
        return effects

    def message(self, n: int) -> None:
        row = ContactRow()
        job = self.command(row, request(f"o-{n}", ref=f"c-{n}"), NOON).jobs[0]
        self.command(row, outcome(job, "accepted", provider_message_id=f"wamid.{n}"), NOON + 1)
        for step, status in enumerate(("sent", "delivered", "read")):
            receipt = {"kind": "receipt", "command_id": f"rc-{n}-{status}", "contact_id": job["contact_id"],
                       "message_id": job["message_id"], "status": status, "provider_message_id": f"wamid.{n}",
                       "at": NOON + 2 + step}
            self.command(row, receipt, NOON + 2 + step)

    def _timed(self, step: str, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = work()
        self.seconds[step] += time.perf_counter() - started
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5_000)
    args = parser.parse_args()
    print_machine()
    path = WriterPath()
    for n in range(500):  # warm-up: imports, caches, the first compiled templates
        path.message(n)
    path.seconds = dict.fromkeys(STEPS, 0.0)
    for n in range(args.messages):
        path.message(500 + n)
    each = {step: 1000 * seconds / args.messages for step, seconds in path.seconds.items()}
    print("| step | ms per message (5 commands) |\n| --- | --- |")
    for step in STEPS:
        print(f"| {step} | {each[step]:.3f} |")
    print(f"| total | {sum(each.values()):.3f} |")


if __name__ == "__main__":
    main()
