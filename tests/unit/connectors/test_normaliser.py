"""The webhook normaliser's pure part: items as commands, the address index fold, the tenant of an account."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from eventsourcing.domain import AggregateEvent

from aggregates import Channel, ConsentCategory, Contact, to_record
from connectors import (
    AccountErrorItem,
    InboundItem,
    NormalizedItem,
    ProviderError,
    ReceiptItem,
    ReceiptStatus,
    TemplateUpdateItem,
    TemplateUpdateKind,
    UnhandledItem,
    mask_phone,
)
from connectors._normaliser_map import ChannelDirectory, DriverCache, OutputKind, Source, Unparseable
from connectors._whatsapp_bodies import webhook_error
from connectors.normaliser import (
    AddressIndex,
    ItemMapper,
    auto_external_ref,
    inbound_command,
    normal_address,
    receipt_command,
)
from connectors.whatsapp import WhatsAppDriver
from connectors.whatsapp_simulator import inbound_webhook_body, status_object, status_webhook_body
from schemas import DecodedEvent, decode, encode
from streams.pipeline import check_command, send_reference
from switchboard._config_parse import load_bytes
from switchboard.cli import main
from switchboard.config import PipelineConfig
from tests.contract.messenger_support import messenger_channel

ACME_ACCOUNT, GLOBEX_ACCOUNT = "105954558954427", "200000000000002"
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SOURCE = Source("sb.webhooks.raw", 2, 41, "c0ffee")
CONTACT, MESSAGE = str(uuid.uuid4()), str(uuid.uuid4())
PIPELINE = f"""
[[tenants]]
id = "acme"
name = "Acme"
timezone = "UTC"

[[tenants]]
id = "globex"
name = "Globex"
timezone = "UTC"

[[channels]]
id = "wa-acme"
kind = "whatsapp"
tenant = "acme"
provider = "meta"
driver = "whatsapp"
settings = {{ base_url = "http://127.0.0.1:9" }}
[[channels.senders]]
id = "wa-main"
address = "{ACME_ACCOUNT}"

[[channels]]
id = "wa-globex"
kind = "whatsapp"
tenant = "globex"
provider = "meta"
[[channels.senders]]
id = "wa-g"
address = "{GLOBEX_ACCOUNT}"

