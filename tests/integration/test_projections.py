"""The message-status projection: built live, rebuilt from offset zero beside it, and found identical."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from projections import MessageStatusProjection, RocksStore, message_key, recipient_key
from projections._versions import ProjectionVersions
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from switchboard.kafka_io import collect
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import (
    contact_id,
    message_events,
    request,
    send_commands,
    terminal_count,
    write_pipeline,
)

FLAKY, GONE = "+4917099800001", "+4917099800002"


async def _switchboard(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "switchboard.cli", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_a_rebuilt_projection_equals_the_live_one(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    settings = f'flaky_addresses = "{FLAKY}", fail_addresses = "{GONE}"'
    await start_pipeline(write_pipeline(tmp_path, settings=settings, extra="[dispatch]\nbreaker_error_rate = 1.0\n"))
    commands = [request(f"proj-{i % 40}", f"proj-{i}", phone=(FLAKY, GONE, None)[i % 3]) for i in range(300)]
    await send_commands(kafka_bootstrap, unique_prefix, commands)
    await message_events(kafka_bootstrap, unique_prefix, lambda got: sum(map(terminal_count, got.values())) >= 300)
    root = tmp_path / "projections"
    common = ["--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix, "--root", str(root)]

    code, output = await _switchboard("project", "message-status", *common)
    assert code == 0, output
    code, output = await _switchboard("replay", "message-status", *common, "--verify", "--switch")
    assert code == 0, output
    assert "v2 is identical to v1" in output
    assert "now serving v2" in output

    versions = ProjectionVersions(root, MessageStatusProjection.name)
    store = RocksStore(versions.path(versions.current() or 0))
    try:
        rows = [row for _, row in store.items("msg:")]
        assert len(rows) == 300
        by_channels = {tuple(row["channels"]) for row in rows}
        assert by_channels == {("whatsapp",), ("whatsapp", "sms")}  # the undeliverable ones fell back
        assert {row["status"] for row in rows} == {"accepted"}
        assert max(row["attempts"] for row in rows) == 2  # the flaky recipients' first attempts were retried
        fallen = next(row for row in rows if len(row["channels"]) == 2)
        assert fallen["errors"][0]["code"] == "inprocess.undeliverable"
        recipient = store.get(recipient_key(contact_id("proj-0")))
        assert recipient is not None
        assert len(recipient) == 8  # proj-0, proj-40, ... proj-280
        first = store.get(message_key(recipient[0]))
        assert first is not None
        assert first["contact_id"] == contact_id("proj-0")
    finally:
        store.close()


async def test_the_audit_of_a_retried_and_fallen_back_message_shows_every_step_with_its_cause(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    nowhere = "+4917099800009"  # WhatsApp asks for a retry every time, so the message falls back to SMS
    await start_pipeline(write_pipeline(tmp_path, settings=f'retry_addresses = "{nowhere}"', max_attempts=2,
                                        extra="[dispatch]\nbreaker_error_rate = 1.0\n"))
    await send_commands(kafka_bootstrap, unique_prefix, [request("audited", "audited-1", phone=nowhere)])
    [message_id] = await message_events(kafka_bootstrap, unique_prefix, lambda got: sum(map(terminal_count,
                                                                                            got.values())) >= 1)
    root = tmp_path / "projections"
    common = ["--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix, "--root", str(root)]
    assert (await _switchboard("project", "message-status", *common))[0] == 0
    code, output = await _switchboard("audit", "message", message_id, *common, "--json")  # contact from the row
    assert code == 0, output
    steps = json.loads(output)["steps"]
    assert [(step["source"], step["kind"], step["caused_by"]) for step in steps] == [
        ("command", "request", None), ("event", "MessageRequested", 1), ("event", "MessageRendered", 1),
        ("event", "MessageRouted", 1), ("event", "MessageDispatchAttempted", 1),
        ("command", "outcome", 5), ("event", "MessageFailed", 6), ("event", "MessageRetryScheduled", 6),
        ("event", "MessageDispatchAttempted", None),  # fired by the partition clock when the retry was due
        ("command", "outcome", 9), ("event", "MessageFailed", 10), ("event", "MessageFallbackTriggered", 10),
        ("event", "MessageRendered", 10), ("event", "MessageRouted", 10), ("event", "MessageDispatchAttempted", 10),
        ("command", "outcome", 15), ("event", "MessageAcceptedByProvider", 16),
    ], output
    assert steps[8]["cause"].startswith("the retry was due")
    assert steps[11]["details"]["to_channel"] == "sms"


async def test_follow_ups_are_raised_for_dead_letters_and_unread_messages(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    nowhere = "+4917099800010"
    sms_too = f'fail_addresses = "{nowhere}"'
    config = write_pipeline(tmp_path, settings=sms_too)
    config.write_text(config.read_text().replace('provider = "sms-gateway"\ndriver = "inprocess"',
                                                 f'provider = "sms-gateway"\ndriver = "inprocess"\n'
                                                 f'settings = {{ {sms_too} }}'))
    await start_pipeline(config)
    await send_commands(kafka_bootstrap, unique_prefix, [request("warmup", "warmup-1")])
    await message_events(kafka_bootstrap, unique_prefix, lambda got: sum(map(terminal_count, got.values())) >= 1)
    followups = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "followups", "--bootstrap", kafka_bootstrap, "--topic-prefix",
        unique_prefix, "--root", str(tmp_path / "fu"), "--read-within", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert followups.stdout is not None
        # It says where it raises them once it has started (after any log lines of its start-up).
        line = b""
        while b"raising follow-ups on" not in line:
            line = await followups.stdout.readline()
            assert line, "switchboard followups exited before it started"
        await send_commands(kafka_bootstrap, unique_prefix, [request("lost", "lost-1", phone=nowhere),
                                                             request("silent", "silent-1")])
        raised = await collect(kafka_bootstrap, Topics(unique_prefix).prefix + "sb.events.followup",
                               lambda got: len(got) >= 2, _followup, 60)
    finally:
        followups.terminate()
        await followups.wait()
    by_reason = {payload["reason"]: payload for payload in raised}
    assert set(by_reason) == {"failed", "not_read"}  # the warm-up message, from before it started, is history
    assert by_reason["failed"]["status"] == "dead_lettered"
    assert by_reason["not_read"]["contact_id"] == contact_id("silent")


def _followup(raw: bytes) -> dict[str, Any]:
    decoded = decode(raw)
    assert isinstance(decoded, DecodedEvent)
    assert decoded.event_type == "FollowUpRequired"
    return decoded.payload
