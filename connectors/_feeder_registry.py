"""Each tenant's callback URLs, folded from the tenant events (CallbackUrlSet / CallbackUrlRemoved)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from aggregates import CallbackKind
from schemas import DecodedEvent

__all__ = ["CallbackRegistry"]


class CallbackRegistry:
    """Where each tenant wants each kind of callback, as of the tenant events applied so far.

    It is the fold of `sb.events.tenant` (small, rebuilt from the beginning on every start): the same rules as the
    Tenant aggregate, and, like `aggregates.fold`, an event at or below a tenant's applied version is a redelivery.
    """

    def __init__(self) -> None:
        self._urls: dict[str, dict[CallbackKind, str]] = {}
        self._versions: dict[str, int] = {}

    @classmethod
    def fold(cls, events: Iterable[DecodedEvent]) -> CallbackRegistry:
        """A registry built from tenant events in log order."""
        registry = cls()
        for event in events:
            registry.apply(event)
        return registry

    def apply(self, event: DecodedEvent) -> bool:
        """Applies one tenant event; False for a redelivery. Other tenant event types only move the version."""
        envelope = event.payload["envelope"]
        aggregate, version = envelope["aggregate_id"], envelope["aggregate_version"]
        if version <= self._versions.get(aggregate, 0):
            return False
        self._versions[aggregate] = version
        if event.event_type == "CallbackUrlSet":
            self._set(envelope["tenant_id"], CallbackKind(event.payload["kind"]), event.payload["url"])
        elif event.event_type == "CallbackUrlRemoved":
            self._remove(envelope["tenant_id"], CallbackKind(event.payload["kind"]))
        return True

    def url(self, tenant_id: str, kind: CallbackKind = CallbackKind.MESSAGE_STATUS) -> str | None:
        """The tenant's URL for this kind of callback, or None."""
        return self._urls.get(tenant_id, {}).get(kind)

    def urls(self, tenant_id: str) -> Mapping[CallbackKind, str]:
        """Every URL of the tenant, by kind (read-only)."""
        return MappingProxyType(dict(self._urls.get(tenant_id, {})))

    def _set(self, tenant_id: str, kind: CallbackKind, url: str) -> None:
        self._urls.setdefault(tenant_id, {})[kind] = url

    def _remove(self, tenant_id: str, kind: CallbackKind) -> None:
        urls = self._urls.get(tenant_id, {})
        urls.pop(kind, None)
        if not urls:
            self._urls.pop(tenant_id, None)
