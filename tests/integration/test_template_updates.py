"""Template reviews and edits end to end: signed webhook → receiver → normaliser → template writer."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from aggregates import Channel, Template
from connectors import SIGNATURE_HEADER, hub_signature
from connectors._whatsapp_bodies import notification, template_status_webhook_body
from connectors.normaliser import Normaliser, NormaliserConfig
from connectors.receiver import KafkaWebhookSink
from connectors.whatsapp import ENV_ACCESS_TOKEN, ENV_APP_SECRET
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from streams.pipeline._templates import TemplateTopics
from streams.pipeline.app import PipelineSettings
from switchboard.kafka_io import collect, collect_json, produce_json
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess
from tests.integration.pipeline_support import TENANT, write_pipeline
from tests.integration.test_receipts_end_to_end import receiver

APP_SECRET, WABA = "templates-app-secret", "waba-templates"
Events = list[tuple[str, dict[str, Any]]]


@dataclass
class Stack:
    """The receiver, a pipeline worker and the normaliser, on topics of their own."""

    bootstrap: str
    prefix: str
    receiver_url: str
    worker: WorkerProcess[PipelineSettings]
    task: asyncio.Task[None]

    def alive(self) -> None:
        """Fails with the worker's log or the normaliser's error as soon as either has stopped."""
        assert self.worker.is_running(), self.worker.log_tail()
        if self.task.done():
            self.task.result()
            pytest.fail("the normaliser stopped")


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    prefix, directory = f"it-templates-{uuid.uuid4().hex[:8]}-", tmp_path_factory.mktemp("templates")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_ACCESS_TOKEN, "templates-access-token")
        env.setenv(ENV_APP_SECRET, APP_SECRET)
        sink = KafkaWebhookSink(kafka_bootstrap, prefix=prefix, partitions=3)
        async with sink, receiver(sink) as url:
            config = write_pipeline(directory, driver="whatsapp", settings='base_url = "http://127.0.0.1:9"')
            settings = PipelineSettings(bootstrap=kafka_bootstrap, data_dir=str(directory / "state"),
                                        config_path=str(config), app_id=f"{prefix}pipeline", topic_prefix=prefix)
            await ensure_topics(kafka_bootstrap, settings.topic_specs())
            worker = WorkerProcess(settings, directory / "pipeline.log")
            worker.start()
            normaliser = Normaliser(NormaliserConfig(kafka_bootstrap, prefix, f"{prefix}normaliser", config))
            task = asyncio.create_task(normaliser.run())
            try:
                yield Stack(kafka_bootstrap, prefix, url, worker, task)
            finally:
                normaliser.stop()
                await asyncio.wait_for(task, 30)
                worker.kill()


def aggregate_id(name: str) -> str:
    return str(Template.create_id(TENANT, Channel.WHATSAPP, name))


def review(name: str, event: str, at: int, reason: str | None = None) -> dict[str, Any]:
    return template_status_webhook_body(WABA, template_id=4711, name=name, language="en", event=event, time=at,
                                        reason=reason)


def recategorisation(name: str, new: str, previous: str, at: int) -> dict[str, Any]:
    value = {"message_template_id": 4711, "message_template_name": name, "message_template_language": "en",
             "previous_category": previous, "new_category": new}
    return notification(WABA, "template_category_update", value, time=at)


def rating(name: str, new: str, previous: str, at: int) -> dict[str, Any]:
    value = {"message_template_id": 4711, "message_template_name": name, "message_template_language": "en",
             "previous_quality_score": previous, "new_quality_score": new}
    return notification(WABA, "message_template_quality_update", value, time=at)


def edit(name: str, body: str, at: int) -> dict[str, Any]:
    value = {"message_template_id": 4711, "message_template_name": name, "message_template_language": "en",
             "message_template_element": body, "message_template_footer": "Reply STOP to opt out"}
    return notification(WABA, "message_template_components_update", value, time=at)


async def post(stack: Stack, body: dict[str, Any]) -> None:
    """Posts a webhook signed with the app secret, as Meta does; the receiver answers once it is on the raw topic."""
    raw = json.dumps(body).encode()
    headers = {SIGNATURE_HEADER: hub_signature(raw, APP_SECRET)}
    async with aiohttp.ClientSession() as http:
        answer = await http.post(stack.receiver_url, data=raw, headers=headers)
        assert answer.status == 200, await answer.text()


async def publish(stack: Stack, name: str, body: str) -> None:
    """The template admin's command (no admin API yet): the template's English content, version 1."""
    command = {"kind": "template_version", "v": 1, "command_id": f"admin-{name}", "aggregate_id": aggregate_id(name),
               "tenant": TENANT, "channel": "whatsapp", "name": name, "category": "utility", "locale": "en",
               "body": body}
    await produce_json(stack.bootstrap, TemplateTopics(stack.prefix).commands, [(aggregate_id(name), command)])


def read_event(raw: bytes) -> tuple[str, dict[str, Any]]:
    decoded = decode(raw)
    assert isinstance(decoded, DecodedEvent)
    return decoded.event_type, decoded.payload


async def template_events(stack: Stack, name: str, done: Callable[[Events], bool]) -> Events:
    """One template's events, duplicates by event id removed, once `done` holds for them."""
    def of_template(values: Events) -> Events:
        unique = {v["envelope"]["event_id"]: (t, v) for t, v in values if v["envelope"]["aggregate_id"] ==
                  aggregate_id(name)}
        return sorted(unique.values(), key=lambda e: int(e[1]["envelope"]["aggregate_version"]))

    values = await collect(stack.bootstrap, TemplateTopics(stack.prefix).events, lambda v: done(of_template(v)),
                           read_event, 90.0)
    stack.alive()
    return of_template(values)


