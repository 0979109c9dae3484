"""The demo's marketing campaign: N recipients in segments (opted in, opted out, asleep, not on WhatsApp), seeded."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aggregates import Message
from switchboard._demo_scenario import MARKETING_TEMPLATE, Customer, Zone, pick_zones
from switchboard.config import PipelineConfig
from switchboard.errors import SwitchboardError

__all__ = ["MAX_CAMPAIGN", "NO_WHATSAPP", "OPTED_IN", "OPTED_OUT", "QUIET", "SEGMENTS", "SHARES", "Campaign",
           "build_campaign", "contact_of"]

# Who the campaign reaches, and what the pipeline does with them.
OPTED_IN, OPTED_OUT, QUIET, NO_WHATSAPP = "opted in", "opted out", "quiet hours", "not on WhatsApp"
SEGMENTS = (OPTED_IN, OPTED_OUT, QUIET, NO_WHATSAPP)
# Shares of the recipients (the rest are opted in): revoked consent is suppressed, a recipient asleep in their zone
# deferred, a number not on WhatsApp fails there and falls back to SMS.
SHARES = {OPTED_OUT: 0.08, QUIET: 0.10, NO_WHATSAPP: 0.05}
CHANNELS = ("whatsapp", "sms")  # where the recipients consent to marketing
REPLY_SHARE = 0.02  # of the opted-in recipients: they answer the offer, which opens the 24-hour window
MAX_REPLIES = 200
MAX_CAMPAIGN = 100_000  # unique numbers per zone run out beyond this
REPLY_TEXTS = ("Is the offer valid in stores too?", "Great, thanks!", "Which sizes do you have?", "Hi, how long?")
FREE_TEXT = "Hi {{ first_name }}, thanks for your message! Yes: {{ discount }} off in every store until Sunday."


@dataclass(frozen=True)
class Campaign:
    """The recipients (their segment by ref), who will reply, and the commands that play it."""

    tenant: str
    at: datetime
    recipients: tuple[Customer, ...]
    segments: dict[str, str]  # ref -> segment
    repliers: frozenset[str]  # refs that answer once the offer is read
    discount: str = "20%"

    def shares(self) -> dict[str, int]:
        """Recipients per segment (every segment present, zero included)."""
        counts = Counter(self.segments.values())
        return {segment: counts.get(segment, 0) for segment in SEGMENTS}

    def contact_commands(self) -> list[tuple[str, dict[str, Any]]]:
        """Per recipient: the contact, the marketing consent they gave at sign-up and, opted out, its revocation."""
        commands: list[tuple[str, dict[str, Any]]] = []
        for c in self.recipients:
            cid = c.contact_id(self.tenant)
            commands.append((cid, {"kind": "contact", "v": 1, "command_id": f"contact-{c.ref}", "tenant": self.tenant,
                                   "contact_id": cid, "contact": _contact(c)}))
            # The sign-up form asks for both channels, so the offer may fall back to SMS where WhatsApp fails.
            commands += [(cid, self._consent(c, "grant", "demo:signup-form", channel)) for channel in CHANNELS]
            if self.segments[c.ref] == OPTED_OUT:
                commands += [(cid, self._consent(c, "revoke", "demo:unsubscribe-link", ch)) for ch in CHANNELS]
        return commands

    def request_commands(self) -> list[tuple[str, dict[str, Any]]]:
        """The offer to every recipient, at low priority (transactional messages go first)."""
        return [(c.contact_id(self.tenant), {
            "kind": "request", "v": 1, "command_id": f"req-{self.key(c)}", "tenant": self.tenant,
            "contact_id": c.contact_id(self.tenant), "contact": _contact(c), "requested_by": "demo:campaign",
            "message": {"idempotency_key": self.key(c), "category": "marketing", "template": MARKETING_TEMPLATE,
                        "parameters": {"first_name": c.first_name, "discount": self.discount}, "priority": "low"}})
            for c in self.recipients]

    def reply_request(self, customer: Customer) -> tuple[str, dict[str, Any]]:
        """The free-text answer to a recipient who wrote back (only allowed inside the window their message opened)."""
        cid = customer.contact_id(self.tenant)
        return cid, {"kind": "request", "v": 1, "command_id": f"req-{self.reply_key(customer)}", "tenant": self.tenant,
                     "contact_id": cid, "contact": _contact(customer), "requested_by": "demo:agent",
                     "message": {"idempotency_key": self.reply_key(customer), "category": "service",
                                 "body": FREE_TEXT, "priority": "normal",
                                 "parameters": {"first_name": customer.first_name, "discount": self.discount}}}

    def message_ids(self) -> list[str]:
        return [str(Message.create_id(self.tenant, self.key(c))) for c in self.recipients]

    def reply_message_id(self, customer: Customer) -> str:
        return str(Message.create_id(self.tenant, self.reply_key(customer)))

    @staticmethod
    def key(customer: Customer) -> str:
        return f"demo-campaign-{customer.ref}"

    @staticmethod
    def reply_key(customer: Customer) -> str:
        return f"demo-reply-{customer.ref}"

    @staticmethod
    def reply_text(customer: Customer) -> str:
        return REPLY_TEXTS[int(customer.ref.rsplit("-", 1)[-1]) % len(REPLY_TEXTS)]

    @property
    def undeliverable(self) -> frozenset[str]:
        """Numbers (digits only) the WhatsApp simulator fails with 131026."""
        return frozenset(c.phone.lstrip("+") for c in self.recipients if c.undeliverable)

    def _consent(self, c: Customer, action: str, source: str, channel: str) -> dict[str, Any]:
        cid = c.contact_id(self.tenant)
        return {"kind": "consent", "v": 1, "command_id": f"consent-{action}-{channel}-{c.ref}", "tenant": self.tenant,
                "contact_id": cid, "action": action, "channel": channel, "category": "marketing",
                "source": source, "contact": _contact(c)}


def _contact(c: Customer) -> dict[str, Any]:
    return {"external_ref": c.ref, "addresses": {"whatsapp": c.phone, "sms": c.phone}, "attributes": c.attributes()}


def build_campaign(size: int, config: PipelineConfig, at: datetime, seed: int = 11) -> Campaign:
    """`size` recipients, the segments in their shares (quiet hours only if a zone is at night), shuffled by `seed`."""
    if not 0 <= size <= MAX_CAMPAIGN:
        raise SwitchboardError(f"--campaign must be between 0 and {MAX_CAMPAIGN:,}")
    if not config.tenants:
        raise SwitchboardError("the pipeline declares no tenant to play the demo for")
    rng = random.Random(seed)
    day, night = pick_zones(config.defaults.quiet_hours, at, config.tenants[0].timezone)
    if not day:
        raise SwitchboardError("no time zone is outside the quiet hours right now; the demo needs one")
    segments = _segments(size, night is not None, rng)
    recipients = [_recipient(i, segment, day, night, rng) for i, segment in enumerate(segments)]
    opted_in = [c.ref for c, s in zip(recipients, segments, strict=True) if s == OPTED_IN]
    replies = min(MAX_REPLIES, round(len(opted_in) * REPLY_SHARE))
    repliers = frozenset(rng.sample(opted_in, replies)) if replies else frozenset()
    return Campaign(config.tenants[0].id, at, tuple(recipients), {c.ref: s for c, s in zip(recipients, segments,
                                                                                       strict=True)}, repliers)


def _segments(size: int, night: bool, rng: random.Random) -> list[str]:
    counts = {segment: round(size * share) for segment, share in SHARES.items() if night or segment != QUIET}
    segments = [segment for segment, count in counts.items() for _ in range(count)]
    segments += [OPTED_IN] * (size - len(segments))
    rng.shuffle(segments)
    return segments


def _recipient(index: int, segment: str, day: Sequence[Zone], night: Zone | None, rng: random.Random) -> Customer:
    zone, city, prefix = night if segment == QUIET and night else rng.choice(day)
    # Unique per index: a leading 9 (no scenario customer's number starts so) then the index, padded to 13 digits.
    width = 14 - len(prefix) - 1
    phone = f"{prefix}9{index % 10 ** width:0{width}d}"
    name = _NAMES[index % len(_NAMES)]
    tags = ("vip",) if rng.random() < 0.15 else ()
    return Customer(ref=f"mkt-{index + 1:06d}", first_name=name, phone=phone, timezone=zone, city=city, tags=tags,
                    marketing_consent=segment != OPTED_OUT, undeliverable=segment == NO_WHATSAPP)


_NAMES = ("Aiko", "Bruno", "Carla", "Diego", "Elif", "Finn", "Greta", "Hugo", "Isla", "Jamal", "Kira", "Luca",
          "Maya", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara")


def contact_of(campaign: Campaign) -> dict[str, Customer]:
    """Recipients by contact id (to find who an inbound message came from)."""
    return {c.contact_id(campaign.tenant): c for c in campaign.recipients}

