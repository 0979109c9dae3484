"""The simulator's check of a send request body, as Meta validates it: (#131008) missing, (#131009) invalid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors._whatsapp_payloads import LIMITS

__all__ = ["MESSAGE_TYPES", "Reject", "validate_send_body"]

MESSAGE_TYPES = frozenset({"text", "image", "video", "audio", "document", "sticker", "location", "contacts",
                           "interactive", "template", "reaction"})
_MEDIA = frozenset({"image", "video", "audio", "document", "sticker"})
_UNCAPTIONED = frozenset({"audio", "sticker"})
_MISSING, _INVALID, _PARAM = 131008, 131009, 100


class Reject(Exception):
    """A request Meta would refuse: its error code and the details text."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def validate_send_body(body: Any) -> str:
    """The message type of a valid body ('read' for a mark-as-read request); Reject otherwise."""
    if not isinstance(body, dict):
        raise Reject(_PARAM, "The request body must be a JSON object")
    product = body.get("messaging_product")
    if product is None:
        raise Reject(_MISSING, "The parameter messaging_product is required.")
    if product != "whatsapp":
        raise Reject(_PARAM, "Param messaging_product must be 'whatsapp'")
    if body.get("status") == "read":
        _text_field(body, "message_id", 256, "message_id")
        return "read"
    if not isinstance(body.get("to") or body.get("recipient"), str):
        raise Reject(_MISSING, "The parameter to is required.")
    if body.get("recipient_type", "individual") not in ("individual", "group"):
        raise Reject(_PARAM, "Param recipient_type must be one of {INDIVIDUAL, GROUP}")
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise Reject(_PARAM, f"Param type must be one of {{{', '.join(sorted(MESSAGE_TYPES)).upper()}}}")
    content = body.get(kind)
    if not isinstance(content, dict):
        raise Reject(_MISSING, f"The parameter {kind} is required.")
    _common(body)
    _CHECKS.get(kind, _no_check)(kind, content)
    return str(kind)


def _common(body: Mapping[str, Any]) -> None:
    callback = body.get("biz_opaque_callback_data")
    if callback is not None and (not isinstance(callback, str) or len(callback) > LIMITS["callback_data"]):
        raise Reject(_PARAM, f"Param biz_opaque_callback_data must be at most {LIMITS['callback_data']} characters")
    context = body.get("context")
    if context is not None and not (isinstance(context, dict) and isinstance(context.get("message_id"), str)):
        raise Reject(_PARAM, "Param context must carry a message_id")


def _text(_kind: str, content: Mapping[str, Any]) -> None:
    _text_field(content, "body", LIMITS["text_body"], "text['body']")


def _media(kind: str, content: Mapping[str, Any]) -> None:
    link, media_id = content.get("link"), content.get("id")
    if (link is None) == (media_id is None):
        raise Reject(_INVALID, f"Please specify exactly one of {kind}['link'] or {kind}['id']")
    if link is not None and not (isinstance(link, str) and link.startswith(("https://", "http://"))):
        raise Reject(_INVALID, f"Param {kind}['link'] must be a valid URL")
    if "caption" in content and kind in _UNCAPTIONED:
        raise Reject(_INVALID, f"Param {kind}['caption'] is not supported for {kind}")
    if "caption" in content:
        _text_field(content, "caption", LIMITS["caption"], f"{kind}['caption']")


def _interactive(_kind: str, content: Mapping[str, Any]) -> None:
    body = content.get("body")
    if not isinstance(body, dict):
        raise Reject(_MISSING, "The parameter interactive['body'] is required.")
    _text_field(body, "text", LIMITS["interactive_body"], "interactive['body']['text']")
    _optional_text(content.get("header"), LIMITS["interactive_header"], "interactive['header']['text']")
    _optional_text(content.get("footer"), LIMITS["interactive_footer"], "interactive['footer']['text']")
    action = content.get("action")
    if not isinstance(action, dict):
        raise Reject(_MISSING, "The parameter interactive['action'] is required.")
    if content.get("type") == "button":
        _reply_buttons(action)
    elif content.get("type") == "list":
        _list(action)
    elif not isinstance(content.get("type"), str):
        raise Reject(_MISSING, "The parameter interactive['type'] is required.")


