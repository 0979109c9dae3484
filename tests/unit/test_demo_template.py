"""The demo's template fault: Meta's reviews of the campaign's template, posted by the simulator as it would."""

from __future__ import annotations

from aggregates import Channel, Template
from connectors import OutboundMessage, Outcome, TemplateUpdateItem
from connectors import Template as TemplateContent
from connectors.whatsapp_simulator import DEFAULT_PHONE_NUMBER_ID
from streams.pipeline._templates import TemplateRow, TemplateWriter, check_template_command
from switchboard._demo_template import CAMPAIGN_TEMPLATE, PAUSE_SECONDS, TemplatePause, publish_command
from tests.contract.whatsapp_support import RECIPIENT
from tests.unit.connectors.harness import running


def offer(message_id: str) -> OutboundMessage:
    return OutboundMessage(message_id, DEFAULT_PHONE_NUMBER_ID, RECIPIENT, TemplateContent(CAMPAIGN_TEMPLATE, "en"))


def test_the_published_version_is_one_the_template_writer_takes() -> None:
    key, command = publish_command("acme")
    assert key == str(Template.create_id("acme", Channel.WHATSAPP, CAMPAIGN_TEMPLATE))
    row = TemplateRow()
    effects = TemplateWriter().handle(row, check_template_command(command))
    assert effects.dead_letters == []
    assert row.template is not None
    assert row.template.versions["en"][0].parameters == ("first_name", "discount")


async def test_approved_then_paused_at_its_share_then_reinstated_after_its_seconds() -> None:
    async with running(pair_window=None) as h:
        pause = TemplatePause(h.simulator)
        pause.approve()
        assert pause.tick(now=10.0, final=59, expected=100) is None
        paused = pause.tick(now=11.0, final=60, expected=100)
        assert paused is not None
        assert "pauses `weekend_offer`" in paused
        refused = await h.driver.send(offer("while-paused"))
        assert (refused.outcome, refused.error.code if refused.error else None) == (Outcome.PERMANENT_FAILURE,
                                                                                    "132015")
        assert pause.tick(now=11.0 + PAUSE_SECONDS - 0.1, final=70, expected=100) is None
        assert "reinstates" in (pause.tick(now=11.0 + PAUSE_SECONDS, final=71, expected=100) or "")
        assert pause.tick(now=100.0, final=100, expected=100) is None  # once each
        assert (await h.driver.send(offer("reinstated"))).accepted
        await h.receiver.wait_for(lambda items: len(items) >= 3)
        assert [(i.status, i.reason) for i in h.receiver.items if isinstance(i, TemplateUpdateItem)] == [
            ("APPROVED", None), ("PAUSED", "LOW_QUALITY"), ("REINSTATED", None)]
