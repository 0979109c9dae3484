"""Every WhatsApp Cloud API error code we know, with its meaning, its outcome and a retry hint."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from connectors._driver import classify_local, retry_by_http_status
from connectors._results import Outcome, ProviderError

__all__ = ["WHATSAPP_ERROR_CODES", "CodeRule", "classify_whatsapp", "is_throttle", "retry_after_for"]

_RETRY = Outcome.RETRY_LATER
_RECIPIENT = Outcome.RETRY_RECIPIENT_LATER
_TEMPLATE = Outcome.NEEDS_TEMPLATE
_PERMANENT = Outcome.PERMANENT_FAILURE
_STOP = Outcome.STOP_ACCOUNT


@dataclass(frozen=True, slots=True)
class CodeRule:
    """One code: what Meta means by it, what we do, and how long to wait first (seconds) when known."""

    meaning: str
    outcome: Outcome
    retry_after: float | None = None
    throttle: bool = False  # a rate limit: slow the sender down, which says nothing about Meta failing


_RULES: dict[int, CodeRule] = {
    # Credentials, permissions, policy and billing: nothing sent from this account will work until a person acts.
    0: CodeRule("AuthException: access token invalid", _STOP),
    3: CodeRule("API method, capability or permission issue", _STOP),
    10: CodeRule("Permission denied", _STOP),
    190: CodeRule("Access token expired (the driver re-reads a rotated token and retries once)", _STOP),
    368: CodeRule("Temporarily blocked for policy violations", _STOP),
    131031: CodeRule("Account locked", _STOP),
    131042: CodeRule("Business payment issue", _STOP),
    131045: CodeRule("Phone number registration or certificate error", _STOP),
    # Quality and business-initiated limits: pause the account's sending and alert, retrying only makes it worse.
    131048: CodeRule("Spam rate limit (quality)", _STOP),
    131064: CodeRule("Messaging limit reached (template classification)", _STOP),
    # Throttling and transient failures: the message is fine, send it again later.
    1: CodeRule("API unknown (bad request or server); retry a few times", _RETRY, 5.0),
    2: CodeRule("API service temporarily down or overloaded", _RETRY, 5.0),
    4: CodeRule("App-level API call rate limit", _RETRY, 60.0, throttle=True),
    80007: CodeRule("WABA rate limit reached", _RETRY, 60.0, throttle=True),
    130429: CodeRule("Cloud API throughput reached (80 or 1,000 mps per number)", _RETRY, 1.0, throttle=True),
    131000: CodeRule("Something went wrong (unknown); retry a limited number of times", _RETRY, 5.0),
    131016: CodeRule("Service temporarily unavailable", _RETRY, 5.0),
    131057: CodeRule("Account in maintenance mode", _RETRY, 60.0),
    132069: CodeRule("Flow throttled (10 messages with this Flow in the last hour)", _RETRY, 3600.0),
    133016: CodeRule("Register or deregister rate limit (not a send path)", _RETRY, 60.0),
    # Per recipient: wait for this user only, the others carry on.
    131056: CodeRule("Pair rate limit: too many messages to the same recipient", _RECIPIENT, 6.0),
    131049: CodeRule("Marketing per-user ecosystem limit; resending within 24 h fails again", _RECIPIENT, 86400.0),
    # The 24-hour customer-service window is closed: only a template can reach this user now.
    131047: CodeRule("Re-engagement: more than 24 h since the user's last message", _TEMPLATE),
    # This message will never go out as it is.
    100: CodeRule("Invalid or unsupported parameter", _PERMANENT),
    130472: CodeRule("User's number is part of an experiment", _PERMANENT),
    130497: CodeRule("Account restricted from messaging users in this country", _PERMANENT),
    131008: CodeRule("Required parameter missing", _PERMANENT),
    131009: CodeRule("Parameter value invalid", _PERMANENT),
    131021: CodeRule("Recipient is the sender", _PERMANENT),
    131026: CodeRule("Message undeliverable (not a WhatsApp user, terms not accepted, app too old)", _PERMANENT),
    131030: CodeRule("Recipient not in the allowed list (test number)", _PERMANENT),
    131050: CodeRule("User stopped marketing messages (honour the opt-out)", _PERMANENT),
    131051: CodeRule("Unsupported message type", _PERMANENT),
    131052: CodeRule("Media download failed (retried when the media host answered 429 or 5xx)", _PERMANENT),
    131053: CodeRule("Media upload failed (retried when the media host answered 429 or 5xx)", _PERMANENT),
    131062: CodeRule("Business-scoped user id not supported for this message type; send with `to`", _PERMANENT),
    131063: CodeRule("Marketing templates disabled on the Cloud API (use the MM API)", _PERMANENT),
    132000: CodeRule("Template parameter count mismatch", _PERMANENT),
    132001: CodeRule("Template does not exist in this language or is not approved", _PERMANENT),
    132005: CodeRule("Template text too long", _PERMANENT),
    132007: CodeRule("Template content policy violation", _PERMANENT),
    132008: CodeRule("Template parameter value invalid", _PERMANENT),
    132012: CodeRule("Template parameter format mismatch", _PERMANENT),
    132015: CodeRule("Template paused (low quality); use another template", _PERMANENT),
    132016: CodeRule("Template disabled (low quality); use another template", _PERMANENT),
}
# 200-299: API permission errors, one rule for the whole range.
_RULES.update({code: CodeRule("API permission", _STOP) for code in range(200, 300)})

WHATSAPP_ERROR_CODES: Mapping[int, CodeRule] = MappingProxyType(_RULES)

_MEDIA_CODES = frozenset({131052, 131053})
_HOST_STATUS = re.compile(r"http code (\d{3})", re.IGNORECASE)


def classify_whatsapp(error: ProviderError) -> Outcome:
    """The outcome for any error: the table, then is_transient, then the HTTP status; never raises."""
    local = classify_local(error)
    if local is not None:
        return local
    rule = _rule(error)
    if rule is None:
        return _RETRY if error.is_transient else retry_by_http_status(error.http_status)
    if _as_int(error.code) in _MEDIA_CODES and _media_host_was_transient(error):
        return _RETRY
    # Meta's own is_transient wins over a "permanent" reading, never over stop/window/recipient decisions.
    if rule.outcome is _PERMANENT and error.is_transient:
        return _RETRY
    return rule.outcome


def is_throttle(error: ProviderError) -> bool:
    """Whether Meta said "slow down" (a rate limit code, or HTTP 429), rather than that something failed."""
    rule = _rule(error)
    return rule.throttle if rule is not None else error.http_status == 429


def retry_after_for(error: ProviderError) -> float | None:
    """Seconds to wait before the next attempt, when the code says (1 s for throughput, 6 s for the pair)."""
    rule = _rule(error)
    return rule.retry_after if rule else None


def _rule(error: ProviderError) -> CodeRule | None:
    """The table's rule for the error's code, None for a code we do not know (or not a number)."""
    code = _as_int(error.code)
    return WHATSAPP_ERROR_CODES.get(code) if code is not None else None


def _media_host_was_transient(error: ProviderError) -> bool:
    # Meta relays the media host's answer in the text, e.g. "...weblink failed with http code 429".
    text = f"{error.message} {error.details or ''}"
    found = _HOST_STATUS.search(text)
    return found is not None and (found.group(1) == "429" or found.group(1).startswith("5"))


def _as_int(code: str) -> int | None:
    try:
        return int(code)
    except ValueError:
        return None
