"""The single writer of a contact's messages: consent, quiet hours, caps, window, rendering, routing, outcomes."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aggregates import (
    Channel,
    ConsentCategory,
    Contact,
    DeferralReason,
    FailureClass,
    Message,
    MessageCategory,
    ReceiptStatus,
    SuppressionReason,
)
from aggregates._base import SwitchboardAggregate
from connectors import Outcome
from streams.pipeline._commands import priority_rank
from streams.pipeline._drivers import sends_templates
from streams.pipeline._render import RenderFailure, render
from streams.pipeline._state import ContactRow, MessageSlot
from streams.policies import ConditionError, QuietHours
from switchboard.config import PipelineConfig, RoutingError, choose_route

__all__ = ["STOP_WORDS", "Effects", "Emitted", "Writer", "is_stop"]

_log = logging.getLogger(__name__)

# Inbound texts that revoke consent on their channel (WhatsApp's and the carriers' usual opt-out words).
STOP_WORDS = frozenset({"stop", "stopp", "unsubscribe", "cancel", "end", "quit", "opt out", "optout", "arret", "pare"})
# How long an accepted message stays open for receipts (and a late failure's fallback) before the row forgets it.
RECEIPT_HORIZON_SECONDS = 3 * 24 * 3600.0
# How long a read message stays open for the receipts its read overtook.
LATE_RECEIPT_SECONDS = 3600.0
# The first probe of an unanswered attempt waits at least this long, and each next one twice the one before: a
# message waiting its turn in a long dispatcher queue is not lost, and probing every queued message every few
# seconds flooded the dispatcher (a 50,000-message backlog kept a worker at full CPU on probes alone).
PROBE_FLOOR_SECONDS = 30.0
PROBE_DOUBLINGS = 7
# Service messages answer the contact inside the window and need no consent of their own.
_CONSENT_OF: Mapping[str, ConsentCategory] = {c.value: c for c in ConsentCategory}
_FAILURE_OF: Mapping[Outcome, FailureClass] = {
    Outcome.RETRY_LATER: FailureClass.RETRYABLE,
    Outcome.RETRY_RECIPIENT_LATER: FailureClass.THROTTLED,
    Outcome.NEEDS_TEMPLATE: FailureClass.WINDOW_CLOSED,
    Outcome.PERMANENT_FAILURE: FailureClass.PERMANENT,
    Outcome.STOP_ACCOUNT: FailureClass.ACCOUNT,
}


@dataclass
class Emitted:
    """One event for the log: its aggregate (Message or Contact), the event, and the trace it belongs to."""

    aggregate: SwitchboardAggregate
    event: Any
    trace_id: str | None = None


@dataclass
class Effects:
    """What handling one command produced: events, dispatch jobs and dead letters, in order."""

    events: list[Emitted] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


class Writer:
    """Pure decisions of the contact writer; the faust agent feeds it commands and ships its effects."""

    def __init__(self, config: Callable[[], PipelineConfig], rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()

    def handle(self, row: ContactRow, command: Mapping[str, Any], now: float) -> Effects:
        """Applies one command to a contact's row; `now` (epoch seconds) is the command's own time."""
        effects = Effects()
        handler = getattr(self, f"_on_{command['kind']}")
        handler(row, command, now, effects)
        self._pump(row, now, effects)
        return effects

    # -- commands ------------------------------------------------------------------------------------------------

    def _on_request(self, row: ContactRow, command: Mapping[str, Any], now: float, effects: Effects) -> None:
        spec = command["message"]
        message_id = str(Message.create_id(command["tenant"], spec["idempotency_key"]))
        if row.knows(message_id):
            return  # a repeated request (client retry, redelivery): the first one stands
        contact = self._contact(row, command, effects)
        if contact is None:
            return
        message = Message.request(
            tenant_id=command["tenant"], contact_id=contact.id, category=MessageCategory(spec["category"]),
            idempotency_key=spec["idempotency_key"], template_name=spec.get("template"), locale=spec.get("locale"),
            parameters={k: str(v) for k, v in spec.get("parameters", {}).items()}, body=spec.get("body"),
            not_after=_at(spec["not_after"]) if spec.get("not_after") else None,
            requested_by=command.get("requested_by"),
        )
        row.requests += 1
        slot = MessageSlot(message, spec.get("priority", "normal"), tags=tuple(spec.get("tags", ())),
                           trace_id=command.get("trace_id"), media=spec.get("media"), seq=row.requests)
        row.messages[message_id] = slot
        self._collect(slot, message, effects)
        self._advance(row, slot, now, effects)

    def _on_contact(self, row: ContactRow, command: Mapping[str, Any], now: float, effects: Effects) -> None:
        self._contact(row, command, effects)

    def _on_trigger(self, row: ContactRow, command: Mapping[str, Any], now: float, effects: Effects) -> None:
        trigger = next((t for t in self._config().triggers if t.name == command["trigger"]), None)
        if trigger is None or row.contact is None:
            reason = "unknown trigger" if trigger is None else "trigger for a contact never registered"
            effects.dead_letters.append({"contact_id": command["contact_id"], "stage": "triggers",
                                         "reason": f"{reason}: {command['trigger']!r}"})
            return
        variables = {"event": command["event"], "customer": row.attributes, "tenant": command["tenant"]}
        try:
            if trigger.condition is not None and not trigger.condition.matches(variables):
                return
            parameters = {name: _lookup(variables, path) for name, path in trigger.variables}
        except (ConditionError, KeyError) as error:
            effects.dead_letters.append({"contact_id": command["contact_id"], "stage": "triggers",
                                         "reason": f"trigger {trigger.name!r}: {error}"})
            return
        request = {**command, "kind": "request", "message": {
            "idempotency_key": f"trigger:{trigger.name}:{command['command_id']}", "category": trigger.category.value,
            "template": trigger.template, "parameters": parameters, "priority": command.get("priority", "normal")}}
        request["requested_by"] = f"trigger:{trigger.name}"
        self._on_request(row, request, now, effects)

    def _on_consent(self, row: ContactRow, command: Mapping[str, Any], now: float, effects: Effects) -> None:
        contact = self._contact(row, command, effects)
        if contact is None:
            return
        channel, category = Channel(command["channel"]), ConsentCategory(command["category"])
        if command["action"] == "grant":
            contact.grant_consent(channel, category, command.get("source", "api"), command.get("evidence"))
        else:
            contact.revoke_consent(channel, category, command.get("source", "api"))
        self._collect_contact(contact, command, effects)

    def _on_inbound(self, row: ContactRow, command: Mapping[str, Any], now: float, effects: Effects) -> None:
        contact = self._contact(row, command, effects)
        if contact is None:
            return
        channel, text = Channel(command["channel"]), command.get("text")
        contact.record_inbound(channel, command["provider_message_id"], command["address"], _at(command["at"]), text)
        if is_stop(text):
            self._revoke_all(contact, channel, "inbound:stop", command, effects)
        self._collect_contact(contact, command, effects)

    def _revoke_all(self, contact: Contact, channel: Channel, source: str, command: Mapping[str, Any],
                    effects: Effects) -> None:
        """The contact opted out of the channel (STOP, or the provider says so): every granted consent goes."""
        for category in ConsentCategory:
            contact.revoke_consent(channel, category, source)
        self._collect_contact(contact, command, effects)

    def _opted_out(self, contact: Contact, channel: Channel, scope: str, command: Mapping[str, Any],
                   effects: Effects) -> None:
        """A failed receipt said the recipient opted out: of marketing only (WhatsApp's 131050), or of all."""
        source = f"provider:{command.get('code')}"
        if scope != "marketing":
            self._revoke_all(contact, channel, source, command, effects)
        elif contact.revoke_consent(channel, ConsentCategory.MARKETING, source):
            self._collect_contact(contact, command, effects)

    def _on_receipt(self, row: ContactRow, command: Mapping[str, Any], now: float, effects: Effects) -> None:
        slot = row.messages.get(command["message_id"])
        if slot is None:
            return  # a receipt for a message this row has forgotten (or never had): nothing to change
        message, at = slot.message, _at(command["at"])
        if command["status"] == "failed":
            self._receipt_failed(row, slot, command, now, effects)
            return
        message.record_receipt(ReceiptStatus(command["status"]), command["provider_message_id"], at)
        self._receipt_recorded(row, slot, now, effects)
        if command["status"] == "sent":  # the provider's own send time: a watermark seen earlier may cover it
            self._apply_watermarks(row, slot, now, effects)

    def _on_recipient_receipt(self, row: ContactRow, command: Mapping[str, Any], now: float,
                              effects: Effects) -> None:
        """A receipt naming only the recipient (Messenger's): one provider message id, or a watermark time that
        covers every message sent on the channel at or before it. The highest watermark per channel and status is
        kept, so a message whose send is recorded later (its echo, its acceptance) is still covered."""
        channel, status = command["channel"], ReceiptStatus(command["status"])
        provider_id, at = command["provider_message_id"], _at(command["at"])
        if not command.get("watermark"):
            slot = next((s for s in row.messages.values() if provider_id in s.message.provider_message_ids.values()
                         and self._kind(s).value == channel), None)
            if slot is not None and slot.message.record_receipt(status, provider_id, at):
                self._receipt_recorded(row, slot, now, effects)
            return
        key = f"{channel}/{status.value}"
        watermarks = row.watermarks = dict(row.watermarks or {})
        watermarks[key] = max(watermarks.get(key, 0.0), at.timestamp())
        for slot in list(row.messages.values()):
            self._apply_watermarks(row, slot, now, effects)

    def _apply_watermarks(self, row: ContactRow, slot: MessageSlot, now: float, effects: Effects) -> None:
        """Records the receipts the row's watermarks imply for one sent message: each watermark at or after the
        provider's send time (its sent receipt's, else our acceptance's) covers it."""
        if not row.watermarks or slot.channel is None:
            return  # nearly every row: no channel of this contact's receipts by watermark
        message = slot.message
        sent_at = message.status_at(ReceiptStatus.SENT)
        since = sent_at.timestamp() if sent_at is not None else slot.accepted_at
        provider_id = message.provider_message_ids.get(message.attempt)
        if since is None or provider_id is None:
            return
        channel = self._kind(slot).value
        changed = False
        for status in (ReceiptStatus.DELIVERED, ReceiptStatus.READ):
            mark = row.watermarks.get(f"{channel}/{status.value}")
            if mark is not None and since <= mark and status not in message.receipts:
                changed |= message.record_receipt(status, provider_id, _dt(mark))
        if changed:
            self._receipt_recorded(row, slot, now, effects)

    def _receipt_recorded(self, row: ContactRow, slot: MessageSlot, now: float, effects: Effects) -> None:
        """After a receipt: a lost attempt's reconcile ends, and a read message stays open only for late ones."""
        message = slot.message
        if slot.timer_kind == "reconcile":  # the lost attempt did go out: no retry
            slot.timer, slot.timer_kind = None, None
            self._release(row, slot)
        self._collect(slot, message, effects)
        if message.reached(ReceiptStatus.READ) and slot.timer_kind != "late":
            # Read is the last status, but receipts it overtook (delivered, sent) may still arrive: keep the
            # message open a while for them, then forget it.
            self._release(row, slot)
            slot.timer, slot.timer_kind = now + LATE_RECEIPT_SECONDS, "late"

    def _receipt_failed(self, row: ContactRow, slot: MessageSlot, command: Mapping[str, Any], now: float,
                        effects: Effects) -> None:
        outcome = Outcome(command.get("outcome", Outcome.PERMANENT_FAILURE))
        if command.get("consent_revoked") and row.contact is not None:
            self._opted_out(row.contact, self._kind(slot), str(command["consent_revoked"]), command, effects)
        changed = slot.message.record_failure(
            _FAILURE_OF.get(outcome, FailureClass.UNKNOWN), _at(command["at"]),
            provider_message_id=command["provider_message_id"], provider_code=command.get("code"),
            detail=command.get("detail"))
        self._collect(slot, slot.message, effects)
        if changed and not slot.message.receipts and slot.message.phase.value == "accepted":
            self._fail_over(row, slot, f"receipt failed: {command.get('code')}", now, effects)

    def _on_outcome(self, row: ContactRow, command: Mapping[str, Any], now: float, effects: Effects) -> None:
        slot = row.messages.get(command["message_id"])
        if slot is None or command["attempt"] != slot.message.attempt or slot.message.phase.value != "dispatching":
            return  # a stale or repeated outcome: the attempt it answers is already settled
        outcome = command["outcome"]
        if outcome != Outcome.ACCEPTED and slot.message.receipts:
            # The provider's receipts overtook this answer (a timed-out call it took after all): they prove the
            # send, so it is accepted under their provider id, never retried or sent elsewhere.
            taken = next(iter(slot.message.receipts.values())).provider_message_id
            self._accepted(row, slot, {**command, "provider_message_id": taken}, now, effects)
        elif outcome == Outcome.ACCEPTED:
            self._accepted(row, slot, command, now, effects)
        elif outcome == "unknown":
            # The worker died during the call: wait for a receipt rather than risk sending it twice.
            slot.timer, slot.timer_kind = now + self._config().dispatch.reconcile_seconds, "reconcile"
        elif outcome == "circuit_open":
            self._fail_over(row, slot, "circuit open on the channel account", now, effects)
        else:
            self._failed(row, slot, command, now, effects)

    def _on_tick(self, row: ContactRow, command: Mapping[str, Any], now: float, effects: Effects) -> None:
        for slot in list(row.messages.values()):
            if slot.timer is not None and slot.timer <= now:
                kind = slot.timer_kind
                slot.timer, slot.timer_kind = None, None
                self._fire(row, slot, kind, now, effects)

    # -- the message's way through the stages --------------------------------------------------------------------

    def _advance(self, row: ContactRow, slot: MessageSlot, now: float, effects: Effects) -> None:
        """Checks, renders and routes a message that may go now; else suppresses or defers it."""
        message = slot.message
        if message.not_after is not None and message.not_after.timestamp() <= now:
            message.expire("not sent before not_after")
            return self._close(row, slot, "expired", effects)
        if slot.route is None and not self._choose_route(row, slot, effects):
            return None
        contact = row.contact
        assert contact is not None
        verdict = self._check(row, slot, contact, now)
        if isinstance(verdict, SuppressionReason):
            message.suppress(verdict, _detail(verdict))
            return self._close(row, slot, "suppressed", effects)
        if verdict is not None:
            message.defer(_dt(verdict), DeferralReason.QUIET_HOURS, "quiet hours")
            slot.timer, slot.timer_kind = verdict, "defer"
            return self._collect(slot, message, effects)
        if not self._render_and_route(row, slot, contact, now, effects):
            return None
        row.enqueue(str(message.id), _rank(slot))
        return self._collect(slot, message, effects)

    def _choose_route(self, row: ContactRow, slot: MessageSlot, effects: Effects) -> bool:
        message = slot.message
        attrs = _route_variables(row, slot)
        try:
            decision = choose_route(self._config(), attrs, str(message.id))
        except RoutingError as error:
            return self._dead_letter(row, slot, f"routing failed: {error}", effects)
        if decision is None:
            return self._dead_letter(row, slot, f"no route matches tenant {message.tenant_id!r}", effects)
        slot.route, slot.chain = decision.route, (decision.channel, *(step.channel for step in decision.fallback))
        slot.template = decision.template or message.template_name
        slot.retry, slot.deadline_seconds = _retry_name(self._config(), decision.route), decision.deadline_seconds
        return True

    def _check(self, row: ContactRow, slot: MessageSlot, contact: Contact,
               now: float) -> SuppressionReason | float | None:
        """A suppression reason, a time to defer to, or None when the message may go."""
        config, message, kind = self._config(), slot.message, self._kind(slot)
        category = _CONSENT_OF.get(message.category.value)
        if category is not None:
            decided = contact.consents.get((kind, category))
            if decided is not None and not decided.granted:
                return SuppressionReason.OPTED_OUT
            if category is ConsentCategory.MARKETING and decided is None:
                return SuppressionReason.NO_CONSENT
        if _over_cap(row, message.category, contact, config, now):
            return SuppressionReason.FREQUENCY_CAP
        if message.category not in config.defaults.quiet_hours_exempt:
            until = _quiet_until(contact, row.attributes.get("timezone"), config, now)
            if until is not None:
                return until
        return None

    def _render_and_route(self, row: ContactRow, slot: MessageSlot, contact: Contact, now: float,
                          effects: Effects) -> bool:
        config, message, kind = self._config(), slot.message, self._kind(slot)
        address = contact.addresses.get(kind)
        if address is None:
            return self._fail_over(row, slot, f"no {kind} address", now, effects,
                                   suppress=SuppressionReason.INVALID_RECIPIENT)
        window = contact.window_open(_dt(now), kind) if kind is Channel.WHATSAPP else True
        try:
            rendered = render(config, slot.template, message, contact, window, slot.media,
                              as_text=not sends_templates(config, slot.channel))
        except RenderFailure as failure:
            return self._fail_over(row, slot, str(failure), now, effects,
                                   suppress=SuppressionReason.TEMPLATE_UNAVAILABLE)
        message.render(rendered.summary, locale=rendered.locale)
        slot.content = rendered.content
        slot.sender = self._sender(row, slot, config)
        message.route(kind, slot.sender, address)
        return True

    def _sender(self, row: ContactRow, slot: MessageSlot, config: PipelineConfig) -> str:
        """The sticky sender of this contact on the channel, else one chosen by the contact's id."""
        channel_id = slot.channel
        assert channel_id is not None
        channel = config.channel(channel_id)
        assert channel is not None, "routes only name declared channels"
        allowed = [s.id for s in channel.senders]
        sticky = row.sticky.get(channel_id)
        if sticky not in allowed:
            sticky = allowed[int(str(slot.message.contact_id).replace("-", ""), 16) % len(allowed)]
            row.sticky[channel_id] = sticky
        return sticky

    def _pump(self, row: ContactRow, now: float, effects: Effects) -> None:
        """Hands the next queued message to the dispatcher once the previous one is settled (per-recipient order)."""
        while row.in_dispatch is None and row.queue:
            slot = row.messages[row.queue.pop(0)]
            not_after = slot.message.not_after
            if not_after is not None and not_after.timestamp() <= now and not slot.message.receipts:
                slot.message.expire("not sent before not_after")  # it waited too long behind retries or limits
                self._close(row, slot, "expired", effects)
                continue
            row.in_dispatch = str(slot.message.id)
            self._dispatch(slot, effects)
            # A safety net for an outcome that never comes (a row restored from before it was applied): ask the
            # dispatcher after the attempt if nothing has answered it by then (`_probe`).
            slot.probes = 0
            slot.timer, slot.timer_kind = now + self._probe_delay(0), "probe"

    def _dispatch(self, slot: MessageSlot, effects: Effects) -> None:
        message = slot.message
        attempt = message.attempt_dispatch()  # recorded before the provider is called
        self._collect(slot, message, effects)
        routing = message.routing
        assert routing is not None
        assert slot.channel is not None
        effects.jobs.append({
            "kind": "send", "message_id": str(message.id), "contact_id": str(message.contact_id),
            "tenant": message.tenant_id, "attempt": attempt, "channel": slot.channel, "sender": routing.sender,
            "address": routing.address, "content": slot.content, "priority": slot.priority,
            "category": message.category.value, "trace_id": slot.trace_id,
        })

    def _probe(self, slot: MessageSlot, now: float, effects: Effects) -> None:
        """Asks the dispatcher about an attempt unanswered for `reconcile_seconds` (at least 30 s), then again
        after twice as long each time.

        The dispatcher answers with the attempt's outcome if it settled it (the answer was lost on the way), with
        `unknown` if it never had the job (it is reconciled from receipts, never re-sent blindly), and not at all
        while the job waits its turn or is being sent.
        """
        message, routing = slot.message, slot.message.routing
        if message.phase.value != "dispatching" or routing is None or slot.channel is None:
            return
        effects.jobs.append({"kind": "probe", "v": 1, "message_id": str(message.id),
                             "contact_id": str(message.contact_id), "attempt": message.attempt,
                             "channel": slot.channel, "sender": routing.sender, "trace_id": slot.trace_id})
        slot.probes += 1
        slot.timer, slot.timer_kind = now + self._probe_delay(slot.probes), "probe"

    def _probe_delay(self, probes: int) -> float:
        """Seconds until the next probe: `reconcile_seconds` (at least PROBE_FLOOR_SECONDS), doubled per probe."""
        base = max(self._config().dispatch.reconcile_seconds, PROBE_FLOOR_SECONDS)
        return float(base * 2 ** min(probes, PROBE_DOUBLINGS))

    def _accepted(self, row: ContactRow, slot: MessageSlot, command: Mapping[str, Any], now: float,
                  effects: Effects) -> None:
        message = slot.message
        provider_id = command.get("provider_message_id") or f"unknown-{message.id}"
        message.accept(provider_id)
        slot.accepted_at = now
        self._collect(slot, message, effects)
        row.sent_log.append((now, message.category.value))
        self._release(row, slot)
        if slot.deadline_seconds is not None and slot.step + 1 < len(slot.chain):
            slot.timer, slot.timer_kind = now + slot.deadline_seconds, "deadline"
        else:
            slot.timer, slot.timer_kind = now + RECEIPT_HORIZON_SECONDS, "forget"
        early = message.failure
        if early is not None and early.provider_message_id == provider_id and not message.receipts:
            # The provider's failed receipt overtook our record of the acceptance (the webhook can beat the
            # outcome command to the writer): it was recorded then, and it decides now.
            self._fail_over(row, slot, f"receipt failed: {early.provider_code}", now, effects)
            return
        self._apply_watermarks(row, slot, now, effects)  # a recipient's watermark may have overtaken the answer

    def _failed(self, row: ContactRow, slot: MessageSlot, command: Mapping[str, Any], now: float,
                effects: Effects) -> None:
        message, outcome = slot.message, Outcome(command["outcome"])
        error = command.get("error") or {}
        if command.get("consent_revoked") and row.contact is not None:
            self._revoke_all(row.contact, self._kind(slot), f"provider:{error.get('code')}", command, effects)
        message.record_failure(_FAILURE_OF[outcome], _dt(now), attempt=message.attempt,
                               provider_code=error.get("code"), detail=error.get("message"),
                               retry_after_ms=_ms(command.get("retry_after")))
        self._collect(slot, message, effects)
        if outcome in (Outcome.RETRY_LATER, Outcome.RETRY_RECIPIENT_LATER):
            self._retry(row, slot, command, now, effects)
        else:
            self._fail_over(row, slot, f"{outcome.value}: {error.get('code')} {error.get('message', '')}".strip(),
                            now, effects)

    def _retry(self, row: ContactRow, slot: MessageSlot, command: Mapping[str, Any], now: float,
               effects: Effects) -> None:
        message = slot.message
        policy = self._config().retry_policy(slot.retry) or self._config().retry_policy("default")
        if policy is None or policy.exhausted(message.attempt):
            self._fail_over(row, slot, f"retries exhausted after {message.attempt} attempts", now, effects)
            return
        delay = max(policy.delay(message.attempt, self._rng), float(command.get("retry_after") or 0.0))
        message.schedule_retry(_dt(now + delay), _FAILURE_OF[Outcome(command["outcome"])])
        slot.timer, slot.timer_kind = now + delay, "retry"
        self._collect(slot, message, effects)  # in_dispatch stays: later messages wait behind the retry

    def _fail_over(self, row: ContactRow, slot: MessageSlot, reason: str, now: float, effects: Effects,
                   suppress: SuppressionReason | None = None) -> bool:
        """The next channel of the chain, else a dead letter (or a suppression, before any attempt)."""
        message = slot.message
        if slot.step + 1 < len(slot.chain) and not message.receipts:
            slot.step += 1
            if message.routing is not None:
                message.fall_back(self._kind(slot), reason)
                self._collect(slot, message, effects)
            self._release(row, slot)
            slot.timer, slot.timer_kind = None, None
            self._advance(row, slot, now, effects)
            return False
        if suppress is not None and message.attempt == 0:
            message.suppress(suppress, reason)
            self._close(row, slot, "suppressed", effects)
            return False
        return self._dead_letter(row, slot, reason, effects)

    def _dead_letter(self, row: ContactRow, slot: MessageSlot, reason: str, effects: Effects) -> bool:
        message = slot.message
        message.dead_letter(reason)
        effects.dead_letters.append({"message_id": str(message.id), "contact_id": str(message.contact_id),
                                     "tenant": message.tenant_id, "reason": reason, "attempts": message.attempt,
                                     "stage": "pipeline"})
        self._close(row, slot, "dead_lettered", effects)
        return False

    def _fire(self, row: ContactRow, slot: MessageSlot, kind: str | None, now: float, effects: Effects) -> None:
        message = slot.message
        if kind == "defer":
            self._advance(row, slot, now, effects)
        elif kind == "reconcile" and message.receipts:
            self._release(row, slot)  # the lost attempt went out after all
        elif kind in ("retry", "reconcile"):
            if kind == "reconcile":
                message.schedule_retry(_dt(now), FailureClass.UNKNOWN)
            row.in_dispatch = None
            row.enqueue(str(message.id), _rank(slot))
            self._collect(slot, message, effects)
        elif kind == "probe":
            self._probe(slot, now, effects)
        elif kind == "deadline" and not message.receipts:
            self._fail_over(row, slot, f"not delivered within {slot.deadline_seconds:g} s", now, effects)
        else:
            row.finish(str(message.id), message.status.value)

    # -- helpers -------------------------------------------------------------------------------------------------

    def _release(self, row: ContactRow, slot: MessageSlot) -> None:
        if row.in_dispatch == str(slot.message.id):
            row.in_dispatch = None

    def _close(self, row: ContactRow, slot: MessageSlot, status: str, effects: Effects) -> None:
        self._collect(slot, slot.message, effects)
        row.finish(str(slot.message.id), status)

    def _contact(self, row: ContactRow, command: Mapping[str, Any], effects: Effects) -> Contact | None:
        """The row's contact, registered from the command's addresses the first time it is seen."""
        if row.contact is None:
            spec = command.get("contact") or {}
            external_ref = spec.get("external_ref") or command["contact_id"]
            if str(Contact.create_id(command["tenant"], external_ref)) != command["contact_id"]:
                effects.dead_letters.append({"contact_id": command["contact_id"], "stage": "pipeline",
                                             "reason": "contact_id is not Contact.create_id(tenant, external_ref)"})
                return None
            addresses = {Channel(k): v for k, v in (spec.get("addresses") or {}).items() if v}
            if not addresses and command.get("address") and command.get("channel"):
                addresses = {Channel(command["channel"]): command["address"]}
            if not addresses:
                effects.dead_letters.append({"contact_id": command["contact_id"], "stage": "pipeline",
                                             "reason": f"{command['kind']} for an unknown contact without addresses"})
                return None
            row.contact = Contact.register(tenant_id=command["tenant"], external_ref=external_ref,
                                           addresses=addresses)
        if command.get("contact", {}).get("attributes") is not None:
            row.attributes = {**row.attributes, **command["contact"]["attributes"]}
        self._collect_contact(row.contact, command, effects)
        return row.contact

    def _kind(self, slot: MessageSlot) -> Channel:
        channel = self._config().channel(slot.channel or "")
        assert channel is not None, "routes only name declared channels"
        return channel.kind

    @staticmethod
    def _collect(slot: MessageSlot, aggregate: SwitchboardAggregate, effects: Effects) -> None:
        effects.events.extend(Emitted(aggregate, event, slot.trace_id) for event in aggregate.collect_events())

    @staticmethod
    def _collect_contact(contact: Contact, command: Mapping[str, Any], effects: Effects) -> None:
        effects.events.extend(Emitted(contact, e, command.get("trace_id")) for e in contact.collect_events())


def _route_variables(row: ContactRow, slot: MessageSlot) -> dict[str, Any]:
    message = slot.message
    return {
        "tenant": message.tenant_id,
        "message": {"category": message.category.value, "priority": slot.priority, "tags": list(slot.tags),
                    "template": message.template_name or "", "has_media": slot.media is not None,
                    "preferred_channel": (message.preferred_channel or "").__str__()},
        "recipient": {"tags": list(row.tags), "attributes": row.attributes,
                      "preferred_channel": str(_preferred(row) or "")},
    }


def _preferred(row: ContactRow) -> Channel | None:
    return None if row.contact is None else row.contact.preferences.preferred_channel


def _lookup(variables: Mapping[str, Any], path: str) -> str:
    """The value at a dotted path (`event.order_id`); KeyError names the path when it is missing."""
    value: Any = variables
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"{path} is missing")
        value = value[part]
    return str(value)


