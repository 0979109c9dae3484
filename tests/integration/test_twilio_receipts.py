"""Twilio status callbacks through the real receiver, Kafka and the normaliser: the callback URL names the message."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from aiohttp import web

from connectors.normaliser import Normaliser, NormaliserConfig
from connectors.receiver import KafkaWebhookSink, ReceiverConfig, build_receiver_app
from connectors.twilio_sms import ENV_ACCOUNT_SID, ENV_AUTH_TOKEN, TwilioSmsDriver
from streams.pipeline import send_reference
from streams.pipeline._runtime import Topics
from streams.pipeline.app import PipelineSettings
from switchboard.topics import ensure_topics
from tests.contract.sms_support import ACCOUNT_SID, AUTH_TOKEN, expected_signature
from tests.integration.pipeline_support import collect_json_values, write_pipeline

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


@asynccontextmanager
async def _receiver(sink: KafkaWebhookSink) -> AsyncIterator[str]:
    """The receiver with the Twilio driver (secrets from the environment) on an ephemeral port: its SMS URL."""
    sms = TwilioSmsDriver.from_settings({"webhook_url": PUBLIC_URL})
    runner = web.AppRunner(build_receiver_app(ReceiverConfig({"sms": sms}), sink), shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/webhooks/sms"
    finally:
        await runner.cleanup()
        await sms.aclose()
