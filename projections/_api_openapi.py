"""The OpenAPI 3.1 document of `switchboard api`: every route, its parameters, bodies, answers and errors."""

from __future__ import annotations

import copy
from typing import Any, Final

from projections._api_reads import MAX_LIMIT
from projections._api_send import MAX_WAIT_SECONDS
from projections._api_send_body import MAX_BATCH

__all__ = ["document"]

_JSON: Final = "application/json"
_SIGNED: Final[list[dict[str, list[str]]]] = [{"client": [], "timestamp": [], "signature": []}]
_SIGNED_WITH_KEY: Final[list[dict[str, list[str]]]] = [{"client": [], "timestamp": [], "signature": [], "apiKey": []}]
_READ_SECURITY: Final[list[dict[str, list[str]]]] = [*_SIGNED, {"consoleSession": []}]
_DAY: Final = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_ERRORS: Final = {"400": "Malformed request or query (`malformed_json`, `invalid_query`, `invalid_idempotency_key`)",
                  "401": "Not authenticated (`missing_signature`, `unknown_client`, `timestamp_expired`, "
                         "`missing_api_key`, `invalid_api_key`, `invalid_session`)",
                  "403": "Signature wrong or another tenant (`bad_signature`, `tenant_mismatch`)",
                  "429": "Over the client's tier or the IP's limit (`rate_limited`, with Retry-After)"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _errors(*extra: tuple[str, str]) -> dict[str, Any]:
    answers = {status: _error(text) for status, text in {**_ERRORS, **dict(extra)}.items()}
    answers["default"] = _error("Any other refusal, in the same shape (e.g. 404 `not_found`, 405)")
    return answers


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _get(summary: str, ok: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
         security: list[dict[str, list[str]]] | None = None, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "parameters": params or [],
                                 "responses": {"200": ok, **(errors if errors is not None else _errors())}}
    if security is not None:
        operation["security"] = security
    return operation


_MESSAGE_PROPERTIES: Final[dict[str, Any]] = {
    "to": {"type": "object", "additionalProperties": False, "required": ["external_ref", "addresses"],
           "properties": {"external_ref": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
                          "addresses": {"type": "object", "minProperties": 1, "additionalProperties": False,
                                        "properties": {c: {"type": "string", "minLength": 1, "maxLength": 320,
                                                           "pattern": r"\S"}
                                                       for c in ("whatsapp", "sms", "telegram", "line", "messenger",
                                                                 "email")}},
                          "attributes": {"type": "object"}}},
    "category": {"enum": ["marketing", "utility", "authentication", "service"]},
    "template": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"\S"},
    "body": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"\S"},
    "locale": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"\S"},
    "parameters": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
    "priority": {"enum": ["high", "normal", "low"]},
    "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"\S"}},
    "media": {"type": "object"},
    "not_after": {"type": "string", "format": "date-time"},
    "tenant": {"type": "string", "description": "if given, the client's own tenant (else 403 tenant_mismatch)"},
}

_SCHEMAS: Final[dict[str, Any]] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "array"}}}}},
    "MessageRequest": {"type": "object", "additionalProperties": False, "required": ["to", "category"],
                       "properties": _MESSAGE_PROPERTIES,
                       "anyOf": [{"required": ["template"]}, {"required": ["body"]}]},
    "BatchMessage": {"type": "object", "additionalProperties": False, "required": ["to", "category"],
                     "properties": {**_MESSAGE_PROPERTIES,
                                    "idempotency_key": {"type": "string", "pattern": "^[!-~]{1,255}$"}},
                     "anyOf": [{"required": ["template"]}, {"required": ["body"]}]},
    "SendResult": {"type": "object", "required": ["message_id", "contact_id", "idempotency_key", "status",
                                                  "replayed"],
                   "properties": {"message_id": {"type": "string", "format": "uuid"},
                                  "contact_id": {"type": "string", "format": "uuid"},
                                  "idempotency_key": {"type": "string"},
                                  "status": {"type": "string", "description": "requested (202) or the outcome (200): "
                                             "accepted, dead_lettered, suppressed, expired, or later statuses"},
                                  "replayed": {"type": "boolean"},
                                  "reason": {"type": ["string", "null"]}}},
    "BatchResult": {"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": {
        "type": "object", "required": ["index", "status"],
        "properties": {"index": {"type": "integer"}, "status": {"type": "integer"},
                       "message": _ref("SendResult"), "error": {"$ref": "#/components/schemas/Error/properties/error"}
                       }}}}},
    "Object": {"type": "object"},
}

_SEND_ERRORS: Final = (("409", "The idempotency key was used with another body (`idempotency_key_reused`)"),
                       ("413", "The body is too large (`body_too_large`)"),
                       ("422", "The message is not valid (`validation_failed`, details per field)"),
                       ("503", "Kafka did not acknowledge (`kafka_unavailable`) or sending is off (`send_disabled`)"))
