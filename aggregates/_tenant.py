"""The Tenant aggregate: API clients with hashed secrets, the rate-limit tier and callback URLs."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit
from uuid import UUID

from aggregates._base import DomainError, SwitchboardAggregate, derived_id
from aggregates._secrets import dummy_hash, hash_secret, verify_secret
from aggregates._values import CallbackKind, RateLimitTier

__all__ = ["ApiClient", "Tenant"]

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_MIN_SECRET_LENGTH = 24


@dataclass(frozen=True)
class ApiClient:
    """An API client; only a scrypt hash of its secret is ever stored."""

    client_id: str
    label: str
    secret_hash: str
    revoked: bool = False


class Tenant(SwitchboardAggregate):
    """A customer of Switchboard; its own id is the tenant id on every event it owns."""

    AGGREGATE_TYPE = "Tenant"

    class Registered(SwitchboardAggregate.Created):
        """The tenant was onboarded."""

        slug: str
        name: str
        rate_limit_tier: RateLimitTier

    class ApiClientAdded(SwitchboardAggregate.Event):
        """A client was issued."""

        client_id: str
        label: str
        secret_hash: str

        def apply(self, aggregate: Tenant) -> None:
            """Add the client."""
            client = ApiClient(self.client_id, self.label, self.secret_hash)
            aggregate.api_clients = {**aggregate.api_clients, self.client_id: client}

    class ApiClientRevoked(SwitchboardAggregate.Event):
        """A client may no longer authenticate."""

        client_id: str

        def apply(self, aggregate: Tenant) -> None:
            """Mark the client revoked; it stays listed for audit."""
            revoked = replace(aggregate.api_clients[self.client_id], revoked=True)
            aggregate.api_clients = {**aggregate.api_clients, self.client_id: revoked}

    class RateLimitTierChanged(SwitchboardAggregate.Event):
        """The tenant moved tier."""

        previous_tier: RateLimitTier
        new_tier: RateLimitTier

        def apply(self, aggregate: Tenant) -> None:
            """Take the new tier."""
            aggregate.rate_limit_tier = self.new_tier

    class CallbackUrlSet(SwitchboardAggregate.Event):
        """Where one kind of callback goes."""

        kind: CallbackKind
        url: str

        def apply(self, aggregate: Tenant) -> None:
            """Set the URL."""
            aggregate.callback_urls = {**aggregate.callback_urls, self.kind: self.url}

    class CallbackUrlRemoved(SwitchboardAggregate.Event):
        """No more callbacks of one kind."""

        kind: CallbackKind

        def apply(self, aggregate: Tenant) -> None:
            """Drop the URL."""
            aggregate.callback_urls = {k: v for k, v in aggregate.callback_urls.items() if k != self.kind}

    def __init__(self, slug: str, name: str, rate_limit_tier: RateLimitTier) -> None:
        self.tenant_id = str(self.id)
        self.slug = slug
        self.name = name
        self.rate_limit_tier = rate_limit_tier
        # Replaced, never mutated in place: snapshots share these with live aggregates.
        self.api_clients: Mapping[str, ApiClient] = {}
        self.callback_urls: Mapping[CallbackKind, str] = {}

    @staticmethod
    def create_id(slug: str) -> UUID:
        """One tenant per slug."""
        return derived_id("tenant", slug)

    @classmethod
    def register(cls, *, slug: str, name: str, rate_limit_tier: RateLimitTier = RateLimitTier.SANDBOX) -> Tenant:
        """A new tenant; the slug is its stable, URL-safe handle."""
        if not _SLUG.fullmatch(slug):
            raise DomainError(f"slug {slug!r} must be 2-63 lowercase letters, digits or dashes")
        if not name.strip():
            raise DomainError("a tenant needs a name")
        return cls._create(cls.Registered, slug=slug, name=name, rate_limit_tier=rate_limit_tier)

    def add_api_client(self, label: str, secret: str | None = None) -> tuple[str, str]:
        """Issues a client; returns (client_id, secret). The secret is shown this once and stored only hashed."""
        if not label.strip():
            raise DomainError("an API client needs a label")
        secret = secret if secret is not None else secrets.token_urlsafe(32)
        if len(secret) < _MIN_SECRET_LENGTH:
            raise DomainError(f"API client secrets need at least {_MIN_SECRET_LENGTH} characters")
        client_id = f"sbc_{secrets.token_hex(8)}"
        self.trigger_event(self.ApiClientAdded, client_id=client_id, label=label, secret_hash=hash_secret(secret))
        return client_id, secret

    def revoke_api_client(self, client_id: str) -> bool:
        """Revokes a client; False (no event) if it is already revoked. Unknown ids are an error."""
        client = self.api_clients.get(client_id)
        if client is None:
            raise DomainError(f"tenant {self.slug} has no API client {client_id}")
        if client.revoked:
            return False
        self.trigger_event(self.ApiClientRevoked, client_id=client_id)
        return True

    def verify_api_client(self, client_id: str, secret: str) -> bool:
        """Whether the credentials are valid; takes as long for unknown or revoked clients as for real ones."""
        client = self.api_clients.get(client_id)
        usable = client is not None and not client.revoked
        # Always run one scrypt check so response time does not reveal which client ids exist.
        matches = verify_secret(secret, client.secret_hash if client is not None and usable else dummy_hash())
        return usable and matches

    def change_rate_limit_tier(self, tier: RateLimitTier) -> bool:
        """Moves the tenant to a tier; False (no event) if it is already there."""
        if tier == self.rate_limit_tier:
            return False
        self.trigger_event(self.RateLimitTierChanged, previous_tier=self.rate_limit_tier, new_tier=tier)
        return True

    def set_callback_url(self, kind: CallbackKind, url: str) -> bool:
        """Sets where a kind of callback goes (https only, no credentials in the URL); False if unchanged."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
            raise DomainError(f"callback URL {url!r} must be https://host/... without user or password")
        if self.callback_urls.get(kind) == url:
            return False
        self.trigger_event(self.CallbackUrlSet, kind=kind, url=url)
        return True

    def remove_callback_url(self, kind: CallbackKind) -> bool:
        """Stops a kind of callback; False (no event) if none was set."""
        if kind not in self.callback_urls:
            return False
        self.trigger_event(self.CallbackUrlRemoved, kind=kind)
        return True
