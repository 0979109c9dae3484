"""The message pipeline on the real broker: requests through writer and dispatcher to the channel and back."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import (
    message_events,
    request,
    send_commands,
    terminal_count,
    types,
    write_pipeline,
)


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