_WAIT: Final = _query("wait", {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
                      "seconds to wait for the outcome (200) before answering 202")


def _sends() -> dict[str, Any]:
    key = {"name": "Idempotency-Key", "in": "header", "required": False,
           "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"}}
    return {
        "/v1/messages": {"post": {
            "summary": "Send one message: 202 once it is in Kafka, 200 with its outcome when `wait` allows",
            "security": _SIGNED_WITH_KEY, "parameters": [_WAIT, key],
            "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("MessageRequest")}}},
            "responses": {"200": _json(_ref("SendResult"), "The outcome came within `wait`"),
                          "202": _json(_ref("SendResult"), "Durably requested (acks=all)"),
                          **_errors(*_SEND_ERRORS)}}},
        "/v1/messages:batch": {"post": {
            "summary": f"Send up to {MAX_BATCH} messages, each with its own result and idempotency key",
            "security": _SIGNED_WITH_KEY, "parameters": [_WAIT],
            "requestBody": {"required": True, "content": {_JSON: {"schema": {
                "type": "object", "additionalProperties": False, "required": ["messages"],
                "properties": {"messages": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                                            "items": _ref("BatchMessage")}}}}}},
            "responses": {"200": _json(_ref("BatchResult"), "One result per message, in order"),
                          **_errors(*_SEND_ERRORS)}}},
    }


def _reads() -> dict[str, Any]:
    obj, days = _ref("Object"), [_query("from", _DAY, "first UTC day"), _query("to", _DAY, "last UTC day")]
    return {
        "/v1/messages/{id}": {"get": _get("A message's status row (404 for another tenant's)", _json(obj, "The row"),
                                          params=[_path("id")], security=_READ_SECURITY)},
        "/v1/recipients/{contact_id}/messages": {"get": _get(
            "A recipient's messages, newest first", _json(obj, "The rows"), security=_READ_SECURITY,
            params=[_path("contact_id"), _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                                                "at most this many")])},
        "/v1/stats/funnel": {"get": _get("The funnel with rates", _json(obj, "Counts per stage"),
                                         security=_READ_SECURITY,
                                         params=[*days, _query("template", {"type": "string"}, "one template")])},
        "/v1/stats/latency": {"get": _get("Latency percentiles of a day", _json(obj, "p50/p90/p99 per stage"),
                                          security=_READ_SECURITY, params=[_query("day", _DAY, "UTC day")])},
        "/v1/stats/usage": {"get": _get("Usage by pricing category", _json(obj, "Counts"), security=_READ_SECURITY,
                                        params=days)},
        "/v1/stats/throughput": {"get": _get("Events per second, recent", _json(obj, "Per second"),
                                             security=_READ_SECURITY, params=[_query(
                                                 "seconds", {"type": "integer", "minimum": 1, "maximum": 300},
                                                 "how many seconds back")])},
    }


def _service() -> dict[str, Any]:
    health = {"200": _json(_ref("Object"), "Yes"), "503": _json(_ref("Object"), "No"), "default": _error("Refused")}
    html = {"description": "The console page", "content": {"text/html": {"schema": {"type": "string"}}}}
    session = {"200": _json(_ref("Object"), "The session's tenant"), "401": _error("No valid session or token"),
               "default": _error("Refused")}
    static = {"description": "A console file", "content": {t: {"schema": {"type": "string"}} for t in (
        "text/html", "text/css", "text/javascript", "application/javascript", "image/svg+xml")}}
    return {
        "/healthz": {"get": {"summary": "Alive", "security": [], "responses": health}},
        "/readyz": {"get": {"summary": "Caught up", "security": [], "responses": health}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {
            "200": {"description": "Text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "default": _error("Refused")}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {
            "200": _json(_ref("Object"), "OpenAPI 3.1"), "default": _error("Refused")}}},
        "/console": {"get": {"summary": "Redirects to /console/", "security": [], "responses": {
            "301": {"description": "To /console/"}, "200": html, "default": _error("Refused")}}},
        "/console/": {"get": {"summary": "The console", "security": [], "responses": {"200": html,
                                                                                       "default": _error("Refused")}}},
        "/console/session": {
            "get": {"summary": "The console session's tenant", "security": [{"consoleSession": []}],
                    "responses": session},
            "post": {"summary": "Trade a one-time token for a session cookie", "security": [],
                     "requestBody": {"required": True, "content": {_JSON: {"schema": {
                         "type": "object", "properties": {"token": {"type": "string"}}}}}},
                     "responses": session}},
        "/console/{filename}": {"get": {"summary": "The console's files", "security": [],
                                        "parameters": [_path("filename")],
                                        "responses": {"200": static, "default": _error("No such file")}}},
    }


_DOCUMENT: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {"title": "Switchboard API", "version": "1",
             "description": "Signed sends and reads; see docs/API.md for how a client signs."},
    "paths": {**_sends(), **_reads(), **_service()},
    "components": {"schemas": _SCHEMAS, "securitySchemes": {
        "client": {"type": "apiKey", "in": "header", "name": "X-Switchboard-Client"},
        "timestamp": {"type": "apiKey", "in": "header", "name": "X-Switchboard-Timestamp"},
        "signature": {"type": "apiKey", "in": "header", "name": "X-Switchboard-Signature",
                      "description": "v1=hex HMAC-SHA256(secret, 'v1:{timestamp}:{METHOD}:{path?query}:' + body)"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-Switchboard-Key"},
        "consoleSession": {"type": "apiKey", "in": "cookie", "name": "sb_console"}}},
}


def document() -> dict[str, Any]:
    """A copy of the document (callers may change theirs)."""
    return copy.deepcopy(_DOCUMENT)
