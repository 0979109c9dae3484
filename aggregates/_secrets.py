"""API client secrets: scrypt hashes that carry their own parameters, checked in constant time."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os

__all__ = ["hash_secret", "verify_secret"]

# scrypt cost (OWASP's minimum): about 16 MiB and 50 ms per check, which is what makes a leaked hash expensive.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32
# Bounds for parameters read back from a stored hash, so a tampered event cannot make a check eat memory.
_MAX_N, _MAX_R, _MAX_P = 2**17, 16, 4


def hash_secret(secret: str) -> str:
    """'scrypt$n$r$p$salt$key' with base64 salt and key; a fresh salt each time."""
    salt = os.urandom(_SALT_BYTES)
    key = _scrypt(secret, salt, _N, _R, _P, _KEY_BYTES)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(key)])


def verify_secret(secret: str, encoded: str) -> bool:
    """Whether the secret matches the stored hash; compares in constant time, False for malformed hashes."""
    parsed = _parse(encoded)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    return hmac.compare_digest(_scrypt(secret, salt, n, r, p, len(key)), key)


@functools.cache
def dummy_hash() -> str:
    """A valid hash of a random secret: checking against it costs what a real check costs."""
    return hash_secret(base64.b64encode(os.urandom(24)).decode())


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # scrypt needs 128 * n * r bytes; allow twice that so OpenSSL's own overhead never trips maxmem.
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=256 * n * r + 2**20)


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(x.isdigit() for x in parts[1:4]):
        return None
    n, r, p = (int(x) for x in parts[1:4])
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        return None
    try:
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except binascii.Error:
        return None
    return (n, r, p, salt, key) if salt and key else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
