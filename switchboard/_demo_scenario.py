"""The demo's scenario: customers, their consent, business events and direct requests, and the messages expected.

Pure: everything is derived from the size, the pipeline declaration, the current time (which zones are at night)
and a seed; nothing here touches Kafka.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aggregates import Contact, Message
from schemas import encode, make_envelope, route
from streams.policies import QuietHours
from switchboard.config import PipelineConfig
from switchboard.errors import SwitchboardError

__all__ = ["Customer", "DirectRequest", "OrderEvent", "PlannedMessage", "Scenario", "build_scenario", "pick_zones"]

Zone = tuple[str, str, str]  # (IANA zone, city, mobile prefix)
# The recipients live around the world, so at any hour some of them are asleep.
ZONES: tuple[Zone, ...] = (
    ("Europe/Berlin", "Berlin", "+49151"),
    ("Europe/London", "London", "+447700"),
    ("America/New_York", "New York", "+1212555"),
    ("America/Sao_Paulo", "São Paulo", "+551199"),
    ("America/Los_Angeles", "Los Angeles", "+1310555"),
    ("Pacific/Honolulu", "Honolulu", "+1808555"),
    ("Asia/Kolkata", "Mumbai", "+91982"),
    ("Asia/Singapore", "Singapore", "+6591"),
    ("Asia/Tokyo", "Tokyo", "+8190"),
    ("Australia/Sydney", "Sydney", "+61412"),
    ("Pacific/Auckland", "Auckland", "+64211"),
)
FIRST_NAMES = ("Ana", "Ben", "Chloé", "Dev", "Emre", "Fatima", "Goran", "Hana", "Ines", "Jonas", "Kemal", "Lea",
               "Mateo", "Nora", "Omar", "Priya")
# How long a zone must stay (not) quiet for the choice to hold while the demo runs.
STABLE_FOR = timedelta(minutes=30)
MARKETING_TEMPLATE = "weekend_offer"
OTP_TEMPLATE = "login_code"
# The first messages show one of each case; after them the plan repeats GENERIC over the customers.
OPENING = ("otp", "vip_order", "shipped", "payment_failed", "shipped_night", "marketing", "marketing_refused",
           "otp_night")
GENERIC = ("shipped", "vip_order", "marketing", "payment_failed", "otp")


@dataclass(frozen=True)
class Customer:
    """A customer of the tenant as the CRM knows them; `undeliverable` numbers are not on WhatsApp."""

    ref: str
    first_name: str
    phone: str
    timezone: str
    city: str
    tags: tuple[str, ...] = ()
    marketing_consent: bool = False
    undeliverable: bool = False

    def contact_id(self, tenant: str) -> str:
        return str(Contact.create_id(tenant, self.ref))

    def label(self) -> str:
        """`Ana (vip)`: how the report names the customer."""
        return f"{self.first_name} ({', '.join(self.tags)})" if self.tags else self.first_name

    def attributes(self) -> dict[str, Any]:
        return {"first_name": self.first_name, "tags": list(self.tags), "timezone": self.timezone}


@dataclass(frozen=True)
class OrderEvent:
    """A business event from the shop (OrderPlaced, OrderShipped, PaymentFailed): its full record, envelope too."""

    event_type: str
    customer: Customer
    record: dict[str, Any]


@dataclass(frozen=True)
class DirectRequest:
    """A message a client asks for directly (a `request` command), e.g. a one-time password."""

    customer: Customer
    key: str
    category: str
    template: str
    parameters: dict[str, str]
    priority: str = "normal"


@dataclass(frozen=True)
class PlannedMessage:
    """A message the scenario expects the pipeline to request, and why."""

    message_id: str
    customer: Customer
    template: str
    cause: str


@dataclass(frozen=True)
class Scenario:
    """What the demo plays: customers first, then consent, then business events and direct requests."""

    tenant: str
    at: datetime
    customers: tuple[Customer, ...]
    steps: tuple[DirectRequest | OrderEvent, ...]  # in the order of the plan
    night: tuple[str, str] | None  # (zone, city) whose customers are asleep; None: see `night_note`
    night_note: str = ""

    @property
    def events(self) -> list[OrderEvent]:
        return [step for step in self.steps if isinstance(step, OrderEvent)]

    @property
    def requests(self) -> list[DirectRequest]:
        return [step for step in self.steps if isinstance(step, DirectRequest)]

    def contact_commands(self) -> list[tuple[str, dict[str, Any]]]:
        """One `contact` command per customer: addresses (WhatsApp and SMS) and attributes."""
        return [(c.contact_id(self.tenant), {
            "kind": "contact", "v": 1, "command_id": f"contact-{c.ref}", "tenant": self.tenant,
            "contact_id": c.contact_id(self.tenant), "contact": self._contact(c)}) for c in self.customers]

    def consent_commands(self) -> list[tuple[str, dict[str, Any]]]:
        """Marketing consent on WhatsApp for the customers who opted in."""
        return [(c.contact_id(self.tenant), {
            "kind": "consent", "v": 1, "command_id": f"consent-{c.ref}", "tenant": self.tenant,
            "contact_id": c.contact_id(self.tenant), "action": "grant", "channel": "whatsapp",
            "category": "marketing", "source": "demo:signup-form", "contact": self._contact(c)})
            for c in self.customers if c.marketing_consent]

    def request_commands(self) -> list[tuple[str, dict[str, Any]]]:
        """The direct requests as `request` commands (key: contact id)."""
        return [(r.customer.contact_id(self.tenant), {
            "kind": "request", "v": 1, "command_id": f"req-{r.key}", "tenant": self.tenant,
            "contact_id": r.customer.contact_id(self.tenant), "contact": self._contact(r.customer),
            "requested_by": "demo", "message": {"idempotency_key": r.key, "category": r.category,
                                                "template": r.template, "parameters": r.parameters,
                                                "priority": r.priority}}) for r in self.requests]

    def business_records(self) -> list[tuple[str, bytes]]:
        """(key, Avro bytes) of every business event, keyed as `schemas.route` says."""
        return [(route(e.event_type, e.record).key, encode(e.record, e.event_type)) for e in self.events]

    def expected(self, config: PipelineConfig) -> list[PlannedMessage]:
        """The messages the pipeline will request, in the plan's order: direct requests, and each trigger whose
        condition holds for a business event."""
        planned: list[PlannedMessage] = []
        for step in self.steps:
            if isinstance(step, DirectRequest):
                planned.append(PlannedMessage(str(Message.create_id(self.tenant, step.key)), step.customer,
                                              step.template, f"request ({step.category}, {step.priority})"))
            else:
                planned.extend(self._triggered(config, step))
        return planned

    @property
    def undeliverable(self) -> frozenset[str]:
        """Numbers (digits only) the WhatsApp simulator fails with 131026."""
        return frozenset(c.phone.lstrip("+") for c in self.customers if c.undeliverable)

    def _triggered(self, config: PipelineConfig, event: OrderEvent) -> Iterator[PlannedMessage]:
        record = event.record
        # What the pipeline's trigger stage hands the writer: the event's fields as JSON, the contact's attributes.
        fields = json.loads(json.dumps({k: v for k, v in record.items() if k != "envelope"}, default=str))
        variables = {"event": fields, "customer": event.customer.attributes(), "tenant": self.tenant}
        for trigger in config.triggers:
            if trigger.event != event.event_type or trigger.tenant != self.tenant:
                continue
            if trigger.condition is None or trigger.condition.matches(variables):
                key = f"trigger:{trigger.name}:{record['envelope']['event_id']}"
                yield PlannedMessage(str(Message.create_id(self.tenant, key)), event.customer, trigger.template,
                                     f"{event.event_type} → trigger {trigger.name}")

    @staticmethod
    def _contact(customer: Customer) -> dict[str, Any]:
        return {"external_ref": customer.ref, "addresses": {"whatsapp": customer.phone, "sms": customer.phone},
                "attributes": customer.attributes()}


def pick_zones(quiet: QuietHours | None, at: datetime, home: str = "") -> tuple[list[Zone], Zone | None]:
    """Zones where it is day for a while (quiet hours neither now nor soon; `home` first), and one where it is
    night (quiet now and still in half an hour), looked for from the far side of the world; None if none is."""
    if quiet is None:
        return sorted(ZONES, key=lambda z: z[0] != home), None

    def quiet_in(zone: str, when: datetime) -> bool:
        return replace(quiet, timezone=zone).is_quiet(when)

    day = sorted((z for z in ZONES if not quiet_in(z[0], at) and not quiet_in(z[0], at + STABLE_FOR)),
                 key=lambda z: z[0] != home)
    night = [z for z in reversed(ZONES) if quiet_in(z[0], at) and quiet_in(z[0], at + STABLE_FOR)]
    return day, (night[0] if night else None)


def build_scenario(messages: int, config: PipelineConfig, at: datetime, seed: int = 7) -> Scenario:
    """`messages` message requests (direct or through a trigger) for about messages/2 customers, plus one
    business event that fires no trigger."""
    if messages < 1:
        raise SwitchboardError("--messages must be at least 1")
    if not config.tenants:
        raise SwitchboardError("the pipeline declares no tenant to play the demo for")
    rng = random.Random(seed)
    shop = _Shop(config.tenants[0].id, at, rng)
    quiet = config.defaults.quiet_hours
    day, night = pick_zones(quiet, at, config.tenants[0].timezone)
    if not day:
        raise SwitchboardError("no time zone is outside the quiet hours right now; the demo needs one")
    customers = _customers(max(4, math.ceil(messages / 2)), day, night, rng)
    for number, (kind, customer) in enumerate(_plan(messages, customers), start=1):
        shop.add(kind, customer, number)
    shop.small_order(customers[1])  # a regular customer's small order: no trigger fires
    note = "" if night else ("the pipeline declares no quiet hours" if quiet is None else
                             "no time zone of the demo is inside the quiet hours right now")
    return Scenario(shop.tenant, at, tuple(customers), tuple(shop.steps), (night[0], night[1]) if night else None,
                    note)


def _customers(count: int, day: Sequence[Zone], night: Zone | None, rng: random.Random) -> list[Customer]:
    """Roles first: a vip who opted in, a regular who opted in, a night owl, one not on WhatsApp; then a mix."""
    home = day[0]
    roles: list[dict[str, Any]] = [
        {"zone": home, "tags": ("vip",), "marketing_consent": True},
        {"zone": day[1 % len(day)], "marketing_consent": True},
        {"zone": night or day[2 % len(day)]},
        {"zone": home, "undeliverable": True},
    ]
    while len(roles) < count:
        roles.append({"zone": rng.choice(day), "tags": ("vip",) if rng.random() < 0.3 else (),
                      "marketing_consent": rng.random() < 0.5})
    return [_customer(index, role, rng) for index, role in enumerate(roles)]


def _customer(index: int, role: dict[str, Any], rng: random.Random) -> Customer:
    zone, city, prefix = role["zone"]
    digits = "".join(str(rng.randrange(10)) for _ in range(13 - len(prefix)))
    name = FIRST_NAMES[index % len(FIRST_NAMES)]
    return Customer(ref=f"cust-{index + 1:04d}", first_name=name, phone=prefix + digits, timezone=zone, city=city,
                    tags=tuple(role.get("tags", ())), marketing_consent=bool(role.get("marketing_consent")),
                    undeliverable=bool(role.get("undeliverable")))


def _plan(messages: int, customers: Sequence[Customer]) -> list[tuple[str, Customer]]:
    """(kind, customer) per message: first one of each case, then the generic kinds round the customers."""
    vip, regular, owl, unreachable = customers[:4]
    opening = {"otp": vip, "vip_order": vip, "shipped": regular, "payment_failed": unreachable,
               "shipped_night": owl, "marketing": regular, "marketing_refused": unreachable, "otp_night": owl}
    plan = [(kind, opening[kind]) for kind in OPENING[:messages]]
    for number in range(messages - len(plan)):
        customer = customers[number % len(customers)]
        kind = GENERIC[number % len(GENERIC)]
        if kind == "vip_order" and "vip" not in customer.tags:
            kind = "shipped"  # the vip trigger would not fire: every planned message is one the pipeline requests
        plan.append((kind, customer))
    return plan


class _Shop:
    """Makes the business events and direct requests of the plan, with the tenant's envelope and seeded values."""

    def __init__(self, tenant: str, at: datetime, rng: random.Random) -> None:
        self.tenant, self.at, self.rng = tenant, at, rng
        self.steps: list[DirectRequest | OrderEvent] = []

    def add(self, kind: str, customer: Customer, number: int) -> None:
        rng, order = self.rng, f"SO-{40000 + number * 7 + self.rng.randrange(7)}"
        if kind in ("otp", "otp_night"):
            self.steps.append(DirectRequest(customer, f"demo-otp-{number}", "authentication", OTP_TEMPLATE,
                                               {"code": f"{rng.randrange(10**6):06d}"}, priority="high"))
        elif kind in ("marketing", "marketing_refused"):
            self.steps.append(DirectRequest(
                customer, f"demo-offer-{number}", "marketing", MARKETING_TEMPLATE,
                {"first_name": customer.first_name, "discount": f"{rng.choice((10, 15, 20))}%"}, priority="low"))
        elif kind == "vip_order":
            self._order_placed(customer, order, rng.randrange(120_000, 480_000))
        elif kind == "payment_failed":
            self._event("PaymentFailed", customer, "Payment", f"pay-{order}", 1, {
                "payment_id": f"pay-{order}", "order_id": order, "amount_minor": rng.randrange(2_000, 30_000),
                "currency": "EUR", "reason_code": rng.choice(("card_declined", "insufficient_funds", "expired_card")),
                "reason": None, "retryable": True})
        else:
            self._event("OrderShipped", customer, "Order", order, 2, {
                "order_id": order, "carrier": rng.choice(("DHL", "UPS", "DPD")), "tracking_number": None,
                "tracking_url": f"https://track.example.com/{order}", "estimated_delivery": None})

    def small_order(self, customer: Customer) -> None:
        self._order_placed(customer, f"SO-{39000 + self.rng.randrange(900)}", self.rng.randrange(1_500, 9_000))

    def _order_placed(self, customer: Customer, order: str, total: int) -> None:
        lines = [{"sku": "SKU-1001", "name": "Espresso machine", "quantity": 1, "unit_price_minor": total}]
        self._event("OrderPlaced", customer, "Order", order, 1, {"order_id": order, "items": lines,
                                                                 "total_minor": total, "currency": "EUR"})

    def _event(self, event_type: str, customer: Customer, aggregate_type: str, aggregate_id: str, version: int,
               fields: dict[str, Any]) -> None:
        envelope = make_envelope(aggregate_type=aggregate_type, aggregate_id=aggregate_id,
                                 aggregate_version=version, occurred_at=self.at, tenant_id=self.tenant)
        record = {"envelope": envelope, "customer_id": customer.ref, **fields}
        self.steps.append(OrderEvent(event_type, customer, record))
