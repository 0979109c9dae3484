"""`switchboard audit`: a retried, fallen-back message's every step with its cause, raw webhooks included."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aggregates import Message
from streams.pipeline._runtime import Topics
from switchboard.kafka_io import new_producer
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import (
    TENANT,
    contact_id,
    message_events,
    request,
    send_commands,
    terminal_count,
    types,
    write_pipeline,
)
from tests.integration.test_pipeline_config import TRIGGER, contact, order_shipped
from tests.integration.test_receipts_end_to_end import Stack, contact_events, of_contact
from tests.integration.webhook_stack import SENDER, switchboard, switchboard_json, webhook_stack

PHONE = "+4917099700001"  # not on WhatsApp: accepted, then a `failed` receipt (131026), so it falls back to SMS
SERVICE_UNAVAILABLE = 131000  # the simulator answers it with HTTP 500: the pipeline retries


async def test_the_audit_shows_every_step_of_a_retried_fallen_back_message_with_its_cause(tmp_path: Path,
                                                                                         kafka_bootstrap: str) -> None:
    # Receipts 2 s after the answer: the send's outcome reaches the writer first, so the steps have one order.
    async with webhook_stack(kafka_bootstrap, tmp_path, undeliverable=frozenset({PHONE[1:]}), receipt_interval=2.0,
                             extra="[dispatch]\nbreaker_error_rate = 1.0\n") as stack:
        message_id, contact = await _retried_and_fallen_back(stack)
        common = ["--bootstrap", kafka_bootstrap, "--topic-prefix", stack.prefix]
        audit = await switchboard_json("audit", "message", message_id, "--contact", contact, *common)
        code, text = await switchboard("audit", "message", message_id, "--contact", contact, *common)
        await stack.simulator.simulate_inbound(PHONE[1:], "thanks", phone_number_id=SENDER)  # opens the window
        await contact_events(stack, lambda found: bool(of_contact(found, contact, "InboundMessageReceived")))
        before_fallback = _time_of(audit["steps"], "event", "MessageFailed", caused_by_source="command",
                                   cause_kind="receipt") - timedelta(milliseconds=1)
        earlier = await switchboard_json("audit", "recipient", contact, "--as-of", before_fallback.isoformat(), *common)
        now = await switchboard_json("audit", "recipient", contact, "--as-of", datetime.now().astimezone().isoformat(),
                                     *common)
        bad_code, bad = await switchboard("audit", "recipient", contact, "--as-of", "yesterday-ish", *common)
        fallback_at = _time_of(audit["steps"], "event", "MessageFallbackTriggered", caused_by_source="command",
                               cause_kind="receipt")
        since = await switchboard_json("audit", "message", message_id, "--contact", contact, "--since",
                                       fallback_at.isoformat(), *common)
        both_code, both = await switchboard("audit", "recipient", contact, "--as-of", fallback_at.isoformat(),
                                            "--since", fallback_at.isoformat(), *common)
        code_r, text_r = await switchboard("audit", "recipient", contact, "--as-of", before_fallback.isoformat(),
                                           *common)
    (tmp_path / "audit.txt").write_text(f"{text}\n\n{text_r}\n")  # for a person to read after the run

    steps = audit["steps"]
    assert [(step["source"], step["kind"]) for step in steps] == [
        ("command", "request"), ("event", "MessageRequested"), ("event", "MessageRendered"),
        ("event", "MessageRouted"), ("event", "MessageDispatchAttempted"),
        ("command", "outcome"), ("event", "MessageFailed"), ("event", "MessageRetryScheduled"),
        ("event", "MessageDispatchAttempted"),
        ("command", "outcome"), ("event", "MessageAcceptedByProvider"),
        ("webhook", "whatsapp"), ("command", "receipt"), ("event", "MessageFailed"),
        ("event", "MessageFallbackTriggered"), ("event", "MessageRendered"), ("event", "MessageRouted"),
        ("event", "MessageDispatchAttempted"),
        ("command", "outcome"), ("event", "MessageAcceptedByProvider"),
    ], text
    by_step = {step["step"]: step for step in steps}

    def cause(number: int) -> tuple[str, str] | None:
        caused_by = by_step[number]["caused_by"]
        return None if caused_by is None else (by_step[caused_by]["source"], by_step[caused_by]["kind"])

    # Every event names the command it was applied from, every command what it answered or came from.
    assert [cause(n) for n in range(1, len(steps) + 1)] == [
        None, ("command", "request"), ("command", "request"), ("command", "request"), ("command", "request"),
        ("event", "MessageDispatchAttempted"), ("command", "outcome"), ("command", "outcome"),
        None,  # the retry fired on the partition clock's tick
        ("event", "MessageDispatchAttempted"), ("command", "outcome"),
        None, ("webhook", "whatsapp"), ("command", "receipt"), ("command", "receipt"), ("command", "receipt"),
        ("command", "receipt"), ("command", "receipt"),
        ("event", "MessageDispatchAttempted"), ("command", "outcome"),
    ]
    assert by_step[9]["cause"].startswith("the retry was due (partition clock tick at ")
    assert [by_step[n]["caused_by"] for n in (6, 10, 19)] == [5, 9, 18]  # each outcome answers its own attempt
    assert by_step[1]["cause"] == "requested by a client (API, SDK or integrator)"
    assert by_step[12]["cause"] == "posted by the provider; signature verified by the webhook receiver"
    [status] = by_step[12]["details"]["body"]["entry"][0]["changes"][0]["value"]["statuses"]
    assert (status["status"], status["errors"][0]["code"]) == ("failed", 131026)
    assert status["recipient_id"] == "49*********01"  # masked
    assert by_step[15]["details"]["to_channel"] == "sms"
    assert [by_step[n]["details"]["attempt"] for n in (5, 9, 18)] == [1, 2, 3]

    assert code == 0, text
    assert "<- #12 whatsapp webhook" in text
    assert "<- #5 the dispatcher's answer to attempt 1" in text
    assert PHONE[1:] not in text  # the number only masked
    assert PHONE[1:] not in str(audit)

    [message] = earlier["messages"]
    assert [step["kind"] for step in message["steps"]] == [step["kind"] for step in steps]
    then, final = earlier["as_of"]["messages"][message_id], now["as_of"]["messages"][message_id]
    assert (then["status"], then["channel"], then["channels"], then["attempt"]) == ("accepted", "whatsapp",
                                                                                    ["whatsapp"], 2)
    assert (final["status"], final["channel"], final["channels"], final["attempt"]) == ("accepted", "sms",
                                                                                      ["whatsapp", "sms"], 3)
    assert final["last_failure"]["code"] == "131026"
    assert earlier["as_of"]["contact"]["windows"] == {}  # the contact had not written yet
    assert now["as_of"]["contact"]["windows"]["whatsapp"]["open"] is True
    assert [(step["source"], step["kind"], step["caused_by"]) for step in now["contact"]] == [
        ("command", "request", None), ("event", "ContactRegistered", 1), ("webhook", "whatsapp", None),
        ("command", "inbound", 3), ("event", "InboundMessageReceived", 4)]
    assert code_r == 0, text_r
    assert "state as of" in text_r
    assert now["as_of"]["contact"]["addresses"]["whatsapp"] == "+49*********01"
    assert bad_code == 2
    # From a time on: the steps of the records stamped since, as in the whole story.
    assert since["since"] == fallback_at.isoformat()
    assert [(s["source"], s["kind"]) for s in since["steps"]] == [
        (s["source"], s["kind"]) for s in steps if datetime.fromisoformat(s["at"]) >= fallback_at]
    assert ("event", "MessageFallbackTriggered") in [(s["source"], s["kind"]) for s in since["steps"]]
    assert ("command", "request") not in [(s["source"], s["kind"]) for s in since["steps"]]
    assert both_code == 2
    assert "leave out --since" in both
    assert "is not a time" in bad


async def _retried_and_fallen_back(stack: Stack) -> tuple[str, str]:
    """A message whose first send gets a 5xx (retried), whose second is accepted and then fails by receipt."""
    stack.simulator.inject_error(SERVICE_UNAVAILABLE, times=1)
    await send_commands(stack.bootstrap, stack.prefix, [request("audited", "audited-1", phone=PHONE)])
    message_id = str(Message.create_id(TENANT, "audited-1"))

    def accepted_twice(got: dict[str, list[tuple[str, dict[str, Any]]]]) -> bool:
        return types(got.get(message_id, [])).count("MessageAcceptedByProvider") >= 2

    await message_events(stack.bootstrap, stack.prefix, accepted_twice)
    stack.alive()
    return message_id, contact_id("audited")


def _time_of(steps: list[dict[str, Any]], source: str, kind: str, *, caused_by_source: str,
             cause_kind: str) -> datetime:
    numbered = {step["step"]: step for step in steps}
    for step in steps:
        cause = numbered.get(step["caused_by"]) if step["caused_by"] else None
        if (step["source"], step["kind"]) == (source, kind) and cause and \
                (cause["source"], cause["kind"]) == (caused_by_source, cause_kind):
            return datetime.fromisoformat(step["at"])
    raise AssertionError(f"no {kind} caused by a {cause_kind} {caused_by_source}")


async def test_a_triggered_message_is_traced_back_to_its_business_event(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    await start_pipeline(write_pipeline(tmp_path, extra=TRIGGER))
    await send_commands(kafka_bootstrap, unique_prefix, [contact("vip-audit", ["vip"])])
    await produce(kafka_bootstrap, Topics(unique_prefix).business_events, order_shipped("A-77", "vip-audit"), "A-77")
    [message_id] = await message_events(kafka_bootstrap, unique_prefix, lambda got: sum(map(terminal_count,
                                                                                            got.values())) >= 1)
    audit = await switchboard_json("audit", "message", message_id, "--contact", contact_id("vip-audit"),
                                   "--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix)
    steps = audit["steps"]
    assert [(step["source"], step["kind"], step["caused_by"]) for step in steps[:4]] == [
        ("business", "OrderShipped", None), ("command", "trigger", 1), ("event", "MessageRequested", 2),
        ("event", "MessageRendered", 2)]
    assert steps[0]["position"].startswith(f"{Topics(unique_prefix).business_events}-")
    assert steps[0]["details"]["order_id"] == "A-77"
    assert steps[1]["cause"] == f"business event OrderShipped {steps[0]['id']}"
    assert steps[-1]["kind"] == "MessageAcceptedByProvider"


async def produce(bootstrap: str, topic: str, value: bytes, key: str) -> None:
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()
