"""SIGKILL during a run: another worker takes over from the changelogs and every message ends exactly once."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from switchboard.kafka_io import collect
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import TERMINAL, request, send_commands, write_pipeline

MESSAGES = 3000


def _event(raw: bytes) -> tuple[str, dict[str, Any]]:
    decoded = decode(raw)
    assert isinstance(decoded, DecodedEvent)
    return decoded.event_type, decoded.payload


def _terminal_messages(values: list[tuple[str, dict[str, Any]]]) -> set[str]:
    return {payload["envelope"]["aggregate_id"] for event_type, payload in values if event_type in TERMINAL}


async def test_a_killed_worker_loses_nothing_and_doubles_nothing(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    config = write_pipeline(tmp_path, extra="[dispatch]\nreconcile_seconds = 2\n")
    first = await start_pipeline(config, name="first")
    commands = [request(f"crash-{i % 500}", f"crash-{i}") for i in range(MESSAGES)]
    await send_commands(kafka_bootstrap, unique_prefix, commands)
    topic = Topics(unique_prefix).message_events
    await collect(kafka_bootstrap, topic, lambda got: len(_terminal_messages(got)) >= MESSAGES // 4, _event, 120)
    first.kill()  # SIGKILL mid-run: nothing flushed, nothing committed
    await start_pipeline(config, name="second")  # an empty state directory: it restores from the changelogs
    values = await collect(kafka_bootstrap, topic, lambda got: len(_terminal_messages(got)) >= MESSAGES, _event, 300)

    versions: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event_type, payload in values:
        envelope = payload["envelope"]
        versions[envelope["aggregate_id"]][envelope["aggregate_version"]].add(event_type)
    assert len(versions) == MESSAGES
    for message_id, history in versions.items():
        assert sorted(history) == list(range(1, len(history) + 1)), f"{message_id}: versions with gaps"
        assert all(len(types) == 1 for types in history.values()), f"{message_id}: two events for one version"
        terminal = [v for v, types in history.items() if types & TERMINAL]
        assert len(terminal) == 1, f"{message_id}: {len(terminal)} terminal events"
    assert_order_per_recipient(values)


def assert_order_per_recipient(values: list[tuple[str, dict[str, Any]]]) -> None:
    """Each contact's messages were accepted in the order they were requested, across the takeover."""
    sequence = {p["envelope"]["aggregate_id"]: int(p["idempotency_key"].rsplit("-", 1)[1])
                for t, p in values if t == "MessageRequested"}
    accepted: dict[str, list[int]] = defaultdict(list)
    for event_type, payload in values:  # one contact's events share a partition, read in offset order
        message = payload["envelope"]["aggregate_id"]
        if event_type == "MessageAcceptedByProvider" and sequence[message] not in accepted[payload["contact_id"]]:
            accepted[payload["contact_id"]].append(sequence[message])
    assert len(accepted) == 500
    for contact_id, order in accepted.items():
        assert order == sorted(order), f"{contact_id}: accepted out of order {order}"
