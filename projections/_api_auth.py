"""Who is asking the read API: a client signing like POST /v1/events, or a console session; both name one tenant."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from connectors._ingest_clients import IngestClients
from connectors._ingest_signing import CLIENT_HEADER, REPLAY_WINDOW_SECONDS, verify_signature
from projections._api_gate import Gate
from projections._api_keys import ApiKeys
from projections._api_limits import LimitsWatcher, RateLimiter
from projections._api_reads import ApiError

__all__ = ["SESSION_COOKIE", "Authenticator", "ConsoleSessions"]

SESSION_COOKIE: Final = "sb_console"


def _digest(secret: str) -> str:
    """Tokens and session ids are kept hashed: a dict lookup then reveals nothing about the secret's bytes."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class ConsoleSessions:
    """One-time console tokens, exchanged once for a session (a cookie) bound to the token's tenant."""

    clock: Callable[[], float] = time.time
    token_ttl: float = 600.0  # seconds a printed console URL can be opened
    session_ttl: float = 8 * 3600.0  # seconds a console session lasts
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _sessions: dict[str, tuple[str, float]] = field(default_factory=dict)

    def issue(self, tenant: str) -> str:
        """A new one-time token for `tenant` (to print in the console URL; never stored in the clear)."""
        token = secrets.token_urlsafe(32)
        self._tokens[_digest(token)] = (tenant, self.clock() + self.token_ttl)
        return token

    def exchange(self, token: str) -> str | None:
        """A new session id for a valid unused token (which is then spent), None otherwise."""
        entry = self._tokens.pop(_digest(token), None)
        if entry is None or entry[1] < self.clock():
            return None
        session = secrets.token_urlsafe(32)
        self._sessions[_digest(session)] = (entry[0], self.clock() + self.session_ttl)
        return session

    def tenant(self, session: str) -> str | None:
        """The session's tenant while it lasts."""
        entry = self._sessions.get(_digest(session))
        if entry is None or entry[1] < self.clock():
            self._sessions.pop(_digest(session), None)
            return None
        return entry[0]


@dataclass
class Authenticator:
    """The tenant of a request: from its signature (client -> tenant), else from its console session."""

    clients: IngestClients
    sessions: ConsoleSessions = field(default_factory=ConsoleSessions)
    clock: Callable[[], float] = time.time
    replay_window: float = REPLAY_WINDOW_SECONDS
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(LimitsWatcher(None)))
    gate: Gate = field(init=False)

    def __post_init__(self) -> None:
        keys = ApiKeys({client.client_id: client.api_key_hash for client in self.clients})
        self.gate = Gate(self.clients, keys, self.limiter, self.clock, self.replay_window)

    def tenant(self, request: web.Request) -> str:
        """Raises Refused (401/403, as POST /v1/events does) or ApiError (401 invalid_session, 429)."""
        session = request.cookies.get(SESSION_COOKIE)
        if session is not None and CLIENT_HEADER not in request.headers:
            self.limiter.address(request.remote or "-")
            tenant = self.sessions.tenant(session)
            if tenant is None:
                raise ApiError(401, "invalid_session", "the console session is unknown or expired; open the "
                                                       "console URL `switchboard api` prints")
            return tenant
        return self._signed(request)

    def _signed(self, request: web.Request) -> str:
        client, signed = self.gate.client(request, key_required=False)
        # The request target is signed with its query (GET has no body to carry the parameters), and the
        # body is empty: a signature for one question cannot be replayed to ask another.
        verify_signature(signed, client.secret.get().reveal(), request.method, request.raw_path, b"")
        return client.tenant
