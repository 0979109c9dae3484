"""A worker expelled from its group mid-batch while still alive (SIGSTOP past the session timeout, then SIGCONT once
the other worker has moved on): every message ends exactly once, also after it takes every partition back."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.whatsapp import ENV_ACCESS_TOKEN
from connectors.whatsapp_simulator import WhatsAppSimulator
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from switchboard.groups import wait_for_stable_group
from switchboard.kafka_io import collect
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import TERMINAL, request, send_commands, write_pipeline

CONTACTS = 200
FIRST_WAVE = 3 * CONTACTS  # three messages per contact: each waits for its predecessor's outcome
MESSAGES = FIRST_WAVE + CONTACTS  # and one more each once the expelled worker holds every partition
# Sender accounts (phone-number ids): their rows spread over the dispatch partitions, so both workers send.
SENDERS = {f"10595455895442{n}": f"1555000111{n}" for n in range(6)}
ACCESS_TOKEN = "rebalance-access-token"


@pytest.fixture
async def simulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WhatsAppSimulator]:
    """Meta's send endpoint, no receipts (an outcome is the only answer); its pipeline subprocesses get the token."""
    monkeypatch.setenv(ENV_ACCESS_TOKEN, ACCESS_TOKEN)
    async with WhatsAppSimulator(access_token=ACCESS_TOKEN, app_secret="rebalance-secret", latency=(0.05, 0.3),
                                 phone_numbers=SENDERS, pair_window=None, enforce_window=False,
                                 mps_limit=None) as running:
        yield running


def _pipeline(directory: Path, simulator: WhatsAppSimulator) -> Path:
    """write_pipeline's declaration with six WhatsApp senders and a short reconciliation (an attempt whose outcome
    died with a worker is retried 2 s after, if no receipt says more)."""
    path = write_pipeline(directory, driver="whatsapp", settings=f'base_url = "{simulator.url}"',
                          extra="[dispatch]\nreconcile_seconds = 2\n")
    first, *others = SENDERS
    declared = path.read_text().replace('id = "wa-main"', 'id = "wa-0"').replace(
        'address = "105954558954427"', f'address = "{first}"')
    more = "".join(f'\n[[channels.senders]]\nid = "wa-{n}"\naddress = "{address}"\nper_second = 1000\n'
                   for n, address in enumerate(others, start=1))
    path.write_text(declared.replace('\n[[channels]]\nid = "sms"', f'{more}\n[[channels]]\nid = "sms"', 1))
    return path


def _event(raw: bytes) -> tuple[str, dict[str, Any]]:
    decoded = decode(raw)
    assert isinstance(decoded, DecodedEvent)
    return decoded.event_type, decoded.payload


def _histories(values: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[int, set[str]]]:
    """Per message, the event types logged at each aggregate version (a replayed event repeats its version)."""
    versions: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event_type, payload in values:
        envelope = payload["envelope"]
        versions[envelope["aggregate_id"]][envelope["aggregate_version"]].add(event_type)
    return versions


def _finished(values: list[tuple[str, dict[str, Any]]]) -> int:
    return sum(1 for history in _histories(values).values() if any(types & TERMINAL for types in history.values()))


def _stuck(values: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Messages without a terminal event, each with its last event: what an operator would see as 'stuck'."""
    return {message: sorted(history[max(history)])[0] for message, history in _histories(values).items()
            if not any(types & TERMINAL for types in history.values())}


async def _all_final(bootstrap: str, topic: str, timeout: float) -> list[tuple[str, dict[str, Any]]]:
    """The message events once every message has a terminal one; else fails naming the messages left open."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def done(got: list[tuple[str, dict[str, Any]]]) -> bool:
        seen[:] = got
        return _finished(got) >= MESSAGES

    try:
        return await collect(bootstrap, topic, done, _event, timeout)
    except TimeoutError:
        stuck = _stuck(seen)
        pytest.fail(f"{len(stuck)} messages never final after {timeout:.0f} s (last event of each): {stuck}")


async def test_a_worker_expelled_mid_send_loses_no_message(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline,
        simulator: WhatsAppSimulator) -> None:
    config = _pipeline(tmp_path, simulator)
    first = await start_pipeline(config, name="first")
    second = await start_pipeline(config, name="second")
    group = f"{unique_prefix}pipeline"
    await wait_for_stable_group(kafka_bootstrap, group, 2, timeout=120)
    await send_commands(kafka_bootstrap, unique_prefix,
                        [request(f"kick-{i % CONTACTS}", f"kick-{i}") for i in range(FIRST_WAVE)])
    topic = Topics(unique_prefix).message_events
    await collect(kafka_bootstrap, topic, lambda got: _finished(got) >= FIRST_WAVE // 5, _event, 120)

    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)  # mid-batch (a backlog keeps it busy): it misses its heartbeats
    try:
        # The coordinator expires it after the 10 s session timeout and hands its partitions to the other worker,
        # which restores their rows and gets well past the frozen worker's batch before that one wakes.
        await wait_for_stable_group(kafka_bootstrap, group, 1, timeout=120)
        await collect(kafka_bootstrap, topic, lambda got: _finished(got) >= FIRST_WAVE * 9 // 10, _event, 180)
    finally:
        os.kill(first.pid, signal.SIGCONT)  # the old member again: its batch ends (its rows were written, unfenced)
    await wait_for_stable_group(kafka_bootstrap, group, 2, timeout=180)  # its batch ended, it rejoined
    assert first.is_running(), first.log_tail()
    # The other worker leaves: the expelled one restores every partition from its own state and the changelogs,
    # and a second wave finds each contact's and sender's row as the last owner left it.
    await asyncio.to_thread(second.stop)  # in a thread: the simulator answering the workers runs in this loop
    await wait_for_stable_group(kafka_bootstrap, group, 1, timeout=120)
    await send_commands(kafka_bootstrap, unique_prefix,
                        [request(f"kick-{i}", f"kick-again-{i}") for i in range(CONTACTS)])

    values = await _all_final(kafka_bootstrap, topic, 240)
    histories = _histories(values)
    assert len(histories) == MESSAGES
    for message_id, history in histories.items():
        assert sorted(history) == list(range(1, len(history) + 1)), f"{message_id}: versions with gaps"
        assert all(len(types) == 1 for types in history.values()), \
            f"{message_id}: two events for one version: {dict(sorted(history.items()))}"
        terminal = [v for v, types in history.items() if types & TERMINAL]
        assert len(terminal) == 1, f"{message_id}: {len(terminal)} terminal events"
