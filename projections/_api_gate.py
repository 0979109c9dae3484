"""Who is asking, from the headers alone: the limit per IP, the signature headers, the API key and the tier."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from connectors._ingest_clients import IngestClient, IngestClients
from connectors._ingest_errors import Refused
from connectors._ingest_signing import REPLAY_WINDOW_SECONDS, SignedHeaders
from projections._api_keys import API_KEY_HEADER, ApiKeys
from projections._api_limits import RateLimiter

__all__ = ["Gate"]


@dataclass
class Gate:
    """Who is asking, checked from the headers before the body is read: IP limit, signature headers, key, tier."""

    clients: IngestClients
    keys: ApiKeys
    limiter: RateLimiter
    clock: Callable[[], float] = time.time
    replay_window: float = REPLAY_WINDOW_SECONDS

    def client(self, request: web.Request, *, key_required: bool) -> tuple[IngestClient, SignedHeaders]:
        """The client whose headers these are; its body signature is checked once the body is read."""
        self.limiter.address(request.remote or "-")
        signed = SignedHeaders(request.headers)
        client = self.clients.get(signed.client_id)
        if client is None:
            raise Refused("unknown_client", "no client with this X-Switchboard-Client id")
        signed.check_window(self.clock(), self.replay_window)
        if key_required or self.keys.has_key(client.client_id):
            self.keys.check(client.client_id, request.headers.get(API_KEY_HEADER))
        self.limiter.client(client.client_id)
        return client, signed