def _reply_buttons(action: Mapping[str, Any]) -> None:
    buttons = _objects(action.get("buttons"), "interactive['action']['buttons']")
    if not 1 <= len(buttons) <= LIMITS["buttons"]:
        raise Reject(_INVALID, f"Param interactive['action']['buttons'] must have 1 to {LIMITS['buttons']} elements")
    ids = []
    for button in buttons:
        reply = button.get("reply")
        if button.get("type") != "reply" or not isinstance(reply, dict):
            raise Reject(_INVALID, "Each button must be of type reply with a reply object")
        ids.append(_text_field(reply, "id", LIMITS["button_id"], "button['reply']['id']"))
        _text_field(reply, "title", LIMITS["button_title"], "button['reply']['title']")
    if len(set(ids)) != len(ids):
        raise Reject(_INVALID, "Button ids must be unique")


def _list(action: Mapping[str, Any]) -> None:
    _text_field(action, "button", LIMITS["list_button"], "interactive['action']['button']")
    sections = _objects(action.get("sections"), "interactive['action']['sections']")
    if not 1 <= len(sections) <= LIMITS["list_sections"]:
        raise Reject(_INVALID, f"A list needs 1 to {LIMITS['list_sections']} sections")
    rows = [row for section in sections for row in _objects(section.get("rows"), "section['rows']")]
    if not 1 <= len(rows) <= LIMITS["list_rows"]:
        raise Reject(_INVALID, f"A list needs 1 to {LIMITS['list_rows']} rows in total")
    if len(sections) > 1 and not all(isinstance(s.get("title"), str) and s["title"] for s in sections):
        raise Reject(_MISSING, "Each section needs a title when there is more than one")
    for row in rows:
        _text_field(row, "id", LIMITS["row_id"], "row['id']")
        _text_field(row, "title", LIMITS["row_title"], "row['title']")
        if "description" in row:
            _text_field(row, "description", LIMITS["row_description"], "row['description']")


def _template(_kind: str, content: Mapping[str, Any]) -> None:
    _text_field(content, "name", 512, "template['name']")
    language = content.get("language")
    if not isinstance(language, dict):
        raise Reject(_MISSING, "The parameter template['language'] is required.")
    _text_field(language, "code", 16, "template['language']['code']")
    styles: set[bool] = set()
    for component in _objects(content.get("components", []), "template['components']"):
        if component.get("type") not in ("header", "body", "footer", "button"):
            raise Reject(_INVALID, "Param template['components'][]['type'] is not valid")
        if component.get("type") == "button" and ("sub_type" not in component or "index" not in component):
            raise Reject(_MISSING, "A button component needs sub_type and index")
        for parameter in _objects(component.get("parameters", []), "component['parameters']"):
            if not isinstance(parameter.get("type"), str):
                raise Reject(_MISSING, "Each parameter needs a type")
            if component.get("type") in ("header", "body") and parameter["type"] in ("text", "currency", "date_time"):
                styles.add("parameter_name" in parameter)
    if len(styles) > 1:
        raise Reject(132012, "Named and positional parameters cannot be mixed")


def _no_check(_kind: str, _content: Mapping[str, Any]) -> None:
    """location, contacts, reaction: accepted as they come."""


_CHECKS = {"text": _text, "interactive": _interactive, "template": _template, **dict.fromkeys(_MEDIA, _media)}


def _text_field(container: Mapping[str, Any], key: str, limit: int, name: str) -> str:
    value = container.get(key)
    if value is None or value == "":
        raise Reject(_MISSING, f"The parameter {name} is required.")
    if not isinstance(value, str) or len(value) > limit:
        raise Reject(_INVALID, f"Param {name} must be a string of at most {limit} characters")
    return value


def _optional_text(part: Any, limit: int, name: str) -> None:
    if part is None:
        return
    if not isinstance(part, dict):
        raise Reject(_INVALID, f"Param {name} is not valid")
    if part.get("type", "text") == "text":
        _text_field(part, "text", limit, name)


def _objects(value: Any, name: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Reject(_INVALID, f"Param {name} must be a list of objects")
    return value
