"""Messenger end to end: a send through the simulator, its echo, delivery and read back through the receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connectors.messenger import ENV_APP_SECRET, ENV_PAGE_TOKEN, MessengerDriver
from connectors.messenger_simulator import MessengerSimulator, MessengerSimulatorConfig
from connectors.normaliser import Normaliser, NormaliserConfig
from connectors.receiver import KafkaWebhookSink
from tests.contract.messenger_support import PAGE_ID, messenger_channel
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import message_events, request, send_commands, types, write_pipeline
from tests.integration.test_receipts_end_to_end import receiver

PAGE_TOKEN, APP_SECRET = "it-page-token", "it-app-secret"
# The default route goes to Messenger, falling back to WhatsApp; the channel is declared after the shared parts.
TO_MESSENGER = ('name = "default"\ntenant = "acme"\nchannel = "whatsapp"\nfallback = ["sms"]',
                'name = "default"\ntenant = "acme"\nchannel = "messenger"\nfallback = ["whatsapp"]')
RECEIPTS = ("MessageSent", "MessageDelivered", "MessageRead")


@pytest.mark.parametrize("mids", [True, False], ids=["delivery-with-mids", "delivery-by-watermark-only"])
async def test_a_messenger_message_is_sent_delivered_and_read_by_the_pages_webhooks(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        start_pipeline: StartPipeline, mids: bool) -> None:
    monkeypatch.setenv(ENV_PAGE_TOKEN, PAGE_TOKEN)  # the pipeline worker's, receiver's and normaliser's drivers
    monkeypatch.setenv(ENV_APP_SECRET, APP_SECRET)
    users = ["6789012345678901", "6789012345678902"]
    async with KafkaWebhookSink(kafka_bootstrap, prefix=unique_prefix, partitions=3) as sink, \
            receiver(sink, MessengerDriver.from_settings({})) as url:
        page = MessengerSimulatorConfig(PAGE_ID, PAGE_TOKEN, APP_SECRET, webhook_url=url, delivery_mids=mids)
        async with MessengerSimulator(page) as messenger:
            config = write_pipeline(tmp_path, extra=messenger_channel(settings=f'base_url = "{messenger.url}"'))
            config.write_text(config.read_text().replace(*TO_MESSENGER))
            await start_pipeline(config)
            normaliser = Normaliser(NormaliserConfig(kafka_bootstrap, unique_prefix, f"{unique_prefix}normaliser",
                                                     config))
            task = asyncio.create_task(normaliser.run())
            try:
                await send_commands(kafka_bootstrap, unique_prefix, [_to_user(f"fb-{n}", user)
                                                                     for n, user in enumerate(users)])
                by_message = await message_events(kafka_bootstrap, unique_prefix, lambda got: len(got) == 2 and all(
                    "MessageRead" in types(events) for events in got.values()))
            finally:
                normaliser.stop()
                await asyncio.wait_for(task, 30)
    assert sorted(body["recipient"]["id"] for body in messenger.messages.values()) == users
    assert [body["message"]["text"] for body in messenger.messages.values()] == [
        "Your order fb-0 has shipped.", "Your order fb-1 has shipped."]  # the template's text: Messenger has none
    for events in by_message.values():
        assert [kind for kind in types(events) if kind in RECEIPTS] == list(RECEIPTS)
        [accepted] = [payload for kind, payload in events if kind == "MessageAcceptedByProvider"]
        read = [payload for kind, payload in events if kind == "MessageRead"]
        assert [payload["provider_message_id"] for payload in read] == [accepted["provider_message_id"]]
    assert messenger.counters.webhooks_posted == 6
    assert normaliser.stats.foreign_receipts == 0


def _to_user(key: str, psid: str) -> tuple[str, dict[str, Any]]:
    contact, command = request(key, key)
    command["contact"]["addresses"] = {"messenger": psid, "whatsapp": "+4917099700100"}
    return contact, command
