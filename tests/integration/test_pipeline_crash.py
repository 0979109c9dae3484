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
    return decoded.event_type, decoded.payload["envelope"]


def _terminal_messages(values: list[tuple[str, dict[str, Any]]]) -> set[str]:
    return {envelope["aggregate_id"] for event_type, envelope in values if event_type in TERMINAL}


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
    for event_type, envelope in values:
        versions[envelope["aggregate_id"]][envelope["aggregate_version"]].add(event_type)
    assert len(versions) == MESSAGES
    for message_id, history in versions.items():
        assert sorted(history) == list(range(1, len(history) + 1)), f"{message_id}: versions with gaps"
        assert all(len(types) == 1 for types in history.values()), f"{message_id}: two events for one version"
        terminal = [v for v, types in history.items() if types & TERMINAL]
        assert len(terminal) == 1, f"{message_id}: {len(terminal)} terminal events"
