"""Requests written while a second worker joins the group: each one is applied once, by whichever worker owns it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from switchboard.groups import wait_for_stable_group
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import message_events, request, send_commands, terminal_count, write_pipeline

WAVES = 48
PER_WAVE = 15
WAVE_SECONDS = 0.25  # the waves span the join's rebalance (several seconds: revoke, assign, table recovery)


async def test_requests_written_during_a_join_are_each_applied_once(kafka_bootstrap: str, unique_prefix: str,
                                                                    tmp_path: Path,
                                                                    start_pipeline: StartPipeline) -> None:
    # Without streams/_faust_fixes.seek_to_committed_or_beginning this lost the requests written in the second or
    # so around the join, in 4 runs of 8: the partitions the joining worker took had nothing committed yet.
    config = write_pipeline(tmp_path)
    first = await start_pipeline(config, "pipeline-1")
    group = f"{unique_prefix}pipeline"
    await wait_for_stable_group(kafka_bootstrap, group, members=1, timeout=120)
    second = await start_pipeline(config, "pipeline-2")
    sent = set()
    for wave in range(WAVES):
        keys = [f"join-{wave}-{n}" for n in range(PER_WAVE)]
        await send_commands(kafka_bootstrap, unique_prefix, [request(f"cust-{key}", key) for key in keys])
        sent.update(keys)
        await asyncio.sleep(WAVE_SECONDS)  # the pace of the traffic, not a wait for something to happen
    per_message = await message_events(kafka_bootstrap, unique_prefix,
                                       lambda got: sum(map(terminal_count, got.values())) >= len(sent), timeout=120)
    assert first.is_running(), first.log_tail()
    assert second.is_running(), second.log_tail()
    assert sorted(_requested_keys(per_message)) == sorted(sent)  # each request became exactly one message
    assert all(terminal_count(events) == 1 for events in per_message.values())
    await wait_for_stable_group(kafka_bootstrap, group, members=2, timeout=60)  # the join really happened


def _requested_keys(per_message: dict[str, list[tuple[str, dict[str, Any]]]]) -> list[str]:
    return [payload["idempotency_key"] for events in per_message.values()
            for event_type, payload in events if event_type == "MessageRequested"]
