"""The message pipeline on the real broker: requests through writer and dispatcher to the channel and back."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp

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


async def test_the_worker_exports_dispatch_outcomes_and_dead_letters(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    gone = "+4917099700001"
    port = _free_port()
    await start_pipeline(write_pipeline(tmp_path, settings=f'fail_addresses = "{gone}"'), web_port=port)
    commands = [request(f"metrics-{i}", f"metrics-{i}", phone=gone if i < 2 else None) for i in range(10)]
    commands.append(("not-a-contact", {"kind": "nonsense"}))
    await send_commands(kafka_bootstrap, unique_prefix, commands)
    await message_events(kafka_bootstrap, unique_prefix, lambda got: sum(map(terminal_count, got.values())) >= 10)
    expected = {
        'switchboard_dispatch_outcomes_total{channel="whatsapp",outcome="accepted"}': 8.0,
        'switchboard_dispatch_outcomes_total{channel="whatsapp",outcome="permanent_failure"}': 2.0,
        'switchboard_dispatch_outcomes_total{channel="sms",outcome="accepted"}': 2.0,
        'switchboard_dead_letters_total{stage="writer"}': 1.0,
    }
    deadline = time.monotonic() + 60
    while (seen := await _metrics(port, expected)) != expected:  # counted once its batch is done
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _metrics(port: int, wanted: dict[str, float]) -> dict[str, float]:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
            text = await answer.text()
    except aiohttp.ClientError:
        return {}  # not serving yet
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(values[name]) for name in wanted if name in values}