def _retry_name(config: PipelineConfig, route_name: str) -> str:
    return next((route.retry for route in config.routes if route.name == route_name), "default")


def _over_cap(row: ContactRow, category: MessageCategory, contact: Contact, config: PipelineConfig,
              now: float) -> bool:
    caps = contact.preferences.frequency_caps or config.defaults.frequency_caps
    for cap in caps:
        if cap.category == category:
            sent = sum(1 for at, cat in row.sent_log if cat == category.value and at > now - cap.period_seconds)
            if sent >= cap.max_messages:
                return True
    return False


def _quiet_until(contact: Contact, zone: str | None, config: PipelineConfig, now: float) -> float | None:
    """When quiet hours end, if `now` is inside them: the contact's own, else the default in the contact's zone."""
    at = _dt(now)
    if contact.preferences.quiet_hours is not None:
        end = contact.preferences.quiet_hours.ends_after(at)
    elif config.defaults.quiet_hours is not None:
        default = config.defaults.quiet_hours
        end = _in_zone(default, zone).ends_after(at)
    else:
        return None
    return end.timestamp() if end > at else None


def _in_zone(quiet: QuietHours, zone: str | None) -> QuietHours:
    """The default window in the recipient's own zone (their 22:00, not the company's), when it is known."""
    if zone is None or zone == quiet.timezone:
        return quiet
    try:
        return replace(quiet, timezone=zone)
    except ValueError:  # an unknown zone in the contact's attributes: the default zone is the best guess
        return quiet


def _rank(slot: MessageSlot) -> int:
    return priority_rank(slot.priority)


def _detail(reason: SuppressionReason) -> str:
    return {SuppressionReason.OPTED_OUT: "the contact opted out on this channel",
            SuppressionReason.NO_CONSENT: "no marketing consent on this channel",
            SuppressionReason.FREQUENCY_CAP: "frequency cap reached"}.get(reason, reason.value)


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _at(value: Any) -> datetime:
    """An ISO-8601 string or epoch seconds as an aware datetime."""
    if isinstance(value, int | float):
        return _dt(float(value))
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ms(seconds: Any) -> int | None:
    return None if seconds is None else int(float(seconds) * 1000)


def is_stop(text: str | None) -> bool:
    """Whether an inbound text opts its sender out of the channel (the whole text is a STOP word)."""
    return text is not None and text.strip().lower() in STOP_WORDS
