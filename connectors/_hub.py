"""Meta-style webhook security: the GET hub.challenge handshake and X-Hub-Signature-256 over the raw body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from connectors._errors import HandshakeRejected, SignatureInvalid, SignatureMissing

__all__ = ["SIGNATURE_HEADER", "answer_hub_challenge", "header_value", "hub_signature", "verify_hub_signature"]

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def hub_signature(raw_body: bytes, app_secret: str) -> str:
    """The header value Meta sends: 'sha256=' + lowercase hex HMAC-SHA256(app secret, raw body)."""
    return _PREFIX + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_hub_signature(headers: Mapping[str, str], raw_body: bytes, app_secret: str) -> None:
    """Raises SignatureMissing (401) or SignatureInvalid (403); checks the exact bytes, before any JSON parsing."""
    received = header_value(headers, SIGNATURE_HEADER)
    if not received:
        raise SignatureMissing(f"no {SIGNATURE_HEADER} header")
    if not received.startswith(_PREFIX):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not start with {_PREFIX}")
    expected = hub_signature(raw_body, app_secret)
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header is attacker-controlled.
    if not hmac.compare_digest(expected.encode(), received.strip().lower().encode("utf-8", "replace")):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")


def answer_hub_challenge(query: Mapping[str, str], verify_token: str) -> str:
    """The body for a 200 answer to the GET handshake (the hub.challenge value); HandshakeRejected (403) otherwise."""
    mode = query.get("hub.mode")
    token = query.get("hub.verify_token") or ""
    challenge = query.get("hub.challenge")
    if mode != "subscribe":
        raise HandshakeRejected("hub.mode is not 'subscribe'")
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise HandshakeRejected("hub.verify_token does not match")
    if not challenge:
        raise HandshakeRejected("no hub.challenge to echo")
    return challenge


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name from any mapping (a plain dict or aiohttp's CIMultiDict)."""
    direct = headers.get(name)
    if direct is not None:
        return direct
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)
