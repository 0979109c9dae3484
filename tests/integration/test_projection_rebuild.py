"""Messages through the pipeline to a faulty simulator and back; every projection rebuilt from offset zero is
identical to the live one, in RocksDB and in PostgreSQL."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from projections import PROJECTIONS, MessageStatusProjection, RocksStore
from projections._versions import ProjectionVersions
from projections.cli import _run_project, _run_replay
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from switchboard.cli import _parser
from switchboard.kafka_io import collect
from tests.integration.pipeline_support import request, send_commands
from tests.integration.test_receipts_end_to_end import Stack, until
from tests.integration.webhook_stack import webhook_stack

# How many messages: SWITCHBOARD_REBUILD_MESSAGES, default 2,000 (docs/PROJECTIONS.md, "Rebuilding after a faulty
# run", has the times measured: about 90 s on the 2-core machine when it is not shared).
MESSAGES = int(os.environ.get("SWITCHBOARD_REBUILD_MESSAGES", "2000"))
THROTTLED, BURST = 130429, 25  # the simulator's answer above its messages per second; one burst at the start
SENDER_RATE = {"per_second": 100, "burst": 20}  # our sender's limit, a little above the simulator's 80 a second
FAULTS: dict[str, Any] = {"error_rate": 0.05, "mps_limit": 80, "duplicate_rate": 0.1, "reorder_rate": 0.1, "seed": 7}
# The circuit stays closed (200 failures in a row would open it): the faults are retried, not all sent by SMS.
BREAKER = "[dispatch]\nbreaker_error_rate = 1.0\nbreaker_window = 200\nbreaker_min_calls = 200\n"
FINAL = frozenset({"MessageRead", "MessageDeadLettered", "MessageExpired", "MessageSuppressed"})


class Finality:
    """Folds message events as they are read: a message is final once read, or accepted by SMS (no receipts in
    process), or closed; nothing more will happen to it then but late duplicate receipts."""

    def __init__(self) -> None:
        self.channel: dict[str, str] = {}
        self.final: set[str] = set()
        self.by_channel: Counter[str] = Counter()

    def read(self, raw: bytes) -> None:
        event = decode(raw)
        assert isinstance(event, DecodedEvent), event
        message_id, kind = event.payload["envelope"]["aggregate_id"], event.event_type
        if kind == "MessageDispatchAttempted":
            self.channel[message_id] = event.payload["channel"]
        ends_here = kind in FINAL or (kind == "MessageAcceptedByProvider" and self.channel.get(message_id) == "sms")
        if ends_here and message_id not in self.final:
            self.final.add(message_id)
            self.by_channel[kind if kind in FINAL else "sms"] += 1


@pytest.mark.timeout(900)  # the suite's 300 s per test is for ordinary tests; this one runs thousands of messages
async def test_every_projection_rebuilt_from_offset_zero_after_a_faulty_run_equals_the_live_one(
        kafka_bootstrap: str, postgres_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with webhook_stack(kafka_bootstrap, tmp_path, extra=BREAKER, **SENDER_RATE, **FAULTS) as stack:
        started = time.monotonic()
        stack.simulator.inject_error(THROTTLED, times=BURST)  # and more whenever the pipeline outruns 80 a second
        await send_commands(kafka_bootstrap, stack.prefix,
                            [request(f"rebuild-{i % 500}", f"rebuild-{i}") for i in range(MESSAGES)])
        finality = await _every_message_final(stack)
        final = time.monotonic()
        await until(lambda: stack.simulator.pending_webhooks == 0, stack, "the simulator's last receipts")
        rejected = stack.simulator.counters.rejected
        rocks, postgres = tmp_path / "projections", ["--store", "postgres", "--postgres-dsn", postgres_database]
        outputs = [await _project_and_replay(stack, name, rocks, store, capsys)
                   for name in sorted(PROJECTIONS) for store in ([], postgres)]
        _tell(f"{MESSAGES:,} messages final after {final - started:.0f} s; projected, rebuilt and verified in "
              f"{time.monotonic() - final:.0f} s")

    assert rejected[THROTTLED] >= BURST, rejected  # the faults did happen
    assert sum(rejected[code] for code in (131000, 131016, 2)) > 0, rejected
    assert finality.by_channel["MessageRead"] > 0, finality.by_channel  # receipts came back (how many fell back
    # to SMS after four throttled attempts depends on how fast the loaded machine lets the pipeline go)
    for output in outputs:
        assert "v2 is identical to v1" in output, output
    versions = ProjectionVersions(rocks, MessageStatusProjection.name)
    store = RocksStore(versions.path(versions.current() or 0))
    try:
        statuses = Counter(row["status"] for _, row in store.items("msg:"))
    finally:
        store.close()
    assert sum(statuses.values()) == MESSAGES
    assert set(statuses) <= {"read", "accepted"}, statuses  # read on WhatsApp, or accepted by SMS after a fallback


async def _every_message_final(stack: Stack) -> Finality:
    finality = Finality()

    def done(_: list[None]) -> bool:
        stack.alive()
        return len(finality.final) >= MESSAGES

    await collect(stack.bootstrap, Topics(stack.prefix).message_events, done, finality.read, 600.0)
    return finality


async def _project_and_replay(stack: Stack, name: str, root: Path, store: list[str],
                              capsys: pytest.CaptureFixture[str]) -> str:
    """`switchboard project NAME` (the live version), then `replay NAME --from 0 --verify` beside it, run by the
    CLI's own functions in this process (a process each would spend more on start-up than on the work)."""
    common = [name, "--bootstrap", stack.bootstrap, "--topic-prefix", stack.prefix, "--root", str(root), *store]
    assert await _run_project(_parser().parse_args(["project", *common])) == 0
    code = await _run_replay(_parser().parse_args(["replay", *common, "--from", "0", "--verify"]))
    output = capsys.readouterr().out
    assert code == 0, output
    return output


def _tell(line: str) -> None:
    """A line for whoever runs the suite (-s), past pytest's capture of this test's output."""
    print(line, file=sys.__stderr__, flush=True)
