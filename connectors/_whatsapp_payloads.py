"""Request bodies for the WhatsApp Cloud API send endpoint, checked against Meta's documented limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from connectors._errors import InvalidMessage
from connectors._messages import (
    ButtonKind,
    Buttons,
    Content,
    CurrencyParam,
    DateTimeParam,
    ListMenu,
    ListRow,
    Media,
    MediaKind,
    OutboundMessage,
    Template,
    TemplateButton,
    TemplateParam,
    Text,
    TextParam,
)

__all__ = ["LIMITS", "build_send_body"]

Json = dict[str, Any]

LIMITS: Final = {
    "text_body": 4096,
    "callback_data": 512,
    "caption": 1024,
    "interactive_body": 1024,
    "interactive_header": 60,
    "interactive_footer": 60,
    "buttons": 3,
    "button_title": 20,
    "button_id": 256,
    "list_sections": 10,
    "list_rows": 10,
    "list_button": 20,
    "row_title": 24,
    "row_id": 200,
    "row_description": 72,
}
# The parameter type (and key) each template button kind takes.
_BUTTON_PARAM = {ButtonKind.QUICK_REPLY: "payload", ButtonKind.URL: "text", ButtonKind.COPY_CODE: "coupon_code"}
_CAPTIONED = frozenset({MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.DOCUMENT})


def build_send_body(message: OutboundMessage) -> Json:
    """The JSON body for POST /{version}/{phone_number_id}/messages; InvalidMessage when a limit is broken."""
    _check_length("message id (biz_opaque_callback_data)", message.message_id, LIMITS["callback_data"])
    if not message.message_id:
        raise InvalidMessage("message id is empty: it is what the receipts are matched by")
    kind, payload = _content(message.content)
    body: Json = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.recipient,
        "type": kind,
        kind: payload,
        # Our id comes back in every status webhook for this message: the reconciliation key across retries.
        "biz_opaque_callback_data": message.message_id,
    }
    if message.reply_to:
        body["context"] = {"message_id": message.reply_to}
    return body


def _content(content: Content) -> tuple[str, Json]:
    match content:
        case Text():
            return "text", _text(content)
        case Media():
            return content.kind.value, _media(content)
        case Template():
            return "template", _template(content)
        case Buttons():
            return "interactive", _buttons(content)
        case ListMenu():
            return "interactive", _list(content)
    raise InvalidMessage(f"WhatsApp cannot send {type(content).__name__}")


def _text(text: Text) -> Json:
    if not text.body.strip():
        raise InvalidMessage("text body is empty")
    _check_length("text body", text.body, LIMITS["text_body"])
    return {"preview_url": text.preview_url, "body": text.body}


def _media(media: Media) -> Json:
    payload: Json = {"link": media.link} if media.link is not None else {"id": media.media_id}
    if media.caption is not None:
        if media.kind not in _CAPTIONED:
            raise InvalidMessage(f"{media.kind.value} messages take no caption")
        _check_length("caption", media.caption, LIMITS["caption"])
        payload["caption"] = media.caption
    if media.filename is not None:
        if media.kind is not MediaKind.DOCUMENT:
            raise InvalidMessage("only documents take a filename")
        payload["filename"] = media.filename
    return payload


def _template(template: Template) -> Json:
    if not template.name or not template.language:
        raise InvalidMessage("a template needs a name and a language code")
    _check_one_style([*template.body, *([template.header] if isinstance(template.header, TextParam) else [])])
    components: list[Json] = []
    if template.header is not None:
        header = (_param(template.header) if isinstance(template.header, TextParam)
                  else {"type": template.header.kind.value, template.header.kind.value: _media_ref(template.header)})
        components.append({"type": "header", "parameters": [header]})
    if template.body:
        components.append({"type": "body", "parameters": [_param(p) for p in template.body]})
    components.extend(_template_button(button) for button in template.buttons)
    payload: Json = {"name": template.name, "language": {"code": template.language, "policy": "deterministic"}}
    if components:
        payload["components"] = components
    return payload


def _check_one_style(params: Sequence[TemplateParam]) -> None:
    named = {p.name is not None for p in params}
    if len(named) > 1:
        raise InvalidMessage("a template takes named or positional parameters, not both")


def _param(param: TemplateParam) -> Json:
    match param:
        case TextParam():
            payload: Json = {"type": "text", "text": param.text}
        case CurrencyParam():
            payload = {"type": "currency", "currency": {
                "fallback_value": param.fallback, "code": param.code, "amount_1000": param.amount_1000}}
        case DateTimeParam():
            payload = {"type": "date_time", "date_time": {"fallback_value": param.fallback}}
    if param.name is not None:
        payload["parameter_name"] = param.name
    return payload


def _media_ref(media: Media) -> Json:
    return {"link": media.link} if media.link is not None else {"id": media.media_id}


def _template_button(button: TemplateButton) -> Json:
    param_type = _BUTTON_PARAM[button.kind]
    return {"type": "button", "sub_type": button.kind.value, "index": str(button.index),
            "parameters": [{"type": param_type, param_type: button.value}]}


def _buttons(buttons: Buttons) -> Json:
    if not 1 <= len(buttons.buttons) <= LIMITS["buttons"]:
        raise InvalidMessage(f"reply buttons: 1 to {LIMITS['buttons']}, got {len(buttons.buttons)}")
    if len({b.id for b in buttons.buttons}) != len(buttons.buttons):
        raise InvalidMessage("reply button ids must be unique")
    for button in buttons.buttons:
        _check_length("button title", button.title, LIMITS["button_title"])
        _check_length("button id", button.id, LIMITS["button_id"])
    action = {"buttons": [{"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in buttons.buttons]}
    return _interactive("button", buttons.body, action, buttons.header, buttons.footer)


def _list(menu: ListMenu) -> Json:
    rows = [row for section in menu.sections for row in section.rows]
    if not 1 <= len(menu.sections) <= LIMITS["list_sections"]:
        raise InvalidMessage(f"list sections: 1 to {LIMITS['list_sections']}, got {len(menu.sections)}")
    if not 1 <= len(rows) <= LIMITS["list_rows"]:
        raise InvalidMessage(f"list rows: 1 to {LIMITS['list_rows']} in total, got {len(rows)}")
    _check_length("list button", menu.button, LIMITS["list_button"])
    for row in rows:
        _check_length("row title", row.title, LIMITS["row_title"])
        _check_length("row id", row.id, LIMITS["row_id"])
        _check_length("row description", row.description or "", LIMITS["row_description"])
    sections = [{"title": s.title, "rows": [_row(r) for r in s.rows]} for s in menu.sections]
    return _interactive("list", menu.body, {"button": menu.button, "sections": sections}, menu.header, menu.footer)


def _row(row: ListRow) -> Json:
    payload: Json = {"id": row.id, "title": row.title}
    if row.description:
        payload["description"] = row.description
    return payload


def _interactive(kind: str, body: str, action: Json, header: str | None, footer: str | None) -> Json:
    _check_length("interactive body", body, LIMITS["interactive_body"])
    payload: Json = {"type": kind, "body": {"text": body}, "action": action}
    if header is not None:
        _check_length("interactive header", header, LIMITS["interactive_header"])
        payload["header"] = {"type": "text", "text": header}
    if footer is not None:
        _check_length("interactive footer", footer, LIMITS["interactive_footer"])
        payload["footer"] = {"text": footer}
    return payload


def _check_length(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidMessage(f"{what} is {len(value)} characters, the limit is {limit}")
