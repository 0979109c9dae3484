"""A send request's JSON body, checked and turned into the pipeline's `request` command (pure, no I/O)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from aggregates import Channel, Contact, Message, MessageCategory
from projections._api_reads import ApiError
from streams.pipeline._commands import COMMAND_VERSION, PRIORITIES
from switchboard import tracing

__all__ = ["MAX_BATCH", "SendRequest", "body_digest", "parse_json", "parse_message"]

MAX_BATCH: Final = 100  # messages in one POST /v1/messages:batch
_KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII without spaces, as the Idempotency-Key header
_FIELDS: Final = frozenset({"to", "category", "template", "locale", "parameters", "body", "priority", "tags",
                            "media", "not_after", "tenant", "idempotency_key"})
_CHANNELS: Final = frozenset(c.value for c in Channel if c is not Channel.UNKNOWN)
_CATEGORIES: Final = frozenset(c.value for c in MessageCategory if c.value != "unknown")
_TEXT_LIMIT: Final = 4096


@dataclass(frozen=True)
class SendRequest:
    """One checked message request: its ids, the command for sb.commands, and the digest of what was asked."""

    message_id: str
    contact_id: str
    idempotency_key: str
    keyed: bool  # whether the client gave the key (else it is random, and nothing can repeat it)
    digest: str
    command: dict[str, Any]


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {error}") from None


def body_digest(spec: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys), so a retry that reorders keys is still the same body."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_message(spec: Any, tenant: str, client_id: str, key: str | None) -> SendRequest:
    """The request for one message, or 422 validation_failed listing every problem (403 for another tenant)."""
    if not isinstance(spec, dict):
        raise ApiError(422, "validation_failed", "a message must be a JSON object")
    if "tenant" in spec and spec["tenant"] != tenant:
        raise ApiError(403, "tenant_mismatch", "this client sends for its own tenant only")
    problems = _problems(spec)
    if problems:
        raise ApiError(422, "validation_failed", "the message is not valid", problems)
    keyed = key is not None
    key = key or str(uuid.uuid4())
    # The client id is part of the key: two clients of one tenant never collide on their own keys.
    pipeline_key = f"api:{client_id}:{key}"
    message_id = str(Message.create_id(tenant, pipeline_key))
    contact_id = str(Contact.create_id(tenant, spec["to"]["external_ref"]))
    return SendRequest(message_id, contact_id, key, keyed, body_digest({k: v for k, v in spec.items()
                                                                         if k != "idempotency_key"}),
                       _command(spec, tenant, client_id, pipeline_key, message_id, contact_id))


def _command(spec: Mapping[str, Any], tenant: str, client_id: str, pipeline_key: str, message_id: str,
             contact_id: str) -> dict[str, Any]:
    to = spec["to"]
    contact = {"external_ref": to["external_ref"], "addresses": to["addresses"]}
    if "attributes" in to:
        contact["attributes"] = to["attributes"]
    message = {"idempotency_key": pipeline_key, "category": spec["category"],
               **{k: spec[k] for k in ("template", "locale", "parameters", "body", "priority", "tags", "media",
                                       "not_after") if k in spec}}
    return {"kind": "request", "v": COMMAND_VERSION, "command_id": f"api:{message_id}", "tenant": tenant,
            "contact_id": contact_id, "contact": contact, "message": message, "requested_by": f"api:{client_id}",
            "trace_id": _trace_id(message_id)}


def _trace_id(message_id: str) -> str:
    """The request's trace (from its traceparent, or the one the API started for it), so the message's every
    record joins the caller's trace; outside a request, a trace of the message's own."""
    span = tracing.current()
    return span.trace_id if span is not None else uuid.UUID(message_id).hex


def _problems(spec: Mapping[str, Any]) -> list[dict[str, str]]:
    problems = [{"field": name, "problem": "unknown field"} for name in sorted(set(spec) - _FIELDS)]
    problems += _to_problems(spec.get("to"))
    if spec.get("category") not in _CATEGORIES:
        problems.append({"field": "category", "problem": f"one of {', '.join(sorted(_CATEGORIES))}"})
    if "template" not in spec and "body" not in spec:
        problems.append({"field": "template", "problem": "a template or a body is required"})
    for name in ("template", "locale", "body"):
        if name in spec and not _text(spec[name]):
            problems.append({"field": name, "problem": f"a non-empty string of at most {_TEXT_LIMIT} characters"})
    if "parameters" in spec and not _flat(spec["parameters"]):
        problems.append({"field": "parameters", "problem": "an object of strings or numbers"})
    if "priority" in spec and spec["priority"] not in PRIORITIES:
        problems.append({"field": "priority", "problem": f"one of {', '.join(PRIORITIES)}"})
    if "tags" in spec and not (isinstance(spec["tags"], list) and all(_text(t) for t in spec["tags"])):
        problems.append({"field": "tags", "problem": "a list of strings"})
    if "media" in spec and not _media(spec["media"]):
        problems.append({"field": "media", "problem": "{kind, link | media_id, filename?}"})
    if "not_after" in spec and not _aware_time(spec["not_after"]):
        problems.append({"field": "not_after", "problem": "an ISO 8601 time with its offset"})
    if "idempotency_key" in spec and not (isinstance(spec["idempotency_key"], str)
                                          and _KEY.fullmatch(spec["idempotency_key"])):
        problems.append({"field": "idempotency_key", "problem": "1 to 255 printable ASCII characters"})
    return problems


def _to_problems(to: Any) -> list[dict[str, str]]:
    if not isinstance(to, dict):
        return [{"field": "to", "problem": "an object {external_ref, addresses, attributes?}"}]
    problems = [{"field": f"to.{name}", "problem": "unknown field"}
                for name in sorted(set(to) - {"external_ref", "addresses", "attributes"})]
    if not _text(to.get("external_ref"), 200):
        problems.append({"field": "to.external_ref", "problem": "your id of the recipient, 1 to 200 characters"})
    addresses = to.get("addresses")
    if not (isinstance(addresses, dict) and addresses and set(addresses) <= _CHANNELS
            and all(_text(a, 320) for a in addresses.values())):
        problems.append({"field": "to.addresses", "problem": f"an object {{channel: address}}, channels: "
                                                             f"{', '.join(sorted(_CHANNELS))}"})
    if "attributes" in to and not isinstance(to["attributes"], dict):
        problems.append({"field": "to.attributes", "problem": "an object"})
    return problems


def _text(value: Any, limit: int = _TEXT_LIMIT) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.strip() != ""


def _flat(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) and len(str(v)) <= _TEXT_LIMIT
        for v in value.values())


def _media(value: Any) -> bool:
    if not isinstance(value, dict) or not _text(value.get("kind"), 20):
        return False
    if set(value) - {"kind", "link", "media_id", "filename"}:
        return False
    return ("link" in value) != ("media_id" in value) and all(_text(v) for v in value.values())


def _aware_time(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
