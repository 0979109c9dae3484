"""Template reviews, recategorisations, ratings and edits as `template_update` commands: keys, ids, what is parked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregates import Channel, Template
from connectors import TemplateUpdateItem, TemplateUpdateKind
from connectors._normaliser_map import DriverCache, Mapped, OutputKind, Source
from connectors._whatsapp_bodies import notification, template_status_webhook_body
from connectors.normaliser import AddressIndex, ItemMapper, NormaliserStats
from streams.pipeline._templates import TemplateRow, TemplateWriter, check_template_command
from switchboard._config_parse import load_bytes
from switchboard.config import PipelineConfig

SOURCE = Source("sb.webhooks.raw", 1, 7, "c0ffee")
VERIFIED = {"channel": "whatsapp", "signature-verified": "true"}
CONTRACT = Path(__file__).resolve().parents[2] / "contract" / "data" / "whatsapp"
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
CHANNEL = """
[[tenants]]
id = "{tenant}"
name = "Tenant"
timezone = "UTC"

[[channels]]
id = "wa-{tenant}"
kind = "whatsapp"
tenant = "{tenant}"
provider = "meta"
driver = "whatsapp"
settings = {{ base_url = "http://127.0.0.1:9" }}
[[channels.senders]]
id = "wa-main"
address = "{account}"
"""


def mapper(*tenants: str) -> ItemMapper:
    text = "".join(CHANNEL.format(tenant=tenant, account=f"10595455895442{n}") for n, tenant in enumerate(tenants))
    config: PipelineConfig = load_bytes(Path("pipeline.toml"), text.encode())
    return ItemMapper(lambda: config, DriverCache(), AddressIndex())


def mapped(body: dict[str, Any], *tenants: str) -> Mapped:
    one = mapper(*(tenants or ("acme",)))
    return one.map(SOURCE, "whatsapp", one.parse("whatsapp", VERIFIED, json.dumps(body).encode()))


def status_body(event: str = "APPROVED", reason: str | None = "NONE", time: int = 1772357400) -> dict[str, Any]:
    return template_status_webhook_body("waba-1", template_id=987, name="order_shipped", language="pt-BR",
                                        event=event, time=time, reason=reason)


def test_a_review_becomes_a_template_command_keyed_by_the_template_aggregate() -> None:
    [output] = mapped(status_body()).outputs
    aggregate_id = str(Template.create_id("acme", Channel.WHATSAPP, "order_shipped"))
    assert (output.kind, output.key) == (OutputKind.TEMPLATE_COMMAND, aggregate_id)
    command = check_template_command(output.value)
    assert {k: v for k, v in command.items() if k != "command_id"} == {
        "kind": "template_update", "v": 1, "aggregate_id": aggregate_id, "tenant": "acme", "channel": "whatsapp",
        "template_id": "987", "name": "order_shipped", "language": "pt-BR", "business_account_id": "waba-1",
        "update": "status", "status": "APPROVED", "reason": None, "at": "2026-03-01T09:30:00+00:00"}


def test_the_same_review_twice_is_the_same_command_and_another_is_not() -> None:
    first, again = mapped(status_body()).outputs[0], mapped(status_body()).outputs[0]
    assert first.value == again.value
    later = mapped(status_body("PAUSED", time=1772357500)).outputs[0]
    assert later.value["command_id"] != first.value["command_id"]
    assert mapped(status_body("REJECTED", "INVALID_FORMAT")).outputs[0].value["reason"] == "INVALID_FORMAT"


def test_a_recategorisation_from_metas_example_becomes_a_command() -> None:
    [output] = mapped(json.loads((CONTRACT / "template_category.json").read_text())).outputs
    assert output.kind is OutputKind.TEMPLATE_COMMAND
    assert {k: output.value[k] for k in ("update", "name", "language", "new_category", "previous_category")} == {
        "update": "category", "name": "my_message_template", "language": "he", "new_category": "MARKETING",
        "previous_category": None}


def test_the_writer_applies_what_the_normaliser_writes() -> None:
    row, writer = TemplateRow(), TemplateWriter()
    [output] = mapped(status_body()).outputs
    publish = {**output.value, "kind": "template_version", "command_id": "admin-1", "category": "utility",
               "locale": "pt_BR", "body": "Pedido {{1}} enviado"}
    writer.handle(row, check_template_command(publish))
    [event] = writer.handle(row, check_template_command(output.value)).events
    assert (event.locale, event.status.value) == ("pt_BR", "APPROVED")


def test_a_quality_rating_becomes_a_command_the_writer_applies() -> None:
    value = {"message_template_id": 987, "message_template_name": "order_shipped",
             "message_template_language": "pt-BR", "previous_quality_score": "GREEN", "new_quality_score": "YELLOW"}
    [output] = mapped(notification("waba-1", "message_template_quality_update", value, time=1772357400)).outputs
    assert output.kind is OutputKind.TEMPLATE_COMMAND
    command = check_template_command(output.value)
    assert {k: command[k] for k in ("update", "name", "language", "new_quality", "previous_quality")} == {
        "update": "quality", "name": "order_shipped", "language": "pt-BR", "new_quality": "YELLOW",
        "previous_quality": "GREEN"}
    row, writer = TemplateRow(), TemplateWriter()
    writer.handle(row, check_template_command({**command, "kind": "template_version", "command_id": "admin-1",
                                              "category": "utility", "locale": "pt_BR", "body": "Pedido {{1}}"}))
    [event] = writer.handle(row, command).events
    assert (event.locale, event.previous_quality.value, event.new_quality.value) == ("pt_BR", "GREEN", "YELLOW")


def edit_body(body: str | None, time: int = 1772357400) -> dict[str, Any]:
    """Meta's message_template_components_update, as its webhook reference gives it."""
    value = {"message_template_id": 987, "message_template_name": "order_shipped",
             "message_template_language": "pt-BR", "message_template_element": body,
             "message_template_title": "Seu pedido", "message_template_footer": "Responda SAIR para sair",
             "message_template_buttons": [{"message_template_button_type": "URL",
                                           "message_template_button_text": "Rastrear",
                                           "message_template_button_url": "https://example.com/track"}]}
    return notification("waba-1", "message_template_components_update", value, time=time)


