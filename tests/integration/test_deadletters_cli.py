"""`switchboard deadletters` on the broker: a pipeline's dead letter and a refused webhook, summed up and listed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from connectors.receiver import KafkaWebhookSink
from connectors.whatsapp import ENV_ACCESS_TOKEN, ENV_APP_SECRET
from switchboard.kafka_io import collect_json
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import TENANT, contact_id, send_commands, write_pipeline
from tests.integration.test_receipts_end_to_end import receiver
from tests.integration.webhook_stack import switchboard


async def test_what_was_parked_is_summed_up_by_stage_and_reason_and_listed(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        start_pipeline: StartPipeline) -> None:
    monkeypatch.setenv(ENV_ACCESS_TOKEN, "it-token")
    monkeypatch.setenv(ENV_APP_SECRET, "it-secret")
    await start_pipeline(write_pipeline(tmp_path))
    unknown = {"kind": "trigger", "v": 1, "command_id": "t-1", "tenant": TENANT, "contact_id": contact_id("dl-1"),
               "trigger": "no-such-trigger", "event_type": "OrderShipped", "event": {"order_id": "o-1"}}
    await send_commands(kafka_bootstrap, unique_prefix, [(contact_id("dl-1"), unknown)])
    async with KafkaWebhookSink(kafka_bootstrap, prefix=unique_prefix, partitions=3) as sink, receiver(sink) as url, \
            aiohttp.ClientSession() as session, session.post(url, data=b'{"object": "x"}') as unsigned:
        assert unsigned.status == 401
    await collect_json(kafka_bootstrap, f"{unique_prefix}sb.deadletters", lambda letters: len(letters) >= 1, 90.0)

    common = ("--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix)
    code, summary = await switchboard("deadletters", *common)
    assert code == 0, summary
    lines = summary.splitlines()
    assert lines[0] == "2 parked, 2 reasons:"
    assert any(line.split()[:2] == ["1", "triggers"] and "no-such-trigger" in line for line in lines[2:])
    assert any(line.split()[:3] == ["1", "receiver", "(whatsapp)"] and line.endswith("signature_missing")
               for line in lines[2:])

    code, listed = await switchboard("deadletters", *common, "--list", "--json", "--stage", "triggers")
    assert code == 0, listed
    [letter] = [json.loads(line) for line in listed.splitlines()]
    assert (letter["topic"], letter["stage"], letter["details"]["contact_id"]) == (
        "sb.deadletters", "triggers", contact_id("dl-1"))

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, nothing = await switchboard("deadletters", *common, "--since", later)
    assert (code, nothing.strip()) == (0, "nothing parked (0 records read)")
    code, bad = await switchboard("deadletters", *common, "--since", "last tuesday")
    assert code == 2
    assert "--since" in bad
