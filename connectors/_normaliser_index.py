"""The normaliser's address index: (tenant, channel, address) -> contact id, folded from the contact events."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aggregates import Channel
from connectors._privacy import mask_phone
from schemas import DecodedEvent

__all__ = ["AddressIndex", "auto_external_ref", "normal_address"]

_log = logging.getLogger(__name__)

# Channels whose addresses are phone numbers: WhatsApp sends wa_id as bare digits, the CRM writes E.164 with "+".
_PHONE_CHANNELS = frozenset({Channel.WHATSAPP.value, Channel.SMS.value})

Key = tuple[str, str, str]


def normal_address(channel: str, address: str) -> str:
    """One spelling per address: '+' and the digits for phone channels ('49 170-1' -> '+491701'), else trimmed."""
    if channel in _PHONE_CHANNELS:
        digits = "".join(ch for ch in address if ch.isdigit())
        return f"+{digits}" if digits else address.strip()
    return address.strip()


def auto_external_ref(channel: str, address: str) -> str:
    """The external_ref of a contact the normaliser registers for an unknown sender: '<channel>:<address>'."""
    return f"{channel}:{normal_address(channel, address)}"


class AddressIndex:
    """Which contact an address belongs to, per tenant and channel, as of the ContactRegistered events applied.

    Contacts have no event that changes their addresses, so registration is all there is to fold. Two contacts of
    one tenant may share an address (a sender we registered ourselves, later registered by the CRM under its own
    ref): the CRM's contact wins, because that is the one the tenant messages and holds consent for; between two
    of the same kind the first registered stays.
    """

    def __init__(self) -> None:
        self._contacts: dict[Key, str] = {}
        self._sharing: dict[Key, list[str]] = {}  # every contact registered with the address, in log order
        self._auto: set[str] = set()  # contacts registered under auto_external_ref

    def __len__(self) -> int:
        return len(self._contacts)

    @classmethod
    def fold(cls, events: Iterable[DecodedEvent]) -> AddressIndex:
        """An index built from contact events in log order."""
        index = cls()
        for event in events:
            index.apply(event)
        return index

    def apply(self, event: DecodedEvent) -> bool:
        """Applies one contact event; True when it changed the index (only ContactRegistered can)."""
        if event.event_type != "ContactRegistered":
            return False
        envelope = event.payload["envelope"]
        tenant, contact_id = envelope["tenant_id"], envelope["aggregate_id"]
        addresses: dict[str, str] = event.payload["addresses"]
        auto = any(event.payload["external_ref"] == auto_external_ref(ch, a) for ch, a in addresses.items())
        if auto:
            self._auto.add(contact_id)
        changed = False
        for channel, address in addresses.items():
            changed |= self._put((tenant, channel, normal_address(channel, address)), contact_id)
        return changed

    def lookup(self, tenant: str, channel: str, address: str) -> str | None:
        """The contact id for this address of this tenant on this channel, or None."""
        return self._contacts.get((tenant, channel, normal_address(channel, address)))

    def sharing(self, tenant: str, channel: str, address: str) -> tuple[str, ...]:
        """Every contact of this tenant with this address on this channel (a family's one phone, a sender we
        registered before the CRM did): what the address says of itself, a STOP, holds for each of them."""
        return tuple(self._sharing.get((tenant, channel, normal_address(channel, address)), ()))

    def _put(self, key: Key, contact_id: str) -> bool:
        sharing = self._sharing.setdefault(key, [])
        if contact_id not in sharing:
            sharing.append(contact_id)
        known = self._contacts.get(key)
        if known == contact_id:
            return False
        if known is not None and not (known in self._auto and contact_id not in self._auto):
            _log.info("address %s of tenant %s on %s already belongs to contact %s; %s keeps it",
                      mask_phone(key[2]), key[0], key[1], known, known)
            return False
        self._contacts[key] = contact_id
        return True
