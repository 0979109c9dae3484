"""API keys: presented on every request, checked against the client's scrypt hash once, then by a fast digest."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from aggregates._secrets import hash_secret, verify_secret
from projections._api_reads import ApiError

__all__ = ["API_KEY_HEADER", "ApiKeys", "new_api_key"]

API_KEY_HEADER: Final = "X-Switchboard-Key"


def new_api_key() -> tuple[str, str]:
    """A fresh key and its scrypt hash: the key goes to the client once, the hash into the clients file."""
    import secrets

    key = f"sbk_{secrets.token_urlsafe(32)}"
    return key, hash_secret(key)


def _fast(client_id: str, key: str) -> bytes:
    return hashlib.sha256(f"{client_id}\0{key}".encode()).digest()


class ApiKeys:
    """Per-client key hashes; a key that passed scrypt once is remembered by its SHA-256 for the process's life."""

    def __init__(self, hashes: Mapping[str, str | None]) -> None:
        self._hashes = dict(hashes)
        # scrypt costs ~50 ms and 16 MiB by design; per request that would be the API's whole budget.
        self._verified: dict[str, bytes] = {}

    def has_key(self, client_id: str) -> bool:
        """Whether this client was given an API key (then every request must present it)."""
        return self._hashes.get(client_id) is not None

    def check(self, client_id: str, presented: str | None) -> None:
        """Raises 401 missing_api_key or invalid_api_key unless `presented` is the client's key."""
        stored = self._hashes.get(client_id)
        if not presented:
            raise ApiError(401, "missing_api_key", f"{API_KEY_HEADER} is required")
        fast = _fast(client_id, presented)
        known = self._verified.get(client_id)
        if known is not None and hmac.compare_digest(known, fast):
            return
        if stored is None or not verify_secret(presented, stored):
            raise ApiError(401, "invalid_api_key", f"{API_KEY_HEADER} is not this client's key")
        self._verified[client_id] = fast
