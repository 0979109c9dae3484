"""Parsing WhatsApp webhook bodies into typed items: every entry, change, status and message, not just [0]."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from connectors._errors import MalformedWebhook
from connectors._items import (
    AccountErrorItem,
    Conversation,
    InboundItem,
    InboundMedia,
    NormalizedItem,
    Pricing,
    ReceiptItem,
    ReceiptStatus,
    TemplateUpdateItem,
    TemplateUpdateKind,
    UnhandledItem,
)
from connectors._results import ProviderError

__all__ = ["check_whatsapp_webhook", "parse_whatsapp_webhook"]

CHANNEL = "whatsapp"
Json = Mapping[str, Any]

_TEMPLATE_FIELDS = {
    "message_template_status_update": TemplateUpdateKind.STATUS,
    "template_category_update": TemplateUpdateKind.CATEGORY,
    "message_template_quality_update": TemplateUpdateKind.QUALITY,
    "message_template_components_update": TemplateUpdateKind.COMPONENTS,
}
_MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


class _Skip(Exception):
    """One item is unreadable; it becomes an UnhandledItem and the rest of the body is still parsed."""


def parse_whatsapp_webhook(raw_body: bytes) -> list[NormalizedItem]:
    """Every item in the body, in document order; MalformedWebhook when the body is not a WABA notification."""
    document = _load(raw_body)
    items: list[NormalizedItem] = []
    for entry in _objects(document.get("entry"), "entry"):
        waba = _opt_str(entry.get("id"))
        for change in _objects(entry.get("changes", []), "entry[].changes"):
            items.extend(_change(waba, entry.get("time"), change))
    return items


def check_whatsapp_webhook(raw_body: bytes) -> None:
    """MalformedWebhook exactly when parse_whatsapp_webhook would raise it, without building the items."""
    document = _load(raw_body)
    for entry in _objects(document.get("entry"), "entry"):
        for _ in _objects(entry.get("changes", []), "entry[].changes"):
            pass


def _load(raw_body: bytes) -> Json:
    try:
        document = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedWebhook(f"body is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("object") != "whatsapp_business_account":
        raise MalformedWebhook("body is not a whatsapp_business_account notification")
    if not isinstance(document.get("entry"), list):
        raise MalformedWebhook("notification has no entry list")
    return document


def _objects(value: Any, where: str) -> Iterator[Json]:
    if not isinstance(value, list):
        raise MalformedWebhook(f"{where} is not a list")
    for item in value:
        if not isinstance(item, dict):
            raise MalformedWebhook(f"{where} holds a non-object")
        yield item


def _change(waba: str | None, entry_time: Any, change: Json) -> Iterator[NormalizedItem]:
    field = str(change.get("field", ""))
    value = change.get("value")
    if not isinstance(value, dict):
        yield UnhandledItem(CHANNEL, field, "change without a value object", waba, dict(change))
    elif field == "messages":
        yield from _messages_value(waba, value)
    elif field in _TEMPLATE_FIELDS:
        build = partial(_template_update, _TEMPLATE_FIELDS[field], waba, entry_time, value)
        yield _guard(build, field, waba, value)
    else:
        yield UnhandledItem(CHANNEL, field, "field not normalised", waba, value)


def _messages_value(waba: str | None, value: Json) -> Iterator[NormalizedItem]:
    metadata = _obj(value.get("metadata"))
    account = _opt_str(metadata.get("phone_number_id")) or ""
    contacts = _contacts(value.get("contacts"))
    for status in _list_of_objects(value.get("statuses")):
        yield _guard(partial(_receipt, account, waba, status), "messages.statuses", waba, status)
    for message in _list_of_objects(value.get("messages")):
        yield _guard(partial(_inbound, account, waba, contacts, message), "messages.messages", waba, message)
    errors = _errors(value.get("errors"))
    if errors:
        yield AccountErrorItem(CHANNEL, account or None, errors, waba)


def _guard(build: Callable[[], NormalizedItem], where: str, waba: str | None, raw: Json) -> NormalizedItem:
    try:
        item: NormalizedItem = build()
    except _Skip as reason:
        return UnhandledItem(CHANNEL, where, str(reason), waba, dict(raw))
    return item


def _receipt(account: str, waba: str | None, status: Json) -> ReceiptItem:
    try:
        kind = ReceiptStatus(str(status.get("status")))
    except ValueError:
        raise _Skip(f"unknown status {status.get('status')!r}") from None
    return ReceiptItem(
        channel=CHANNEL,
        account_id=account,
        provider_message_id=_required(status, "id"),
        status=kind,
        occurred_at=_timestamp(status.get("timestamp")),
        message_id=_opt_str(status.get("biz_opaque_callback_data")),
        recipient_id=_opt_str(status.get("recipient_id")),
        errors=_errors(status.get("errors")),
        pricing=_pricing(status.get("pricing")),
        conversation=_conversation(status.get("conversation")),
        business_account_id=waba,
    )


def _inbound(account: str, waba: str | None, contacts: Mapping[str, Json], message: Json) -> InboundItem:
    sender = _required(message, "from")
    kind = str(message.get("type", "unknown"))
    contact = contacts.get(sender, {})
    profile = _obj(contact.get("profile"))
    text, payload, title = _inbound_text(kind, message)
    context = _obj(message.get("context"))
    reply_to = _opt_str(context.get("id"))
    if kind == "reaction" and isinstance(message.get("reaction"), dict):
        reply_to = _opt_str(message["reaction"].get("message_id"))
    return InboundItem(
        channel=CHANNEL,
        account_id=account,
        provider_message_id=_required(message, "id"),
        sender=sender,
        occurred_at=_timestamp(message.get("timestamp")),
        kind=kind,
        text=text,
        payload=payload,
        title=title,
        media=_inbound_media(kind, message),
        reply_to=reply_to,
        profile_name=_opt_str(profile.get("name")),
        user_id=_opt_str(contact.get("user_id")),
        errors=_errors(message.get("errors")),
        business_account_id=waba,
        raw=dict(message),
    )


def _inbound_text(kind: str, message: Json) -> tuple[str | None, str | None, str | None]:
    """(text, payload, title) for the message kinds that carry them."""
    body = _obj(message.get(kind))
    if kind == "text":
        return _opt_str(body.get("body")), None, None
    if kind == "button":  # a template's quick-reply button
        return _opt_str(body.get("text")), _opt_str(body.get("payload")), _opt_str(body.get("text"))
    if kind == "interactive":
        for reply_kind in ("button_reply", "list_reply"):
            reply = body.get(reply_kind)
            if isinstance(reply, dict):
                return _opt_str(reply.get("description")), _opt_str(reply.get("id")), _opt_str(reply.get("title"))
        flow = body.get("nfm_reply")
        if isinstance(flow, dict):
            return _opt_str(flow.get("body")), _opt_str(flow.get("response_json")), _opt_str(flow.get("name"))
    if kind == "reaction":
        return None, _opt_str(body.get("emoji")), None
    if kind in _MEDIA_TYPES:
        return _opt_str(body.get("caption")), None, None
    return None, None, None


def _inbound_media(kind: str, message: Json) -> InboundMedia | None:
    body = message.get(kind)
    if kind not in _MEDIA_TYPES or not isinstance(body, dict) or not body.get("id"):
        return None
    return InboundMedia(kind, str(body["id"]), _opt_str(body.get("mime_type")), _opt_str(body.get("sha256")),
                        _opt_str(body.get("url")), _opt_str(body.get("caption")), _opt_str(body.get("filename")))


def _template_update(kind: TemplateUpdateKind, waba: str | None, entry_time: Any, value: Json) -> TemplateUpdateItem:
    template_id = value.get("message_template_id")
    if template_id is None:
        raise _Skip("template update without message_template_id")
    return TemplateUpdateItem(
        channel=CHANNEL,
        kind=kind,
        template_id=str(template_id),
        template_name=_opt_str(value.get("message_template_name")),
        language=_opt_str(value.get("message_template_language")),
        business_account_id=waba,
        occurred_at=_timestamp(entry_time) if entry_time is not None else None,
        status=_opt_str(value.get("event")),
        reason=_opt_str(value.get("reason")),
        new_category=_opt_str(value.get("new_category")),
        previous_category=_opt_str(value.get("previous_category")),
        new_quality=_opt_str(value.get("new_quality_score")),
        previous_quality=_opt_str(value.get("previous_quality_score")),
        body=_opt_str(value.get("message_template_element")),
        header=_opt_str(value.get("message_template_title")),
        footer=_opt_str(value.get("message_template_footer")),
        raw=dict(value),
    )


def _contacts(value: Any) -> dict[str, Json]:
    return {str(c["wa_id"]): c for c in _list_of_objects(value) if c.get("wa_id") is not None}


def _errors(value: Any) -> tuple[ProviderError, ...]:
    return tuple(_error(e) for e in _list_of_objects(value))


def _error(error: Json) -> ProviderError:
    data = _obj(error.get("error_data"))
    return ProviderError(code=str(error.get("code", "")), message=str(error.get("message") or error.get("title") or ""),
                         details=_opt_str(data.get("details")))


def _pricing(value: Any) -> Pricing | None:
    if not isinstance(value, dict):
        return None
    billable = value.get("billable")
    return Pricing(_opt_str(value.get("pricing_model")), _opt_str(value.get("category")), _opt_str(value.get("type")),
                   billable if isinstance(billable, bool) else None)


def _conversation(value: Any) -> Conversation | None:
    if not isinstance(value, dict) or value.get("id") is None:
        return None
    origin = _obj(value.get("origin"))
    expires = value.get("expiration_timestamp")
    return Conversation(str(value["id"]), _opt_str(origin.get("type")),
                        _timestamp(expires) if expires is not None else None)


def _timestamp(value: Any) -> datetime:
    # Meta sends Unix seconds as a string in messages and statuses, as a number in entry.time.
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise _Skip(f"bad timestamp {value!r}") from None


def _required(item: Json, key: str) -> str:
    value = item.get(key)
    if value is None or value == "":
        raise _Skip(f"no {key}")
    return str(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _obj(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _list_of_objects(value: Any) -> list[Json]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
