"""Twilio status callbacks through the real receiver, Kafka and the normaliser: the callback URL names the message."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from connectors.normaliser import Normaliser, NormaliserConfig
from connectors.receiver import KafkaWebhookSink
from connectors.twilio_simulator import TwilioSimulator, TwilioSimulatorConfig
from connectors.twilio_sms import ENV_ACCOUNT_SID, ENV_AUTH_TOKEN, TwilioSmsDriver
from streams.pipeline import send_reference
from streams.pipeline._runtime import Topics
from streams.pipeline.app import PipelineSettings
from switchboard.topics import ensure_topics
from tests.contract.sms_support import ACCOUNT_SID, AUTH_TOKEN, expected_signature
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import (
    collect_json_values,
    message_events,
    request,
    routed_channels,
    send_commands,
    types,
    write_pipeline,
)
from tests.integration.test_receipts_end_to_end import receiver

PUBLIC_URL = "https://hooks.example.com/webhooks/sms?tenant=acme"  # as Twilio reaches us, through the edge
INPROCESS_SMS = 'provider = "sms-gateway"\ndriver = "inprocess"'
TWILIO_SMS = f'provider = "sms-gateway"\ndriver = "sms"\nsettings = {{ webhook_url = "{PUBLIC_URL}" }}'


async def test_a_status_callback_becomes_a_receipt_command_for_the_message_its_url_names(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ACCOUNT_SID, ACCOUNT_SID)  # read by the receiver's and the normaliser's drivers
    monkeypatch.setenv(ENV_AUTH_TOKEN, AUTH_TOKEN)
    config = write_pipeline(tmp_path)
    config.write_text(config.read_text().replace(INPROCESS_SMS, TWILIO_SMS))
    settings = PipelineSettings(bootstrap=kafka_bootstrap, data_dir=str(tmp_path / "state"), config_path=str(config),
                                app_id=f"{unique_prefix}pipeline", topic_prefix=unique_prefix)
    await ensure_topics(kafka_bootstrap, settings.topic_specs())
    contact, message = str(uuid.uuid4()), str(uuid.uuid4())
    query = f"tenant=acme&sb_ref={quote(send_reference(contact, message), safe='')}"
    body = urlencode({"MessageSid": "SM0a1b", "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID,
                      "To": "+15551234567", "ApiVersion": "2010-04-01"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": expected_signature(f"{PUBLIC_URL.split('?')[0]}?{query}", body)}

    async with KafkaWebhookSink(kafka_bootstrap, prefix=unique_prefix, partitions=3) as sink, \
            _receiver(sink) as url, aiohttp.ClientSession() as session:
        forged = await session.post(f"{url}?tenant=acme&sb_ref=someone.else", data=body, headers=headers)
        accepted = await session.post(f"{url}?{query}", data=body, headers=headers)
    normaliser = Normaliser(NormaliserConfig(kafka_bootstrap, unique_prefix, f"{unique_prefix}normaliser", config))
    task = asyncio.create_task(normaliser.run())
    try:
        commands = await collect_json_values(kafka_bootstrap, Topics(unique_prefix).commands,
                                             lambda got: any(command.get("kind") == "receipt" for command in got))
    finally:
        normaliser.stop()
        await asyncio.wait_for(task, 30)

    assert (forged.status, accepted.status) == (403, 200)  # Twilio signs the URL, our reference included
    [receipt] = [command for command in commands if command.get("kind") == "receipt"]
    assert (receipt["contact_id"], receipt["message_id"], receipt["status"], receipt["provider_message_id"]) == (
        contact, message, "delivered", "SM0a1b")
    assert normaliser.stats.foreign_receipts == 0


async def test_a_message_fallen_back_to_sms_is_delivered_by_twilio_s_status_callbacks(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        start_pipeline: StartPipeline) -> None:
    monkeypatch.setenv(ENV_ACCOUNT_SID, ACCOUNT_SID)  # the pipeline worker's, receiver's and normaliser's drivers
    monkeypatch.setenv(ENV_AUTH_TOKEN, AUTH_TOKEN)
    phone = "+4917099700042"  # not on WhatsApp here: its send fails for good and the message falls back to SMS
    simulator = TwilioSimulatorConfig(ACCOUNT_SID, AUTH_TOKEN, interval=0.05)
    async with TwilioSimulator(simulator) as twilio, \
            KafkaWebhookSink(kafka_bootstrap, prefix=unique_prefix, partitions=3) as sink, \
            _receiver(sink, public_url=None) as url:
        config = write_pipeline(tmp_path, settings=f'fail_addresses = "{phone}"')
        twilio_sms = f'provider = "sms-gateway"\ndriver = "sms"\n' \
                     f'settings = {{ base_url = "{twilio.url}", webhook_url = "{url}" }}'
        config.write_text(config.read_text().replace(INPROCESS_SMS, twilio_sms))
        await start_pipeline(config)
        normaliser = Normaliser(NormaliserConfig(kafka_bootstrap, unique_prefix, f"{unique_prefix}normaliser",
                                                 config))
        task = asyncio.create_task(normaliser.run())
        try:
            await send_commands(kafka_bootstrap, unique_prefix, [request("tw-1", "tw-1", phone=phone)])
            [events] = (await message_events(kafka_bootstrap, unique_prefix, lambda got: any(
                "MessageDelivered" in types(events) for events in got.values()))).values()
        finally:
            normaliser.stop()
            await asyncio.wait_for(task, 30)
    assert routed_channels(events) == ["whatsapp", "sms"]
    assert types(events).index("MessageFallbackTriggered") < types(events).index("MessageSent") < \
        types(events).index("MessageDelivered")
    accepted = [payload for kind, payload in events if kind == "MessageAcceptedByProvider"]
    assert [a["provider_message_id"] for a in accepted] == list(twilio.messages)  # the SMS the simulator took
    # SMS has no WhatsApp template: the template went out as its declared text, its parameter filled in.
    assert [form["Body"] for form in twilio.messages.values()] == ["Your order tw-1 has shipped."]
    assert twilio.counters.callbacks_posted == 2


@asynccontextmanager
async def _receiver(sink: KafkaWebhookSink, public_url: str | None = PUBLIC_URL) -> AsyncIterator[str]:
    """The receiver with the Twilio driver (secrets from the environment) on an ephemeral port: its SMS URL.
    Twilio's signatures are checked against `public_url`, or against the receiver's own URL when None."""
    sms = TwilioSmsDriver.from_settings({"webhook_url": public_url or "http://127.0.0.1"})
    async with receiver(sink, sms) as url:
        sms.config = replace(sms.config, webhook_url=public_url or url)  # its URL is known once it listens
        yield url
