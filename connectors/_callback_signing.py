"""Signing status callbacks to business systems, and the check their receivers run (HMAC-SHA256, replay window)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from connectors._errors import SignatureInvalid, SignatureMissing
from connectors._hub import header_value
from connectors._privacy import Secret

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "CallbackSigner",
    "callback_signature",
    "verify_callback",
]

TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
SIGNATURE_HEADER = "X-Switchboard-Signature"
EVENT_ID_HEADER = "X-Switchboard-Event-Id"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300.0

SecretLike = Secret | str | bytes


def _key(secret: SecretLike) -> bytes:
    if isinstance(secret, Secret):
        return secret.reveal().encode("utf-8")
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def callback_signature(secret: SecretLike, timestamp: int, body: bytes) -> str:
    """'v1=' + hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body): the timestamp is signed with the body."""
    digest = hmac.new(_key(secret), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


class CallbackSigner:
    """Signs one callback body with the current unix time; called again for every attempt (a fresh timestamp)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def sign(self, secret: Secret, body: bytes) -> dict[str, str]:
        """The X-Switchboard-Timestamp and X-Switchboard-Signature headers for these exact bytes."""
        timestamp = int(self._clock())
        return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: callback_signature(secret, timestamp, body)}


def verify_callback(
    headers: Mapping[str, str],
    body: bytes,
    secret: SecretLike,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """For receivers: checks the signature of the exact received bytes and the replay window; returns the timestamp.

    Raises SignatureMissing (answer 401) without both headers, SignatureInvalid (answer 403) for a malformed header,
    a timestamp more than `tolerance` seconds away from `now` (default: the current time), or no matching `v1=`
    signature. Comparison is constant-time. The header may list several comma-separated signatures (for a secret
    rotation); one match is enough.
    """
    stamp = header_value(headers, TIMESTAMP_HEADER)
    signatures = header_value(headers, SIGNATURE_HEADER)
    if not stamp or not signatures:
        raise SignatureMissing(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
    stamp = stamp.strip()
    if not stamp.isascii() or not stamp.isdigit():
        raise SignatureInvalid(f"{TIMESTAMP_HEADER} is not unix seconds")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureInvalid(f"{TIMESTAMP_HEADER} is outside the {tolerance:g} s tolerance (replayed or clock skew)")
    expected = callback_signature(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in signatures.split(","):
        # compare every candidate (no early exit) so the time taken does not depend on which one matched
        matched |= hmac.compare_digest(candidate.strip().encode("utf-8", "replace"), expected)
    if not matched:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")
    return timestamp