async def commands_seen(stack: Stack, name: str, count: int) -> None:
    """Waits until the normaliser has written `count` template commands for this template."""
    def mine(values: list[dict[str, Any]]) -> int:
        return sum(1 for v in values if v.get("kind") == "template_update" and v.get("name") == name)

    await collect_json(stack.bootstrap, TemplateTopics(stack.prefix).commands, lambda v: mine(v) >= count, 90.0)
    stack.alive()


def types(events: Events) -> list[str]:
    return [event_type for event_type, _ in events]


async def test_reviews_a_recategorisation_and_a_rating_reach_the_template_and_repeats_add_nothing(stack: Stack) -> None:
    name, now = "order_shipped", int(time.time())
    await publish(stack, name, "Order {{1}} has shipped")
    await template_events(stack, name, lambda got: len(got) >= 2)

    await post(stack, review(name, "APPROVED", now))
    events = await template_events(stack, name, lambda got: "TemplateApprovalStatusChanged" in types(got))
    [approved] = [value for kind, value in events if kind == "TemplateApprovalStatusChanged"]
    assert (approved["locale"], approved["version"], approved["status"], approved["reason"]) == ("en", 1, "APPROVED",
                                                                                                 None)
    await post(stack, review(name, "APPROVED", now))  # Meta delivers a webhook again
    await commands_seen(stack, name, 2)

    await post(stack, recategorisation(name, "MARKETING", "UTILITY", now + 1))
    await commands_seen(stack, name, 3)
    await post(stack, recategorisation(name, "MARKETING", "UTILITY", now + 1))
    await commands_seen(stack, name, 4)
    await post(stack, rating(name, "RED", "YELLOW", now + 2))
    await commands_seen(stack, name, 5)
    await post(stack, review(name, "PAUSED", now + 3, reason="LOW_QUALITY"))  # a marker: applied after the repeats

    events = await template_events(stack, name, lambda got: len(got) >= 6)
    assert types(events) == ["TemplateRegistered", "TemplateVersionPublished", "TemplateApprovalStatusChanged",
                             "TemplateCategoryChanged", "TemplateQualityChanged", "TemplateApprovalStatusChanged"]
    changed = events[3][1]
    assert (changed["previous_category"], changed["new_category"], changed["locale"]) == ("utility", "marketing", "en")
    rated = events[4][1]
    assert (rated["previous_quality"], rated["new_quality"], rated["locale"]) == ("YELLOW", "RED", "en")
    assert (events[5][1]["status"], events[5][1]["reason"]) == ("PAUSED", "LOW_QUALITY")
    assert all(value["envelope"]["tenant_id"] == TENANT for _, value in events)


async def test_an_edit_made_at_the_provider_becomes_the_version_its_review_approves(stack: Stack) -> None:
    name, now = "payment_failed", int(time.time())
    await publish(stack, name, "Your payment for order {{1}} failed")
    await post(stack, review(name, "APPROVED", now))
    await template_events(stack, name, lambda got: len(got) >= 3)

    await post(stack, edit(name, "Payment for order {{1}} did not go through", now + 1))
    await post(stack, edit(name, "Payment for order {{1}} did not go through", now + 1))  # delivered again
    await commands_seen(stack, name, 3)
    await post(stack, review(name, "APPROVED", now + 2))

    events = await template_events(stack, name, lambda got: len(got) >= 5)
    assert types(events) == ["TemplateRegistered", "TemplateVersionPublished", "TemplateApprovalStatusChanged",
                             "TemplateVersionPublished", "TemplateApprovalStatusChanged"]
    edited = events[3][1]
    assert (edited["version"], edited["body"], edited["footer"]) == (
        2, "Payment for order {{1}} did not go through", "Reply STOP to opt out")
    assert (events[4][1]["version"], events[4][1]["status"]) == (2, "APPROVED")


async def test_a_review_of_a_template_never_published_is_a_dead_letter(stack: Stack) -> None:
    name = "never_published"
    await post(stack, review(name, "APPROVED", int(time.time())))

    def parked(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [v for v in values if v.get("stage") == "templates" and v.get("aggregate_id") == aggregate_id(name)]

    letters = parked(await collect_json(stack.bootstrap, Topics(stack.prefix).deadletters,
                                        lambda v: bool(parked(v)), 90.0))
    stack.alive()
    assert "was never registered" in letters[0]["reason"]
    assert (letters[0]["template_id"], letters[0]["update"]) == ("4711", "status")
