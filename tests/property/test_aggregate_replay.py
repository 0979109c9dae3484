"""Folding recorded events rebuilds the live aggregate: all at once, after redeliveries, from a snapshot, over Avro."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import AggregateEvent, CanMutateAggregate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aggregates._tenant
from aggregates import (
    ApprovalStatus,
    CallbackKind,
    Channel,
    ConsentCategory,
    Contact,
    DeferralReason,
    DomainError,
    FailureClass,
    FrequencyCap,
    Message,
    MessageCategory,
    Preferences,
    QuietHours,
    RateLimitTier,
    ReceiptStatus,
    SuppressionReason,
    SwitchboardAggregate,
    Template,
    TemplateCategory,
    Tenant,
    fold,
    from_record,
    take_snapshot,
    to_record,
)
from schemas import DecodedEvent, decode, encode

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONTACT = UUID("00000000-0000-4000-8000-000000000002")
REPLAY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Command = Callable[[Any, int], object]


def _pick(options: list[Any], n: int) -> Any:
    return options[n % len(options)]


MESSAGE_COMMANDS: list[Command] = [
    lambda m, n: m.render(f"body {n}", locale=_pick(["en", "pt_BR", None], n)),
    lambda m, n: m.suppress(_pick(list(SuppressionReason), n), f"detail {n}"),
    lambda m, n: m.defer(T0 + timedelta(minutes=n), _pick(list(DeferralReason), n)),
    lambda m, n: m.route(_pick([Channel.WHATSAPP, Channel.SMS], n), "sender", "address"),
    lambda m, n: m.attempt_dispatch(),
    lambda m, n: m.accept(f"wamid.{n % 3}"),
    lambda m, n: m.record_receipt(_pick(list(ReceiptStatus), n), f"wamid.{n % 2}", T0 + timedelta(seconds=n)),
    lambda m, n: m.record_failure(_pick(list(FailureClass), n), T0 + timedelta(seconds=n), retry_after_ms=n),
    lambda m, n: m.schedule_retry(T0 + timedelta(seconds=n), FailureClass.RETRYABLE),
    lambda m, n: m.fall_back(_pick([Channel.SMS, Channel.EMAIL], n), "fallback"),
    lambda m, n: m.expire("late"),
    lambda m, n: m.dead_letter("gave up"),
]
CONTACT_COMMANDS: list[Command] = [
    lambda c, n: c.grant_consent(_pick(list(Channel), n), _pick(list(ConsentCategory), n), "form"),
    lambda c, n: c.revoke_consent(_pick(list(Channel), n), _pick(list(ConsentCategory), n), "stop"),
    lambda c, n: c.set_preferences(Preferences(_pick(["en", "nb", None], n), _pick([Channel.SMS, None], n),
                                               _pick([QuietHours(1320, 420, "Europe/Oslo"), None], n),
                                               (FrequencyCap(MessageCategory.MARKETING, n + 1, 86400),))),
    lambda c, n: c.record_inbound(Channel.WHATSAPP, f"wamid.in.{n % 4}", "47", T0 + timedelta(hours=n), "hi"),
]
TEMPLATE_COMMANDS: list[Command] = [
    lambda t, n: t.publish_version(_pick(["en", "pt_BR"], n), "Hi {{1}}" if n % 2 else "Hi {{1}}, {{2}}"),
    lambda t, n: t.set_approval_status(_pick(["en", "pt_BR"], n), 1 + n % 2, _pick(list(ApprovalStatus), n)),
    lambda t, n: t.change_category(_pick(list(TemplateCategory), n), _pick(["en", None], n)),
]
TENANT_COMMANDS: list[Command] = [
    lambda t, n: t.add_api_client(f"client {n}", secret=f"{n:032d}"),
    # by position, not by id: ids are random, and the script must do the same thing on every replay
    lambda t, n: t.revoke_api_client(_pick(list(t.api_clients) or ["none"], n)),
    lambda t, n: t.change_rate_limit_tier(_pick(list(RateLimitTier), n)),
    lambda t, n: t.set_callback_url(_pick(list(CallbackKind), n), f"https://hooks.example/{n}"),
    lambda t, n: t.remove_callback_url(_pick(list(CallbackKind), n)),
]


@dataclass(frozen=True)
class Kind:
    """How to create one kind of aggregate and what can be done to it."""

    cls: type[SwitchboardAggregate]
    create: Callable[[], SwitchboardAggregate]
    commands: list[Command]


KINDS = [
    Kind(Message, lambda: Message.request(tenant_id="t1", contact_id=CONTACT, category=MessageCategory.UTILITY,
                                          idempotency_key="replay", template_name="hello"), MESSAGE_COMMANDS),
    Kind(Contact, lambda: Contact.register(tenant_id="t1", external_ref="crm", addresses={Channel.SMS: "+47"}),
         CONTACT_COMMANDS),
    Kind(Template, lambda: Template.register(tenant_id="t1", name="hello", category=TemplateCategory.UTILITY),
         TEMPLATE_COMMANDS),
    Kind(Tenant, lambda: Tenant.register(slug="acme", name="Acme"), TENANT_COMMANDS),
]
scripts = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 20)), max_size=14)


@pytest.fixture(autouse=True, scope="module")
def _cheap_secret_hashes() -> Iterator[None]:
    """scrypt costs ~50 ms by design; replay does not care what the hash is, and unit tests cover hashing."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aggregates._tenant, "hash_secret", lambda secret: f"scrypt$2$1$1$c2FsdA==${len(secret)}")
        yield


def _live(kind: Kind, script: list[tuple[int, int]]) -> tuple[SwitchboardAggregate, list[CanMutateAggregate[UUID]]]:
    """Run a script of commands, skipping the ones the aggregate refuses; return it and its events."""
    aggregate = kind.create()
    for index, n in script:
        with contextlib.suppress(DomainError):  # refused in this state: part of what is being exercised
            kind.commands[index % len(kind.commands)](aggregate, n)
    return aggregate, list(aggregate.collect_events())


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.cls.__name__)
@REPLAY
@given(script=scripts, data=st.data())
def test_fold_of_all_events_even_redelivered_equals_the_live_aggregate(
    kind: Kind, script: list[tuple[int, int]], data: st.DataObject
) -> None:
    live, events = _live(kind, script)
    assert fold(kind.cls, events) == live
    redelivered = []
    for position, event in enumerate(events):
        redelivered.append(event)
        if data.draw(st.booleans()):
            redelivered.append(events[data.draw(st.integers(0, position))])
    assert fold(kind.cls, redelivered) == live


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.cls.__name__)
@REPLAY
@given(script=scripts, data=st.data())
def test_snapshot_plus_tail_equals_the_full_fold(
    kind: Kind, script: list[tuple[int, int]], data: st.DataObject
) -> None:
    live, events = _live(kind, script)
    cut = data.draw(st.integers(1, len(events)))
    snapshot = take_snapshot(fold(kind.cls, events[:cut]))
    assert fold(kind.cls, events[cut:], start=snapshot) == fold(kind.cls, events) == live


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.cls.__name__)
@REPLAY
@given(script=scripts)
def test_events_read_back_from_avro_fold_into_the_live_aggregate(kind: Kind, script: list[tuple[int, int]]) -> None:
    live, events = _live(kind, script)
    read_back = []
    for event in events:
        assert isinstance(event, AggregateEvent)
        record = to_record(live, event)
        decoded = decode(encode(record.event, record.event_type))
        assert isinstance(decoded, DecodedEvent)
        read_back.append(from_record(decoded.event_type, decoded.payload))
    assert fold(kind.cls, read_back) == live