def test_an_edit_becomes_a_command_the_writer_publishes_as_a_new_version() -> None:
    [output] = mapped(edit_body("Pedido {{1}} a caminho")).outputs
    assert output.kind is OutputKind.TEMPLATE_COMMAND
    command = check_template_command(output.value)
    assert {k: command[k] for k in ("update", "name", "language", "body", "header", "footer")} == {
        "update": "components", "name": "order_shipped", "language": "pt-BR", "body": "Pedido {{1}} a caminho",
        "header": "Seu pedido", "footer": "Responda SAIR para sair"}
    assert mapped(edit_body("Pedido {{1}} entregue")).outputs[0].value["command_id"] != command["command_id"]
    row, writer = TemplateRow(), TemplateWriter()
    writer.handle(row, check_template_command({**command, "kind": "template_version", "command_id": "admin-1",
                                              "category": "utility", "locale": "pt_BR", "body": "Pedido {{1}}"}))
    [event] = writer.handle(row, command).events
    assert (event.locale, event.version, event.body, event.header) == ("pt_BR", 2, "Pedido {{1}} a caminho",
                                                                       "Seu pedido")


def test_an_edit_without_its_body_text_is_parked() -> None:
    [letter] = mapped(edit_body(None)).outputs
    assert letter.kind is OutputKind.DEAD_LETTER
    assert "without the body text" in letter.value["reason"]
    assert (letter.value["details"]["update"], letter.value["details"]["template_id"]) == ("components", "987")


@pytest.mark.parametrize(("item", "tenants", "reason"), [
    (TemplateUpdateItem("whatsapp", TemplateUpdateKind.STATUS, "987", "order_shipped", "en", "waba-1", AT,
                        "APPROVED"), ("acme", "globex"), "the driver serves tenants acme, globex"),
    (TemplateUpdateItem("whatsapp", TemplateUpdateKind.CATEGORY, "987", None, "en", "waba-1", AT,
                        new_category="MARKETING"), ("acme",), "without the template's name"),
])
def test_a_review_whose_template_cannot_be_named_is_parked(item: TemplateUpdateItem, tenants: tuple[str, ...],
                                                           reason: str) -> None:
    [letter] = mapper(*tenants).map(SOURCE, "whatsapp", [item]).outputs
    assert letter.kind is OutputKind.DEAD_LETTER
    assert reason in letter.value["reason"]
    assert (letter.value["details"]["template_id"], letter.value["item"]) == ("987", 0)


def test_template_commands_count_as_commands() -> None:
    stats = NormaliserStats()
    stats.count(mapped(status_body()))
    assert (stats.commands, stats.dead_letters, stats.by_kind) == (1, 0, {"template_update": 1})
