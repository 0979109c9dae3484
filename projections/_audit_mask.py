"""Phone numbers out of what the audit shows: raw webhook bodies and business events, masked field by field."""

from __future__ import annotations

import json
import re
from typing import Any

from connectors._privacy import mask_phone

__all__ = ["masked", "masked_body"]

# Fields that hold a person's number in provider webhooks (WhatsApp: recipient_id, wa_id, from), in our commands
# and in business events; any other string that is an E.164 number (+ and 7 to 15 digits) is masked where it stands.
_PHONE_FIELDS = frozenset({"recipient_id", "wa_id", "from", "to", "display_phone_number", "phone", "phone_number",
                           "recipient", "address", "msisdn", "mobile"})
_E164 = re.compile(r"\+\d{7,15}\b")


def masked(value: Any, field: str | None = None) -> Any:
    """A copy of a JSON-like value with every phone number masked."""
    if isinstance(value, dict):
        return {key: masked(item, str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item, field) for item in value]
    if isinstance(value, str | int) and field in _PHONE_FIELDS and not isinstance(value, bool):
        return mask_phone(str(value))
    if isinstance(value, str):
        return _E164.sub(lambda match: mask_phone(match.group()), value)
    return value


def masked_body(raw: bytes | None) -> Any:
    """A raw body as JSON with numbers masked; a body that is not JSON as masked text."""
    if raw is None:
        return None
    text = raw.decode(errors="replace")
    try:
        return masked(json.loads(text))
    except ValueError:
        return masked(text)
