"""Request bodies for every WhatsApp message kind match the Cloud API shapes; limits are refused before sending."""

from __future__ import annotations

from typing import Any

import pytest

from connectors import (
    ButtonKind,
    Buttons,
    Content,
    CurrencyParam,
    DateTimeParam,
    InvalidMessage,
    ListMenu,
    ListRow,
    ListSection,
    Media,
    MediaKind,
    OutboundMessage,
    ReplyButton,
    Template,
    TemplateButton,
    Text,
    TextParam,
)
from connectors.whatsapp import build_send_body

SENDER = "106540352242922"


def body_for(content: Content, **kwargs: Any) -> dict[str, Any]:
    return build_send_body(OutboundMessage("msg-42", SENDER, "15551234567", content, **kwargs))


def test_text_carries_our_id_in_biz_opaque_callback_data() -> None:
    assert body_for(Text("Your order #123 shipped")) == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "15551234567", "type": "text",
        "text": {"preview_url": False, "body": "Your order #123 shipped"}, "biz_opaque_callback_data": "msg-42"}


def test_reply_quotes_the_provider_message() -> None:
    assert body_for(Text("yes"), reply_to="wamid.abc")["context"] == {"message_id": "wamid.abc"}


def test_positional_template_with_header_media_and_buttons() -> None:
    template = Template(
        "order_update", "en_US",
        body=(TextParam("Ada"), TextParam("#1234"), CurrencyParam("$10.00", "USD", 10000),
              DateTimeParam("May 1, 2026")),
        header=Media(MediaKind.IMAGE, link="https://cdn.example.com/x.jpg"),
        buttons=(TemplateButton(ButtonKind.QUICK_REPLY, 0, "CONFIRM_123"),
                 TemplateButton(ButtonKind.URL, 1, "track/123")),
    )
    assert body_for(template)["template"] == {
        "name": "order_update", "language": {"code": "en_US", "policy": "deterministic"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/x.jpg"}}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Ada"}, {"type": "text", "text": "#1234"},
                {"type": "currency", "currency": {"fallback_value": "$10.00", "code": "USD", "amount_1000": 10000}},
                {"type": "date_time", "date_time": {"fallback_value": "May 1, 2026"}}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "CONFIRM_123"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "track/123"}]},
        ]}


def test_named_template_parameters_carry_parameter_name() -> None:
    template = Template("welcome", "pt_BR", body=(TextParam("Ada", name="first_name"),),
                        header=TextParam("Oslo", name="city"),
                        buttons=(TemplateButton(ButtonKind.COPY_CODE, 0, "SAVE10"),))
    components = body_for(template)["template"]["components"]
    assert components[0] == {"type": "header",
                             "parameters": [{"type": "text", "text": "Oslo", "parameter_name": "city"}]}
    assert components[1]["parameters"] == [{"type": "text", "text": "Ada", "parameter_name": "first_name"}]
    assert components[2]["parameters"] == [{"type": "coupon_code", "coupon_code": "SAVE10"}]


def test_template_without_parameters_has_no_components() -> None:
    assert body_for(Template("hello_world", "en_US"))["template"] == {
        "name": "hello_world", "language": {"code": "en_US", "policy": "deterministic"}}


def test_named_and_positional_cannot_mix() -> None:
    with pytest.raises(InvalidMessage, match="named or positional"):
        body_for(Template("t", "en", body=(TextParam("a", name="x"), TextParam("b"))))
    with pytest.raises(InvalidMessage, match="named or positional"):
        body_for(Template("t", "en", body=(TextParam("a"),), header=TextParam("h", name="x")))


def test_media_by_link_and_by_id() -> None:
    assert body_for(Media(MediaKind.IMAGE, link="https://cdn.example.com/r.jpg", caption="Receipt"))["image"] == {
        "link": "https://cdn.example.com/r.jpg", "caption": "Receipt"}
    assert body_for(Media(MediaKind.DOCUMENT, media_id="1234567890", caption="Invoice",
                          filename="invoice-123.pdf"))["document"] == {
        "id": "1234567890", "caption": "Invoice", "filename": "invoice-123.pdf"}
    assert body_for(Media(MediaKind.AUDIO, media_id="55"))["type"] == "audio"


def test_media_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Media(MediaKind.IMAGE)
    with pytest.raises(ValueError, match="exactly one"):
        Media(MediaKind.IMAGE, link="https://x", media_id="1")


