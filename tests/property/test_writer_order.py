"""Whatever the channels answer, a contact's messages end exactly once each and are accepted in request order."""

from __future__ import annotations

import random
from collections import Counter, deque
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates import Message
from streams.pipeline._state import ContactRow
from streams.pipeline._writer import Effects, Writer
from switchboard._config_parse import load_bytes
from switchboard.config import PipelineConfig
from tests.unit.pipeline.conftest import PIPELINE, outcome, request

CONFIG = load_bytes(Path("test-pipeline.toml"), PIPELINE)
ANSWERS = st.sampled_from(["accepted", "accepted", "retry_later", "permanent_failure", "unknown", "circuit_open"])
CLOSING = {"Message.AcceptedByProvider", "Message.Suppressed", "Message.DeadLettered", "Message.Expired"}
NOON = 1_764_072_000.0  # 2025-11-25 12:00 UTC: outside the declaration's quiet hours


def _config() -> PipelineConfig:
    return CONFIG


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 6), answers=st.lists(ANSWERS, min_size=1, max_size=60), seed=st.integers(0, 1000))
def test_every_message_closes_once_and_in_order(count: int, answers: list[str], seed: int) -> None:
    writer, row, now = Writer(_config, random.Random(seed)), ContactRow(), NOON
    jobs: deque[dict[str, Any]] = deque()
    closings: Counter[str] = Counter()
    accepted: list[str] = []
    order = {str(Message.create_id("acme", f"p-{i}")): i for i in range(count)}

    def run(effects: Effects) -> None:
        jobs.extend(effects.jobs)
        for emitted in effects.events:
            kind = type(emitted.event).__qualname__
            closings.update([str(emitted.aggregate.id)] if kind in CLOSING else [])
            accepted.extend([str(emitted.aggregate.id)] if kind == "Message.AcceptedByProvider" else [])

    for i in range(count):
        run(writer.handle(row, request(f"p-{i}"), now))
    replies = iter(answers)
    for _ in range(200):  # the clock runs until everything is settled; when answers run out, all is accepted
        while jobs:
            run(writer.handle(row, outcome(jobs.popleft(), next(replies, "accepted"), provider_message_id="p"), now))
        if len(closings) == count:
            break
        now += 120.0
        run(writer.handle(row, {"kind": "tick", "at": now}, now))
    assert set(closings) == set(order), "every message closes"
    assert set(closings.values()) == {1}, "and closes once"
    assert [order[m] for m in accepted] == sorted(order[m] for m in accepted), "accepted in request order"
