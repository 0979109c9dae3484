"""Parsing WhatsApp webhooks: every entry, change, status and message becomes a typed item, nothing is dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connectors import (
    AccountErrorItem,
    InboundItem,
    MalformedWebhook,
    Pricing,
    ProviderError,
    ReceiptItem,
    ReceiptStatus,
    TemplateUpdateItem,
    TemplateUpdateKind,
    UnhandledItem,
)
from connectors.whatsapp import WhatsAppDriver
from tests.contract.whatsapp_support import driver_config, raw

DRIVER = WhatsAppDriver(driver_config())


def parse(name: str) -> list[object]:
    return list(DRIVER.parse_webhook(raw(name)))


def only(name: str) -> object:
    [item] = parse(name)
    return item


def test_sent_receipt_with_pricing_conversation_and_our_message_id() -> None:
    item = only("status_sent")
    assert isinstance(item, ReceiptItem)
    assert (item.channel, item.account_id) == ("whatsapp", "1122334455667")
    assert item.business_account_id == "5467539754836534"
    assert (item.provider_message_id, item.status, item.message_id) == ("wamid.xyzxyz", ReceiptStatus.SENT, "msg-0001")
    assert item.occurred_at == datetime(2023, 10, 25, 20, 49, 5, tzinfo=UTC)
    assert item.recipient_id == "972987654321"
    assert item.pricing == Pricing(model="CBP", category="service", type=None, billable=True)
    assert item.conversation is not None
    assert item.conversation.origin == "service"
    assert item.conversation.expires_at == datetime.fromtimestamp(1698339900, tz=UTC)
    assert item.dedupe_key == ("wamid.xyzxyz", "sent")


def test_per_message_pricing_and_missing_conversation() -> None:
    item = only("status_delivered")
    assert isinstance(item, ReceiptItem)
    assert item.pricing == Pricing(model="PMP", category="utility", type="regular")
    assert item.conversation is None


def test_failed_receipt_carries_its_errors() -> None:
    item = only("status_failed")
    assert isinstance(item, ReceiptItem)
    assert item.status is ReceiptStatus.FAILED
    assert item.errors == (ProviderError("130472", "User's number is part of an experiment",
                                         "Failed to send message because this user's phone number is part of an "
                                         "experiment"),)
    assert DRIVER.classify(item.errors[0]).value == "permanent_failure"


def test_played_receipt() -> None:
    item = only("status_played")
    assert isinstance(item, ReceiptItem)
    assert (item.status, item.message_id) == (ReceiptStatus.PLAYED, "msg-0003")


def test_inbound_text() -> None:
    item = only("inbound_text")
    assert isinstance(item, InboundItem)
    assert (item.account_id, item.sender, item.kind, item.text) == (
        "106540352242922", "16505551234", "text", "Does it come in another color?")
    assert item.profile_name == "Sheena Nelson"
    assert item.occurred_at == datetime.fromtimestamp(1749416383, tz=UTC)
    assert item.dedupe_key.startswith("wamid.")
    assert "16505551234" not in repr(item)
    assert "Sheena" not in repr(item)


def test_interactive_replies_carry_the_id_as_payload() -> None:
    button = only("inbound_button_reply")
    assert isinstance(button, InboundItem)
    assert (button.kind, button.payload, button.title, button.reply_to) == (
        "interactive", "callback_data", "title", "wamid.xyzxyz")
    assert button.user_id == "US.13491208655302741918"
    listed = only("inbound_list_reply")
    assert isinstance(listed, InboundItem)
    assert (listed.payload, listed.title, listed.text, listed.reply_to) == ("s1", "Oslo", "Open 9-17", "wamid.list")
    template = only("inbound_template_button")
    assert isinstance(template, InboundItem)
    assert (template.kind, template.payload, template.text) == ("button", "CONFIRM_123", "Confirm")


def test_inbound_media() -> None:
    item = only("inbound_image")
    assert isinstance(item, InboundItem)
    assert item.media is not None
    assert (item.media.kind, item.media.media_id, item.media.mime_type, item.media.caption) == (
        "image", "1234567890", "image/jpeg", "the receipt")
    assert item.text == "the receipt"


def test_inbound_with_value_level_errors() -> None:
    message, errors = parse("inbound_with_error")
    assert isinstance(message, InboundItem)
    assert isinstance(errors, AccountErrorItem)
    assert errors.errors[0].code == "131000"
    assert errors.errors[0].details == "Unsupported webhook payload"


def test_template_updates() -> None:
    status = only("template_status")
    assert isinstance(status, TemplateUpdateItem)
    assert (status.kind, status.template_id, status.template_name, status.language, status.status, status.reason) == (
        TemplateUpdateKind.STATUS, "12345678", "my_message_template", "pt-BR", "APPROVED", None)
    assert status.occurred_at == datetime.fromtimestamp(1698268000, tz=UTC)
    category = only("template_category")
    assert isinstance(category, TemplateUpdateItem)
    assert (category.kind, category.new_category, category.language) == (TemplateUpdateKind.CATEGORY, "MARKETING", "he")
    quality = only("template_quality")
    assert isinstance(quality, TemplateUpdateItem)
    assert (quality.previous_quality, quality.new_quality) == ("GREEN", "YELLOW")
    assert status.dedupe_key != category.dedupe_key


def test_template_edits_carry_the_edited_text() -> None:
    edit = only("template_components")
    assert isinstance(edit, TemplateUpdateItem)
    assert (edit.kind, edit.language, edit.body, edit.header, edit.footer) == (
        TemplateUpdateKind.COMPONENTS, "en_US", "Hello {{1}}, welcome aboard", "Welcome", "Reply STOP to opt out")


def test_batch_yields_every_entry_change_status_and_message_in_order() -> None:
    items = parse("batch")
    summary = [(type(i).__name__, getattr(i, "provider_message_id", None) or getattr(i, "template_id", None)
                or getattr(i, "source", None)) for i in items]
    assert summary == [("ReceiptItem", "wamid.b1"), ("ReceiptItem", "wamid.b2"), ("InboundItem", "wamid.in1"),
                       ("InboundItem", "wamid.in2"), ("TemplateUpdateItem", "42"), ("ReceiptItem", "wamid.c1"),
                       ("UnhandledItem", "account_update")]
    assert [i.message_id for i in items if isinstance(i, ReceiptItem)] == ["msg-b1", "msg-b2", "msg-c1"]
    assert [i.account_id for i in items if isinstance(i, ReceiptItem)] == [
        "1122334455667", "1122334455667", "100000000000001"]
    assert [i.profile_name for i in items if isinstance(i, InboundItem)] == ["A", "B"]


def test_a_broken_item_becomes_unhandled_and_the_rest_still_parses() -> None:
    body = json.loads(raw("batch"))
    statuses = body["entry"][0]["changes"][0]["value"]["statuses"]
    del statuses[0]["id"]
    statuses[1]["timestamp"] = "yesterday"
    statuses.append({"id": "wamid.new", "status": "deleted", "timestamp": "1"})
    items = DRIVER.parse_webhook(json.dumps(body).encode())
    unhandled = [i for i in items if isinstance(i, UnhandledItem)]
    assert [u.reason for u in unhandled] == ["no id", "bad timestamp 'yesterday'", "unknown status 'deleted'",
                                             "field not normalised"]
    assert unhandled[0].raw["status"] == "delivered"
    assert sum(isinstance(i, InboundItem) for i in items) == 2


def test_template_update_without_id_is_unhandled() -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "template_category_update", "value": {"new_category": "UTILITY"}}]}]}
    [item] = DRIVER.parse_webhook(json.dumps(body).encode())
    assert isinstance(item, UnhandledItem)
    assert item.source == "template_category_update"


def test_empty_entry_list_is_no_items() -> None:
    assert DRIVER.parse_webhook(b'{"object":"whatsapp_business_account","entry":[]}') == []


@pytest.mark.parametrize("body", [
    b"",
    b"\xff\xfe",
    b'{"object":"page","entry":[]}',
    b'{"object":"whatsapp_business_account"}',
    b'{"object":"whatsapp_business_account","entry":{}}',
    b'{"object":"whatsapp_business_account","entry":[1]}',
    b'{"object":"whatsapp_business_account","entry":[{"changes":{}}]}',
    b'{"object":"whatsapp_business_account","entry":[{"changes":[7]}]}',
])
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        DRIVER.parse_webhook(body)
    with pytest.raises(MalformedWebhook):  # the receiver's cheaper check refuses the very same bodies
        DRIVER.check_webhook(body)


@pytest.mark.parametrize("body", [
    b'{"object":"whatsapp_business_account","entry":[]}',
    b'{"object":"whatsapp_business_account","entry":[{"id":"1"}]}',
    b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":"x"}]}]}',
    b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":[{}]}}]}]}',
])
def test_the_receivers_check_passes_what_parses(body: bytes) -> None:
    items = DRIVER.parse_webhook(body)  # items may be unhandled ones: the body is still a notification
    DRIVER.check_webhook(body)
    assert all(item is not None for item in items)
