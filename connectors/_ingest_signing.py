"""Request signing for the ingestion endpoint: HMAC-SHA256 over version, timestamp, method, path and raw body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from connectors._hub import header_value
from connectors._ingest_errors import Refused

__all__ = [
    "CLIENT_HEADER",
    "IDEMPOTENCY_HEADER",
    "REPLAY_WINDOW_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignedHeaders",
    "ingest_signature",
    "signed_headers",
    "verify_signature",
]

CLIENT_HEADER: Final = "X-Switchboard-Client"
TIMESTAMP_HEADER: Final = "X-Switchboard-Timestamp"
SIGNATURE_HEADER: Final = "X-Switchboard-Signature"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
REPLAY_WINDOW_SECONDS: Final = 300
_VERSION: Final = "v1"


def ingest_signature(secret: str, timestamp: int, method: str, path: str, body: bytes) -> str:
    """'v1=' + hex HMAC-SHA256(secret, "v1:{timestamp}:{METHOD}:{path}:" + body)."""
    # Method and path are signed too, so a signature for one endpoint cannot be replayed against another.
    prefix = f"{_VERSION}:{timestamp}:{method.upper()}:{path}:".encode()
    return f"{_VERSION}={hmac.new(secret.encode(), prefix + body, hashlib.sha256).hexdigest()}"


def signed_headers(client_id: str, secret: str, timestamp: int, method: str, path: str,
                   body: bytes) -> dict[str, str]:
    """The three authentication headers for one request."""
    return {CLIENT_HEADER: client_id, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: ingest_signature(secret, timestamp, method, path, body)}


class SignedHeaders:
    """The authentication headers of a request, read before the body (no secret needed yet)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        client, stamp, signature = (header_value(headers, name) for name in
                                    (CLIENT_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
        if not client or not stamp or not signature:
            raise Refused("missing_signature",
                          f"{CLIENT_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are all required")
        self.client_id, self.signature = client.strip(), signature.strip()
        self.timestamp = _unix_seconds(stamp.strip())

    def check_window(self, now: float, window: float = REPLAY_WINDOW_SECONDS) -> None:
        """Refuses a timestamp further than `window` from now: a captured request cannot be replayed later."""
        if abs(now - self.timestamp) > window:
            raise Refused("timestamp_expired", f"{TIMESTAMP_HEADER} is more than {window:g} s away from the "
                          "server's clock; sign every attempt with the current time")


def verify_signature(signed: SignedHeaders, secret: str, method: str, path: str, body: bytes) -> None:
    """Constant-time comparison of the given signature with the expected one over the exact bytes received."""
    expected = ingest_signature(secret, signed.timestamp, method, path, body)
    if not hmac.compare_digest(signed.signature.encode("utf-8", "replace"), expected.encode()):
        raise Refused("bad_signature", f"{SIGNATURE_HEADER} does not match the request (secret, timestamp, "
                      "method, path and the raw body are all signed)")


def _unix_seconds(stamp: str) -> int:
    if not stamp.isascii() or not stamp.isdigit():
        raise Refused("timestamp_expired", f"{TIMESTAMP_HEADER} must be unix seconds, e.g. 1700000000")
    return int(stamp)