def test_media_caption_and_filename_rules() -> None:
    with pytest.raises(InvalidMessage, match="no caption"):
        body_for(Media(MediaKind.STICKER, media_id="1", caption="hi"))
    with pytest.raises(InvalidMessage, match="filename"):
        body_for(Media(MediaKind.IMAGE, media_id="1", filename="x.jpg"))


def test_reply_buttons() -> None:
    choices = (ReplyButton("slot_am", "Morning"), ReplyButton("slot_pm", "Afternoon"))
    buttons = Buttons("Confirm delivery slot?", choices, footer="Reply by 6pm")
    assert body_for(buttons)["interactive"] == {
        "type": "button", "body": {"text": "Confirm delivery slot?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "slot_am", "title": "Morning"}},
                               {"type": "reply", "reply": {"id": "slot_pm", "title": "Afternoon"}}]},
        "footer": {"text": "Reply by 6pm"}}


def test_list_menu() -> None:
    menu = ListMenu("Pick a store", "Stores", (ListSection("North", (ListRow("s1", "Oslo", "Open 9-17"),)),),
                    header="Stores near you")
    assert body_for(menu)["interactive"] == {
        "type": "list", "body": {"text": "Pick a store"},
        "action": {"button": "Stores",
                   "sections": [{"title": "North",
                                 "rows": [{"id": "s1", "title": "Oslo", "description": "Open 9-17"}]}]},
        "header": {"type": "text", "text": "Stores near you"}}


def _rows(count: int) -> tuple[ListRow, ...]:
    return tuple(ListRow(f"r{i}", f"Row {i}") for i in range(count))


@pytest.mark.parametrize(("content", "complaint"), [
    (Text("x" * 4097), "text body is 4097 characters"),
    (Text("   "), "text body is empty"),
    (Buttons("b", tuple(ReplyButton(f"b{i}", "t") for i in range(4))), "reply buttons: 1 to 3"),
    (Buttons("b", ()), "reply buttons: 1 to 3"),
    (Buttons("b", (ReplyButton("same", "a"), ReplyButton("same", "b"))), "unique"),
    (Buttons("b", (ReplyButton("id", "x" * 21),)), "button title is 21"),
    (Buttons("b", (ReplyButton("i" * 257, "t"),)), "button id is 257"),
    (Buttons("x" * 1025, (ReplyButton("id", "t"),)), "interactive body is 1025"),
    (Buttons("b", (ReplyButton("id", "t"),), header="h" * 61), "interactive header is 61"),
    (Buttons("b", (ReplyButton("id", "t"),), footer="f" * 61), "interactive footer is 61"),
    (ListMenu("b", "Stores", (ListSection("s", _rows(11)),)), "list rows: 1 to 10"),
    (ListMenu("b", "Stores", tuple(ListSection(f"s{i}", _rows(1)) for i in range(11))), "list sections: 1 to 10"),
    (ListMenu("b", "x" * 21, (ListSection("s", _rows(1)),)), "list button is 21"),
    (ListMenu("b", "Stores", (ListSection("s", (ListRow("r", "x" * 25),)),)), "row title is 25"),
    (ListMenu("b", "Stores", (ListSection("s", (ListRow("r" * 201, "t"),)),)), "row id is 201"),
    (ListMenu("b", "Stores", (ListSection("s", (ListRow("r", "t", "d" * 73),)),)), "row description is 73"),
    (Template("", "en"), "name and a language"),
])
def test_limits_are_refused_before_sending(content: Content, complaint: str) -> None:
    with pytest.raises(InvalidMessage, match=complaint):
        body_for(content)


def test_limits_at_the_edge_are_accepted() -> None:
    body_for(Text("x" * 4096))
    body_for(Buttons("x" * 1024, tuple(ReplyButton("i" * 256 if i == 0 else f"b{i}", "t" * 20) for i in range(3))))
    body_for(ListMenu("b", "x" * 20, (ListSection("s", _rows(10)),)))


def test_callback_data_limit_and_presence() -> None:
    with pytest.raises(InvalidMessage, match="limit is 512"):
        build_send_body(OutboundMessage("m" * 513, SENDER, "1555", Text("hi")))
    with pytest.raises(InvalidMessage, match="message id is empty"):
        build_send_body(OutboundMessage("", SENDER, "1555", Text("hi")))
    longest = build_send_body(OutboundMessage("m" * 512, SENDER, "1555", Text("hi")))
    assert longest["biz_opaque_callback_data"] == "m" * 512
