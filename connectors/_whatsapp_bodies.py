"""JSON bodies Meta sends: send errors and webhook notifications (statuses, inbound messages, template updates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors._whatsapp_codes import WHATSAPP_ERROR_CODES

__all__ = [
    "ERROR_HREF",
    "error_body",
    "http_status_for",
    "inbound_webhook_body",
    "notification",
    "status_object",
    "status_webhook_body",
    "template_status_webhook_body",
    "webhook_error",
]

Json = dict[str, Any]
ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
# HTTP statuses that come with each code (reported by BSPs; Meta says not to key logic on them, and we don't).
_HTTP_STATUS = {0: 401, 190: 401, 10: 403, 368: 403, 130497: 403, 131031: 403, 3: 500, 131000: 500,
                2: 503, 131016: 503, 132001: 404}


def http_status_for(code: int) -> int:
    """The HTTP status Meta answers with for a code: 400 unless known otherwise."""
    if 200 <= code <= 299:
        return 403
    return _HTTP_STATUS.get(code, 400)


def error_body(code: int, details: str, trace_id: str, *, is_transient: bool | None = None) -> Json:
    """A send-endpoint error: {"error": {message, type, code, error_data: {details}, fbtrace_id}}."""
    rule = WHATSAPP_ERROR_CODES.get(code)
    title = rule.meaning if rule else "Unknown error"
    error: Json = {"message": f"(#{code}) {title}", "type": "OAuthException", "code": code,
                   "error_data": {"messaging_product": "whatsapp", "details": details}, "fbtrace_id": trace_id}
    if is_transient is not None:
        error["is_transient"] = is_transient
    return {"error": error}


def webhook_error(code: int, details: str) -> Json:
    """An error as webhooks carry it: {code, title, message, error_data: {details}, href}."""
    rule = WHATSAPP_ERROR_CODES.get(code)
    title = rule.meaning if rule else "Unknown error"
    return {"code": code, "title": title, "message": title, "error_data": {"details": details}, "href": ERROR_HREF}


def notification(business_account_id: str, field: str, value: Json, *, time: int | None = None) -> Json:
    """The envelope of every webhook: one entry with one change."""
    entry: Json = {"id": business_account_id, "changes": [{"field": field, "value": value}]}
    if time is not None:
        entry["time"] = time
    return {"object": "whatsapp_business_account", "entry": [entry]}


def status_object(wamid: str, status: str, timestamp: int, recipient: str, *, callback_data: str | None = None,
                  pricing: Mapping[str, Any] | None = None, errors: Sequence[Json] = ()) -> Json:
    """One element of value.statuses."""
    item: Json = {"id": wamid, "status": status, "timestamp": str(timestamp), "recipient_id": recipient}
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    if pricing is not None:
        item["pricing"] = dict(pricing)
    if errors:
        item["errors"] = list(errors)
    return item


def status_webhook_body(business_account_id: str, phone_number_id: str, display_number: str,
                        statuses: Sequence[Json]) -> Json:
    """A `messages` notification carrying statuses of outbound messages."""
    value = {"messaging_product": "whatsapp", "metadata": _metadata(phone_number_id, display_number),
             "statuses": list(statuses)}
    return notification(business_account_id, "messages", value)


def inbound_webhook_body(business_account_id: str, phone_number_id: str, display_number: str, *, sender: str,
                         wamid: str, timestamp: int, text: str, profile_name: str = "Simulated User") -> Json:
    """A `messages` notification carrying one inbound text message."""
    value = {"messaging_product": "whatsapp", "metadata": _metadata(phone_number_id, display_number),
             "contacts": [{"profile": {"name": profile_name}, "wa_id": sender}],
             "messages": [{"from": sender, "id": wamid, "timestamp": str(timestamp), "type": "text",
                           "text": {"body": text}}]}
    return notification(business_account_id, "messages", value)


def template_status_webhook_body(business_account_id: str, *, template_id: int, name: str, language: str,
                                 event: str, time: int, reason: str | None = None) -> Json:
    """A `message_template_status_update` notification."""
    value = {"event": event, "message_template_id": template_id, "message_template_name": name,
             "message_template_language": language, "reason": reason}
    return notification(business_account_id, "message_template_status_update", value, time=time)


def _metadata(phone_number_id: str, display_number: str) -> Json:
    return {"display_phone_number": display_number, "phone_number_id": phone_number_id}