[[channels]]
id = "sms"
kind = "sms"
tenant = "acme"
provider = "sms-gateway"
driver = "inprocess"
[[channels.senders]]
id = "sms-main"
address = "+4915000000000"
"""


@pytest.fixture
def config() -> PipelineConfig:
    return load_bytes(Path("pipeline.toml"), PIPELINE.encode())


@pytest.fixture
def mapper(config: PipelineConfig) -> ItemMapper:
    return ItemMapper(lambda: config, DriverCache(), AddressIndex())


def receipt(status: ReceiptStatus, *, message_id: str | None = None, errors: tuple[ProviderError, ...] = (),
            account: str = ACME_ACCOUNT, at: datetime = AT) -> ReceiptItem:
    reference = send_reference(CONTACT, MESSAGE) if message_id is None else message_id
    return ReceiptItem("whatsapp", account, "wamid.ABC", status, at, reference or None, "4917012345", errors)


def inbound(text: str | None = "hello", *, sender: str = "4917012345", account: str = ACME_ACCOUNT) -> InboundItem:
    return InboundItem("whatsapp", account, "wamid.IN1", sender, AT, "text", text=text)


def registered(tenant: str, ref: str, addresses: dict[Channel, str]) -> DecodedEvent:
    """A ContactRegistered event as the contact topic carries it: encoded and decoded with the real codec."""
    contact = Contact.register(tenant_id=tenant, external_ref=ref, addresses=addresses)
    contact.grant_consent(Channel.WHATSAPP, ConsentCategory.MARKETING, "api")  # folded past, not into the index
    return next(iter(wire(contact)))


def wire(contact: Contact) -> list[DecodedEvent]:
    events = []
    for event in contact.collect_events():
        assert isinstance(event, AggregateEvent)
        record = to_record(contact, event)
        decoded = decode(encode(record.event, record.event_type))
        assert isinstance(decoded, DecodedEvent)
        events.append(decoded)
    return events


# -- receipts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "expected"), [(ReceiptStatus.SENT, "sent"), (ReceiptStatus.DELIVERED, "delivered"),
                                                  (ReceiptStatus.READ, "read"), (ReceiptStatus.PLAYED, "read")])
def test_a_receipt_of_ours_is_a_receipt_command_for_the_contact(status: ReceiptStatus, expected: str) -> None:
    command = receipt_command(receipt(status), WhatsAppDriver().classify)
    assert command is not None
    assert check_command(command) is command
    assert command == {"kind": "receipt", "v": 1, "command_id": command["command_id"], "contact_id": CONTACT,
                       "message_id": MESSAGE, "status": expected, "provider_status": status.value,
                       "provider_message_id": "wamid.ABC", "at": "2026-03-01T09:30:00+00:00"}


def test_a_failed_receipt_carries_the_first_code_its_detail_and_the_drivers_outcome() -> None:
    errors = (ProviderError("131026", "Message undeliverable", "not a WhatsApp user"), ProviderError("1", "other"))
    command = receipt_command(receipt(ReceiptStatus.FAILED, errors=errors), WhatsAppDriver().classify)
    assert command is not None
    assert (command["status"], command["code"], command["detail"], command["outcome"]) == (
        "failed", "131026", "not a WhatsApp user", "permanent_failure")
    throttled = receipt_command(receipt(ReceiptStatus.FAILED, errors=(ProviderError("131049", "limit"),)),
                                WhatsAppDriver().classify)
    assert throttled is not None
    assert (throttled["detail"], throttled["outcome"]) == ("limit", "retry_recipient_later")


def test_a_failed_receipt_that_says_the_user_stopped_marketing_withdraws_that_consent(mapper: ItemMapper) -> None:
    driver = WhatsAppDriver()
    stopped = receipt(ReceiptStatus.FAILED, errors=(ProviderError("131050", "User stopped marketing messages"),))
    command = receipt_command(stopped, driver.classify, driver.opted_out)
    assert command is not None
    assert (command["outcome"], command["consent_revoked"]) == ("permanent_failure", "marketing")
    other = receipt_command(receipt(ReceiptStatus.FAILED, errors=(ProviderError("131026", "x"),)), driver.classify,
                            driver.opted_out)
    assert other is not None
    assert "consent_revoked" not in other
    [output] = mapper.map(SOURCE, "whatsapp", [stopped]).outputs  # the normaliser asks the channel's driver
    assert output.value["consent_revoked"] == "marketing"


def test_a_failed_receipt_without_errors_is_a_permanent_failure() -> None:
    command = receipt_command(receipt(ReceiptStatus.FAILED), WhatsAppDriver().classify)
    assert command is not None
    assert (command["code"], command["detail"], command["outcome"]) == (
        None, None, "permanent_failure")


def test_command_ids_are_stable_and_differ_per_status_and_time() -> None:
    classify = WhatsAppDriver().classify

    def command_id(status: ReceiptStatus, at: datetime = AT) -> str:
        command = receipt_command(receipt(status, at=at), classify)
        assert command is not None
        return str(command["command_id"])

    assert command_id(ReceiptStatus.READ) == command_id(ReceiptStatus.READ)  # a redelivered webhook: the same
    ids = {command_id(s) for s in ReceiptStatus} | {command_id(ReceiptStatus.READ, AT.replace(minute=31))}
    assert len(ids) == len(ReceiptStatus) + 1  # `played` is a read, but its own command


@pytest.mark.parametrize("reference", ["", "order-7001", f"{CONTACT}:{MESSAGE}", f"{CONTACT}.short"])
def test_a_receipt_without_our_reference_is_no_command(reference: str) -> None:
    assert receipt_command(receipt(ReceiptStatus.SENT, message_id=reference), WhatsAppDriver().classify) is None


def test_foreign_receipts_are_counted_and_logged_without_the_provider_id(
        mapper: ItemMapper, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="connectors.normaliser"):
        mapped = mapper.map(SOURCE, "whatsapp", [receipt(ReceiptStatus.SENT, message_id="")])
    assert (mapped.outputs, mapped.foreign_receipts) == ([], 1)
    assert "skipped" in caplog.text
    assert "wamid" not in caplog.text


TWILIO_CHANNEL = """
[[channels]]
id = "sms-twilio"
kind = "sms"
tenant = "acme"
provider = "twilio"
driver = "sms"
settings = { webhook_url = "https://hooks.example.com/webhooks/sms?tenant=acme" }
[[channels.senders]]
id = "sms-t"
address = "+4915000000001"
"""


def test_a_twilio_status_callback_belongs_to_the_message_its_callback_url_names() -> None:
    config = load_bytes(Path("pipeline.toml"), (PIPELINE + TWILIO_CHANNEL).encode())
    mapper = ItemMapper(lambda: config, DriverCache(), AddressIndex())
    body = urlencode({"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": "AC1",
                      "To": "+4917012345"}).encode()
    query = f"tenant=acme&sb_ref={quote(send_reference(CONTACT, MESSAGE), safe='')}"
    mapped = mapper.map(SOURCE, "sms", mapper.parse("sms", {"signature-verified": "true", "query": query}, body))
    [command] = [output.value for output in mapped.outputs]
    assert (command["kind"], command["contact_id"], command["message_id"], command["status"],
            command["provider_message_id"]) == ("receipt", CONTACT, MESSAGE, "delivered", "SM1")
    # Without the reference (a callback URL of an older send, or none) it is nobody's receipt, as before.
    bare = mapper.map(SOURCE, "sms", mapper.parse("sms", {"signature-verified": "true", "query": "tenant=acme"}, body))
    assert (bare.outputs, bare.foreign_receipts) == ([], 1)


MESSENGER_CHANNEL = messenger_channel()
MESSENGER_FIXTURES = Path(__file__).parents[2] / "contract" / "data" / "messenger"


def test_messenger_receipts_naming_only_the_user_go_to_the_contact_with_that_address() -> None:
    config = load_bytes(Path("pipeline.toml"), (PIPELINE + MESSENGER_CHANNEL).encode())
    user = registered("acme", "crm-7", {Channel.MESSENGER: "6789012345678901"})
    mapper = ItemMapper(lambda: config, DriverCache(), AddressIndex.fold([user]))
    body = (MESSENGER_FIXTURES / "delivery.json").read_bytes()
    mapped = mapper.map(SOURCE, "messenger", mapper.parse("messenger", {"signature-verified": "true"}, body))
    commands = [check_command(output.value) for output in mapped.outputs]
    assert [(c["kind"], c["contact_id"], c["channel"], c["status"], c["provider_message_id"], c["watermark"])
            for c in commands] == [
        ("recipient_receipt", str(Contact.create_id("acme", "crm-7")), "messenger", "delivered", mid, watermark)
        for mid, watermark in [("m_outbound000000000000000042", False), ("m_outbound000000000000000043", False),
                               ("watermark:1732550640000", True)]]
    assert len({c["command_id"] for c in commands}) == 3
    # A user who is no contact of the page's tenant: nobody's receipt, counted as before.
    stranger = ItemMapper(lambda: config, DriverCache(), AddressIndex())
    unknown = stranger.map(SOURCE, "messenger", stranger.parse("messenger", {"signature-verified": "true"}, body))
    assert (unknown.outputs, unknown.foreign_receipts) == ([], 3)


def test_the_address_index_is_brought_up_to_date_only_for_items_that_look_addresses_up() -> None:
    config = load_bytes(Path("pipeline.toml"), (PIPELINE + MESSENGER_CHANNEL).encode())
    mapper = ItemMapper(lambda: config, DriverCache(), AddressIndex())
    delivery = mapper.parse("messenger", {"signature-verified": "true"},
                            (MESSENGER_FIXTURES / "delivery.json").read_bytes())
    echo = mapper.parse("messenger", {"signature-verified": "true"},
                        (MESSENGER_FIXTURES / "message_echo.json").read_bytes())
    assert mapper.needs_addresses("messenger", delivery)  # names only the user
    assert not mapper.needs_addresses("messenger", echo)  # carries our reference
    assert mapper.needs_addresses("whatsapp", [inbound()])
    # WhatsApp's receipts always name our message: one without our reference is not ours, not looked up.
    assert not mapper.needs_addresses("whatsapp", [receipt(ReceiptStatus.SENT, message_id="")])


def test_a_twilio_receipt_is_stamped_when_the_receiver_took_it_so_normalising_again_gives_the_same_command() -> None:
    config = load_bytes(Path("pipeline.toml"), (PIPELINE + TWILIO_CHANNEL).encode())
    mapper = ItemMapper(lambda: config, DriverCache(), AddressIndex())
    body = urlencode({"MessageSid": "SM1", "MessageStatus": "sent", "AccountSid": "AC1", "To": "+4917012345"}).encode()
    headers = {"signature-verified": "true", "received_at": "1772357400250",
               "query": f"tenant=acme&sb_ref={quote(send_reference(CONTACT, MESSAGE), safe='')}"}
    first, again = (mapper.map(SOURCE, "sms", mapper.parse("sms", headers, body)).outputs[0].value for _ in range(2))
    assert first["at"] == "2026-03-01T09:30:00.250000+00:00"  # Twilio's callbacks carry no time of their own
    assert first == again


# -- inbound messages --------------------------------------------------------------------------------------------


def test_an_inbound_from_a_known_address_goes_to_that_contact(config: PipelineConfig) -> None:
    index = AddressIndex.fold([registered("acme", "crm-42", {Channel.WHATSAPP: "+49 170 12345"})])
    command = inbound_command(inbound("STOP"), config.channels[0], index)
    assert check_command(command) is command
    assert command == {"kind": "inbound", "v": 1, "command_id": command["command_id"], "tenant": "acme",
                       "contact_id": str(Contact.create_id("acme", "crm-42")), "channel": "whatsapp",
                       "provider_message_id": "wamid.IN1", "address": "+4917012345",
                       "at": "2026-03-01T09:30:00+00:00", "text": "STOP"}
    assert command["command_id"] == inbound_command(inbound("STOP"), config.channels[0], index)["command_id"]


def test_a_stop_from_a_shared_number_also_revokes_the_other_contacts_consents(config: PipelineConfig) -> None:
    household = [registered("acme", ref, {Channel.WHATSAPP: "+4917012345"}) for ref in ("crm-42", "crm-43")]
    elsewhere = registered("globex", "crm-44", {Channel.WHATSAPP: "+4917012345"})  # another tenant's: not touched
    mapper = ItemMapper(lambda: config, DriverCache(), AddressIndex.fold([*household, elsewhere]))
    first, second = (str(Contact.create_id("acme", ref)) for ref in ("crm-42", "crm-43"))
    outputs = [output.value for output in mapper.map(SOURCE, "whatsapp", [inbound(" Stop ")]).outputs]
    assert [(c["kind"], c["contact_id"]) for c in outputs] == [("inbound", first)] + [("consent", second)] * 3
    assert [(c["action"], c["channel"], c["category"], c["source"]) for c in outputs[1:]] == [
        ("revoke", "whatsapp", category.value, "inbound:stop") for category in ConsentCategory]
    assert all(check_command(command) is command for command in outputs)
    again = [output.value for output in mapper.map(SOURCE, "whatsapp", [inbound(" Stop ")]).outputs]
    assert again == outputs  # the same webhook normalised again: the same command ids
    assert [c["kind"] for c in (o.value for o in mapper.map(SOURCE, "whatsapp", [inbound("hi")]).outputs)] == [
        "inbound"]


def test_an_unknown_sender_becomes_a_contact_the_writer_registers(config: PipelineConfig) -> None:
    command = inbound_command(inbound(), config.channels[0], AddressIndex())
    ref = auto_external_ref("whatsapp", "4917012345")
    assert ref == "whatsapp:+4917012345"
    assert command["contact_id"] == str(Contact.create_id("acme", ref))
    assert command["contact"] == {"external_ref": ref, "addresses": {"whatsapp": "+4917012345"}}


def test_the_same_sender_at_another_tenant_is_another_contact(config: PipelineConfig) -> None:
    index = AddressIndex.fold([registered("acme", "crm-42", {Channel.WHATSAPP: "+4917012345"})])
    command = inbound_command(inbound(account=GLOBEX_ACCOUNT), config.channels[1], index)
    assert (command["tenant"], command["contact_id"]) == (
        "globex", str(Contact.create_id("globex", "whatsapp:+4917012345")))


def test_the_tenant_is_the_one_whose_sender_is_the_account(config: PipelineConfig) -> None:
    directory = ChannelDirectory(config)
    acme, globex = directory.by_account("whatsapp", ACME_ACCOUNT), directory.by_account("whatsapp", GLOBEX_ACCOUNT)
    assert (acme and acme.tenant, globex and globex.tenant) == ("acme", "globex")
    assert directory.by_account("whatsapp", "999") is None
    assert directory.by_account("inprocess", ACME_ACCOUNT) is None  # another driver's senders do not count
    assert [channel.id for channel in directory.for_driver("whatsapp")] == ["wa-acme", "wa-globex"]


def test_an_inbound_to_an_undeclared_account_is_a_dead_letter(mapper: ItemMapper) -> None:
    [letter] = mapper.map(SOURCE, "whatsapp", [inbound(account="999")]).outputs
    assert letter.kind is OutputKind.DEAD_LETTER
    assert letter.key == "c0ffee"
    assert letter.value == {"stage": "normaliser", "channel": "whatsapp", "item": 0, "content_sha256": "c0ffee",
                            "reason": "no [[channels]] sender of driver 'whatsapp' has address '999'",
                            "source": {"topic": "sb.webhooks.raw", "partition": 2, "offset": 41},
                            "details": {"account_id": "999"}}


def test_a_new_contact_is_logged_with_a_masked_number(mapper: ItemMapper, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="connectors.normaliser"):
        mapped = mapper.map(SOURCE, "whatsapp", [inbound()])
    assert mapped.new_contacts == 1
    assert mask_phone("+4917012345") in caplog.text
    assert "4917012345" not in caplog.text


# -- the address index -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "address", "normal"), [
    ("whatsapp", "4917012345", "+4917012345"), ("whatsapp", "+49 (170) 123-45", "+4917012345"),
    ("sms", "+4917012345", "+4917012345"), ("telegram", " 12345 ", "12345"), ("line", "U4af4980629", "U4af4980629"),
])
def test_addresses_have_one_spelling(channel: str, address: str, normal: str) -> None:
    assert normal_address(channel, address) == normal


def test_the_index_folds_registrations_per_tenant_and_channel() -> None:
    index = AddressIndex.fold([
        registered("acme", "crm-1", {Channel.WHATSAPP: "+4917011111", Channel.SMS: "+4917011111"}),
        registered("acme", "crm-2", {Channel.TELEGRAM: "777"}),
        registered("globex", "g-1", {Channel.WHATSAPP: "4917011111"}),
    ])
    crm1, crm2 = str(Contact.create_id("acme", "crm-1")), str(Contact.create_id("acme", "crm-2"))
    assert index.lookup("acme", "whatsapp", "4917011111") == crm1
    assert index.lookup("acme", "sms", "+49 170 11111") == crm1
    assert index.lookup("acme", "telegram", "777") == crm2
    assert index.lookup("globex", "whatsapp", "+4917011111") == str(Contact.create_id("globex", "g-1"))
    assert index.lookup("acme", "telegram", "+4917011111") is None
    assert len(index) == 4


def test_the_index_knows_every_contact_sharing_an_address_the_first_one_first() -> None:
    index = AddressIndex.fold([registered("acme", ref, {Channel.WHATSAPP: "+49 170 12345"})
                               for ref in ("crm-42", "crm-43", "crm-42")])  # the last: a redelivery
    assert index.sharing("acme", "whatsapp", "4917012345") == tuple(
        str(Contact.create_id("acme", ref)) for ref in ("crm-42", "crm-43"))
    assert index.lookup("acme", "whatsapp", "4917012345") == str(Contact.create_id("acme", "crm-42"))
    assert index.sharing("globex", "whatsapp", "4917012345") == ()


def test_other_contact_events_and_redeliveries_change_nothing() -> None:
    contact = Contact.register(tenant_id="acme", external_ref="crm-1", addresses={Channel.WHATSAPP: "+4917011111"})
    contact.grant_consent(Channel.WHATSAPP, ConsentCategory.MARKETING, "api")
    registration, consent = wire(contact)
    index = AddressIndex()
    assert [index.apply(registration), index.apply(consent), index.apply(registration)] == [True, False, False]


def test_the_crms_contact_wins_an_address_over_one_we_registered() -> None:
    ours = registered("acme", auto_external_ref("whatsapp", "4917011111"), {Channel.WHATSAPP: "+4917011111"})
    crm = registered("acme", "crm-1", {Channel.WHATSAPP: "+4917011111"})
    later = registered("acme", "crm-2", {Channel.WHATSAPP: "+4917011111"})
    expected = str(Contact.create_id("acme", "crm-1"))
    assert AddressIndex.fold([ours, crm, later]).lookup("acme", "whatsapp", "4917011111") == expected
    assert AddressIndex.fold([crm, ours, later]).lookup("acme", "whatsapp", "4917011111") == expected


# -- whole records -----------------------------------------------------------------------------------------------


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


VERIFIED = {"channel": "whatsapp", "signature-verified": "true"}


def test_a_simulator_webhook_maps_every_item_in_order(mapper: ItemMapper) -> None:
    ours = send_reference(CONTACT, MESSAGE)
    statuses = [status_object("wamid.A", "delivered", 1772357400, "4917012345", callback_data=ours),
                status_object("wamid.B", "failed", 1772357401, "4917012345", callback_data=ours,
                              errors=[webhook_error(131047, "window closed")]),
                status_object("wamid.C", "read", 1772357402, "4917012345")]
    items = mapper.parse("whatsapp", VERIFIED, raw(status_webhook_body("waba", ACME_ACCOUNT, "1555", statuses)))
    items += mapper.parse("whatsapp", VERIFIED, raw(inbound_webhook_body(
        "waba", ACME_ACCOUNT, "1555", sender="4917012345", wamid="wamid.IN", timestamp=1772357403, text="STOP")))
    mapped = mapper.map(SOURCE, "whatsapp", items)
    assert [(o.kind, o.key, o.value["kind"]) for o in mapped.outputs] == [
        (OutputKind.COMMAND, CONTACT, "receipt"), (OutputKind.COMMAND, CONTACT, "receipt"),
        (OutputKind.COMMAND, str(Contact.create_id("acme", "whatsapp:+4917012345")), "inbound")]
    assert mapped.outputs[1].value["outcome"] == "needs_template"
    assert mapped.foreign_receipts == 1


@pytest.mark.parametrize(("item", "reason"), [
    (AccountErrorItem("whatsapp", ACME_ACCOUNT, (ProviderError("131042", "payment"),)),
     "account errors reported by the provider: 131042 (stop_account)"),
    (UnhandledItem("whatsapp", "account_update", "field not normalised"),
     "unhandled account_update: field not normalised"),
])
def test_items_not_applied_yet_are_dead_letters(mapper: ItemMapper, item: NormalizedItem, reason: str) -> None:
    [letter] = mapper.map(SOURCE, "whatsapp", [inbound(), item]).outputs[1:]
    assert (letter.kind, letter.value["reason"], letter.value["item"]) == (OutputKind.DEAD_LETTER, reason, 1)


def test_account_errors_are_parked_with_what_each_code_means_for_sending(mapper: ItemMapper) -> None:
    errors = (ProviderError("131031", "Account has been locked"), ProviderError("131000", "Something went wrong",
                                                                                http_status=500))
    [letter] = mapper.map(SOURCE, "whatsapp", [AccountErrorItem("whatsapp", ACME_ACCOUNT, errors)]).outputs
    assert letter.value["reason"] == "account errors reported by the provider: 131031 (stop_account), " \
                                     "131000 (retry_later)"
    assert {k: letter.value["details"][k] for k in ("account_id", "codes", "messages", "outcomes")} == {
        "account_id": ACME_ACCOUNT, "codes": ["131031", "131000"],
        "messages": ["Account has been locked", "Something went wrong"], "outcomes": ["stop_account", "retry_later"]}


def test_template_dead_letters_say_which_template_and_update(mapper: ItemMapper) -> None:
    item = TemplateUpdateItem("whatsapp", TemplateUpdateKind.COMPONENTS, "987", "order_shipped", "en", "waba", AT)
    [letter] = mapper.map(SOURCE, "whatsapp", [item]).outputs
    assert {k: letter.value["details"][k] for k in ("update", "template_id", "template_name", "language")} \
        == {"update": "components", "template_id": "987", "template_name": "order_shipped", "language": "en"}


def test_an_item_that_fails_to_map_is_a_dead_letter_and_the_rest_go_on(config: PipelineConfig) -> None:
    class Broken(DriverCache):
        def driver(self, channel: Any) -> Any:
            raise RuntimeError("plugin exploded")

    mapper = ItemMapper(lambda: config, Broken(), AddressIndex())
    outputs = mapper.map(SOURCE, "whatsapp", [receipt(ReceiptStatus.SENT), inbound()]).outputs
    assert [(o.kind, o.value.get("reason", o.value.get("kind"))) for o in outputs] == [
        (OutputKind.DEAD_LETTER, "mapping failed: RuntimeError"), (OutputKind.COMMAND, "inbound")]


@pytest.mark.parametrize(("driver", "headers", "body", "reason"), [
    (None, VERIFIED, b"{}", "record has no channel header"),
    ("whatsapp", {"channel": "whatsapp"}, b"{}", "record is not marked signature-verified by the receiver"),
    ("whatsapp", VERIFIED, None, "record has no body"),
    ("telegram", {**VERIFIED, "channel": "telegram"}, b"{}", "no [[channels]] entry uses driver 'telegram'"),
    ("whatsapp", VERIFIED, b"not json", "unparseable whatsapp webhook: MalformedWebhook: body is not JSON"),
    ("whatsapp", VERIFIED, b'{"object": "page", "entry": []}', "unparseable whatsapp webhook: MalformedWebhook"),
])
def test_records_that_cannot_be_read_are_unparseable(mapper: ItemMapper, driver: str | None,
                                                     headers: dict[str, str], body: bytes | None, reason: str) -> None:
    with pytest.raises(Unparseable, match=reason.replace("[", r"\[").replace("]", r"\]")):
        mapper.parse(driver, headers, body)


async def test_drivers_follow_their_channels_declaration(config: PipelineConfig) -> None:
    drivers = DriverCache()
    first = drivers.driver(config.channels[0])
    assert drivers.driver(config.channels[0]) is first
    moved = replace(config.channels[0], settings=(("base_url", "http://127.0.0.1:10"),))
    second = drivers.driver(moved)
    assert second is not first
    assert isinstance(second, WhatsAppDriver)
    assert second.config.base_url == "http://127.0.0.1:10"
    await drivers.aclose()


def test_the_command_needs_a_bootstrap(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["normaliser", "--config", "pipeline.toml"]) == 2
    assert "give --bootstrap or set KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err
