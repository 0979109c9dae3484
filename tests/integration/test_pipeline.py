"""The message pipeline on the real broker: requests through writer and dispatcher to the channel and back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from streams.pipeline.app import PipelineSettings
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess
from tests.integration.pipeline_support import (
    message_events,
    request,
    send_commands,
    terminal_count,
    types,
    write_pipeline,
)

StartPipeline = Callable[..., Awaitable[WorkerProcess[PipelineSettings]]]


@pytest.fixture
def start_pipeline(tmp_path: Path, kafka_bootstrap: str, unique_prefix: str) -> Iterator[StartPipeline]:
    """Starts pipeline workers for a test; none outlives it."""
    started: list[WorkerProcess[PipelineSettings]] = []

    async def start(config: Path, name: str = "pipeline-1", **options: object) -> WorkerProcess[PipelineSettings]:
        settings = PipelineSettings(bootstrap=kafka_bootstrap, data_dir=str(tmp_path / name / "state"),
                                    config_path=str(config), app_id=f"{unique_prefix}pipeline",
                                    topic_prefix=unique_prefix, worker_name=name, **options)  # type: ignore[arg-type]
        await ensure_topics(kafka_bootstrap, settings.topic_specs())  # before any test record is produced
        worker = WorkerProcess(settings, tmp_path / f"{name}.log")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.is_running():
            worker.kill()


async def test_requests_reach_the_channel_once_each(kafka_bootstrap: str, unique_prefix: str, tmp_path: Path,
                                                    start_pipeline: StartPipeline) -> None:
    worker = await start_pipeline(write_pipeline(tmp_path))
    commands = [request(f"cust-{i % 7}", f"order-{i}") for i in range(40)]
    await send_commands(kafka_bootstrap, unique_prefix, commands)
    per_message = await message_events(kafka_bootstrap, unique_prefix,
                                       lambda got: sum(map(terminal_count, got.values())) >= 40)
    assert worker.is_running(), worker.log_tail()
    assert len(per_message) == 40
    for events in per_message.values():
        assert types(events) == ["MessageRequested", "MessageRendered", "MessageRouted", "MessageDispatchAttempted",
                                 "MessageAcceptedByProvider"]
