"""Each stage and policy of the pipeline on the real broker: order, limits, quiet hours, fallback, template gate,
circuit, DLQ."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aggregates import Channel, Template
from projections import end_offsets
from streams.pipeline._runtime import Topics
from streams.pipeline._templates import TemplateTopics
from switchboard.kafka_io import produce_json
from tests.integration.conftest import StartPipeline, until_committed
from tests.integration.pipeline_support import (
    TENANT,
    collect_json_values,
    gate_refuses,
    message_events,
    outcomes,
    payloads,
    request,
    routed_channels,
    send_commands,
    terminal_count,
    types,
    until_logged,
    write_pipeline,
)

Events = dict[str, list[tuple[str, dict[str, Any]]]]


def all_terminal(count: int) -> Any:
    return lambda got: sum(map(terminal_count, got.values())) >= count


def accepted_order(per_message: Events) -> list[str]:
    """Message ids in the order of their acceptance on the (single) partition of their contact."""
    accepted = [(value["envelope"]["occurred_at"], mid) for mid, events in per_message.items()
                for value in payloads(events, "MessageAcceptedByProvider")]
    return [mid for _, mid in sorted(accepted)]


async def test_a_recipients_messages_keep_their_order_through_retries(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    flaky = "+4917099900001"
    # Every other send fails here; a circuit breaker at its default 50% would rightly open, which is not under test.
    await start_pipeline(write_pipeline(tmp_path, settings=f'flaky_addresses = "{flaky}"',
                                        extra="[dispatch]\nbreaker_error_rate = 1.0\n"))
    commands = [request("flaky-one", f"ordered-{i}", phone=flaky) for i in range(6)]
    await send_commands(kafka_bootstrap, unique_prefix, commands)
    per_message = await message_events(kafka_bootstrap, unique_prefix, all_terminal(6))
    requested = {payloads(e, "MessageRequested")[0]["idempotency_key"]: mid for mid, e in per_message.items()}
    assert accepted_order(per_message) == [requested[f"ordered-{i}"] for i in range(6)]
    for events in per_message.values():  # each was retried once, on WhatsApp, and never overtaken
        assert types(events).count("MessageRetryScheduled") == 1
        assert routed_channels(events) == ["whatsapp"]


async def test_a_senders_rate_limit_holds_across_two_workers_and_a_rebalance(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    rate, burst, count = 20.0, 4.0, 120
    config = write_pipeline(tmp_path, per_second=rate, burst=burst)
    await start_pipeline(config, name="one")
    await send_commands(kafka_bootstrap, unique_prefix, [request(f"rl-{i}", f"rl-{i}") for i in range(count)])
    await outcomes(kafka_bootstrap, unique_prefix, lambda got: len(got) >= count // 4)
    await start_pipeline(config, name="two")  # the sender's partition may move, its bucket moves with it
    results = await outcomes(kafka_bootstrap, unique_prefix, lambda got: len({o["message_id"] for o in got}) >= count)
    sends = sorted({(o["message_id"], o["attempt"]): o["sent_at"] for o in results}.values())
    assert len(sends) == count
    for i, start in enumerate(sends):  # a token bucket: no span holds more than burst + rate * span sends
        for j in range(i + 1, len(sends)):
            assert j - i + 1 <= burst + rate * (sends[j] - start) + 1e-6, (i, j, sends[j] - start)
    # The send window: whatever the burst, no second holds more than the rate (WhatsApp's 130429 otherwise).
    assert max(bisect_right(sends, start + 1) - i for i, start in enumerate(sends)) <= rate


async def test_a_spent_daily_quota_holds_the_senders_other_jobs(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    quota = "[rate_limits.providers.meta]\nper_second = 1000\ndaily = 3\n"  # WhatsApp's one sender gets all 3
    await start_pipeline(write_pipeline(tmp_path, extra=quota))
    await send_commands(kafka_bootstrap, unique_prefix, [request(f"dq-{i}", f"dq-{i}") for i in range(5)])
    await outcomes(kafka_bootstrap, unique_prefix, lambda got: len(got) >= 3)
    topics, group = Topics(unique_prefix), f"{unique_prefix}pipeline"
    # Every request has become a job and every job, with the ticks after it, has been through the dispatcher:
    # had the quota let them, the other two would have been sent by now.
    await until_committed(kafka_bootstrap, group, topics.commands)
    await until_committed(kafka_bootstrap, group, topics.dispatch)
    total = sum((await end_offsets(kafka_bootstrap, topics.commands)).values())
    commands = await collect_json_values(kafka_bootstrap, topics.commands, lambda got: len(got) >= total)
    sent = [c["message_id"] for c in commands if c.get("kind") == "outcome"]
    assert len(sent) == len(set(sent)) == 3
    per_message = await message_events(kafka_bootstrap, unique_prefix,
                                       lambda got: len(got) == 5 and all_terminal(3)(got))
    held = set(per_message) - set(sent)
    assert len(held) == 2
    assert [terminal_count(per_message[message_id]) for message_id in held] == [0, 0]  # waiting, not failed


async def test_a_message_deferred_by_quiet_hours_goes_out_when_they_end(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    now = datetime.now(UTC)
    end = now + timedelta(seconds=6)
    quiet = (f'[defaults.quiet_hours]\nstart = "{(now - timedelta(minutes=5)):%H:%M:%S}"\n'
             f'end = "{end:%H:%M:%S}"\ntimezone = "UTC"\n')
    await start_pipeline(write_pipeline(tmp_path, extra=quiet))
    await send_commands(kafka_bootstrap, unique_prefix, [request("night-owl", "at-night")])
    per_message = await message_events(kafka_bootstrap, unique_prefix, all_terminal(1))
    [events] = per_message.values()
    assert types(events)[:2] == ["MessageRequested", "MessageDeferred"]
    [deferred] = payloads(events, "MessageDeferred")
    [accepted] = payloads(events, "MessageAcceptedByProvider")
    assert deferred["reason"] == "quiet_hours"
    assert accepted["envelope"]["occurred_at"] >= end.replace(microsecond=0)


async def test_a_deferred_message_survives_a_sigkill_and_fires_on_the_next_worker(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    # Due timers are an in-memory index of the contact rows: the next owner rebuilds it from the restored rows.
    now = datetime.now(UTC)
    end = now + timedelta(seconds=20)  # long enough for the first worker to start and defer it, under load too
    quiet = (f'[defaults.quiet_hours]\nstart = "{(now - timedelta(minutes=5)):%H:%M:%S}"\n'
             f'end = "{end:%H:%M:%S}"\ntimezone = "UTC"\n')
    config = write_pipeline(tmp_path, extra=quiet)
    first = await start_pipeline(config, name="first")
    await send_commands(kafka_bootstrap, unique_prefix, [request("insomniac", "killed-at-night")])
    await message_events(kafka_bootstrap, unique_prefix,
                         lambda got: any("MessageDeferred" in types(e) for e in got.values()))
    # Once the request's offset is committed the next worker does not read it again: only the contact row,
    # restored from its changelog, can tell it that a timer waits.
    await until_committed(kafka_bootstrap, f"{unique_prefix}pipeline", Topics(unique_prefix).commands)
    first.kill()  # SIGKILL: nothing of the index is written anywhere
    await start_pipeline(config, name="second")  # an empty state directory: rows from the changelog
    per_message = await message_events(kafka_bootstrap, unique_prefix, all_terminal(1))
    [events] = per_message.values()
    [accepted] = payloads(events, "MessageAcceptedByProvider")
    assert "MessageDeferred" in types(events)
    assert accepted["envelope"]["occurred_at"] >= end.replace(microsecond=0)


async def test_a_permanent_failure_falls_back_to_the_next_channel(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    gone = "+4917099900002"
    await start_pipeline(write_pipeline(tmp_path, settings=f'fail_addresses = "{gone}"'))
    await send_commands(kafka_bootstrap, unique_prefix, [request("no-whatsapp", "fb-1", phone=gone)])
    [events] = (await message_events(kafka_bootstrap, unique_prefix, all_terminal(1))).values()
    assert routed_channels(events) == ["whatsapp", "sms"]
    [fallback] = payloads(events, "MessageFallbackTriggered")
    assert (fallback["from_channel"], fallback["to_channel"]) == ("whatsapp", "sms")
    assert "inprocess.undeliverable" in fallback["reason"]


async def test_a_template_the_provider_paused_falls_back_without_a_send(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    worker = await start_pipeline(write_pipeline(tmp_path))
    template = str(Template.create_id(TENANT, Channel.WHATSAPP, "order_shipped"))
    base = {"v": 1, "aggregate_id": template, "tenant": TENANT, "channel": "whatsapp", "name": "order_shipped"}
    await produce_json(kafka_bootstrap, TemplateTopics(unique_prefix).commands, [(template, command) for command in (
        {**base, "kind": "template_version", "command_id": "publish", "category": "utility", "locale": "en",
         "body": "Your order {{1}} has shipped."},
        {**base, "kind": "template_update", "command_id": "approve", "update": "status", "status": "APPROVED",
         "language": "en", "at": "2026-03-01T09:00:00+00:00"},
        {**base, "kind": "template_update", "command_id": "pause", "update": "status", "status": "PAUSED",
         "language": "en", "at": "2026-03-01T10:00:00+00:00", "reason": "LOW_QUALITY"})])
    await until_logged(worker, gate_refuses("order_shipped"))
    await send_commands(kafka_bootstrap, unique_prefix, [request("paused-template", "pt-1")])
    [events] = (await message_events(kafka_bootstrap, unique_prefix, all_terminal(1))).values()
    assert routed_channels(events) == ["whatsapp", "sms"]  # the in-process WhatsApp would have taken it
    [fallback] = payloads(events, "MessageFallbackTriggered")
    assert "local.template_not_sendable" in fallback["reason"]
    assert "is PAUSED (LOW_QUALITY)" in fallback["reason"]


async def test_a_missed_delivery_deadline_falls_back(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    await start_pipeline(write_pipeline(tmp_path, deadline=2))  # the in-process channel never sends receipts
    otp = request("otp-user", "otp-1", category="authentication", template="login_code",
                  parameters={"code": "123456"}, priority="high")
    await send_commands(kafka_bootstrap, unique_prefix, [otp])
    per_message = await message_events(
        kafka_bootstrap, unique_prefix, lambda got: any(terminal_count(e) >= 2 for e in got.values()))
    [events] = per_message.values()
    assert routed_channels(events) == ["whatsapp", "sms"]
    [fallback] = payloads(events, "MessageFallbackTriggered")
    assert fallback["reason"] == "not delivered within 2 s"


async def test_the_circuit_opens_on_provider_errors_and_closes_after_a_probe(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    sick = [f"+49170999100{i:02d}" for i in range(4)]
    breaker = ("[dispatch]\nbreaker_window = 4\nbreaker_min_calls = 4\nbreaker_error_rate = 0.5\n"
               "breaker_open_seconds = 3\n")
    await start_pipeline(write_pipeline(tmp_path, settings=f'retry_addresses = "{",".join(sick)}"', extra=breaker,
                                        max_attempts=1))
    await send_commands(kafka_bootstrap, unique_prefix, [request(f"sick-{i}", f"sick-{i}", phone=phone)
                                                         for i, phone in enumerate(sick)])
    await message_events(kafka_bootstrap, unique_prefix, all_terminal(4))
    await send_commands(kafka_bootstrap, unique_prefix, [request("healthy-1", "while-open")])
    per_message = await message_events(kafka_bootstrap, unique_prefix, all_terminal(5))
    [while_open] = [e for e in per_message.values() if payloads(e, "MessageRequested")[0]["idempotency_key"]
                    == "while-open"]
    assert routed_channels(while_open) == ["whatsapp", "sms"]
    assert payloads(while_open, "MessageFallbackTriggered")[0]["reason"] == "circuit open on the channel account"
    # Low-priority traffic is not shed onto the fallback: it waits out the open circuit and goes by the probe.
    await send_commands(kafka_bootstrap, unique_prefix, [request("patient", "after-close", priority="low")])
    per_message = await message_events(kafka_bootstrap, unique_prefix, all_terminal(6))
    [after] = [e for e in per_message.values() if payloads(e, "MessageRequested")[0]["idempotency_key"]
               == "after-close"]
    assert routed_channels(after) == ["whatsapp"]
    opened_at = payloads(while_open, "MessageFallbackTriggered")[0]["envelope"]["occurred_at"]
    assert payloads(after, "MessageAcceptedByProvider")[0]["envelope"]["occurred_at"] >= opened_at


async def test_a_message_no_channel_takes_is_dead_lettered_with_its_reason(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    gone = "+4917099900003"
    config = write_pipeline(tmp_path, settings=f'fail_addresses = "{gone}"')
    text = config.read_text().replace('id = "sms"\nkind = "sms"\ntenant = "acme"\nprovider = "sms-gateway"\n'
                                      'driver = "inprocess"',
                                      'id = "sms"\nkind = "sms"\ntenant = "acme"\nprovider = "sms-gateway"\n'
                                      f'driver = "inprocess"\nsettings = {{ fail_addresses = "{gone}" }}')
    config.write_text(text)
    await start_pipeline(config)
    await send_commands(kafka_bootstrap, unique_prefix, [request("nowhere", "dlq-1", phone=gone)])
    [events] = (await message_events(kafka_bootstrap, unique_prefix, all_terminal(1))).values()
    [dead] = payloads(events, "MessageDeadLettered")
    assert "permanent_failure: inprocess.undeliverable" in dead["reason"]
    letters = await collect_json_values(kafka_bootstrap, Topics(unique_prefix).deadletters, lambda got: len(got) >= 1)
    assert letters[0]["reason"] == dead["reason"]
    assert letters[0]["message_id"] == dead["envelope"]["aggregate_id"]


async def test_transactional_traffic_overtakes_a_marketing_backlog(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    await start_pipeline(write_pipeline(tmp_path, per_second=5, burst=1))
    backlog = [request(f"bulk-{i}", f"bulk-{i}", priority="low") for i in range(20)]
    await send_commands(kafka_bootstrap, unique_prefix, backlog)
    await outcomes(kafka_bootstrap, unique_prefix, lambda got: len(got) >= 2)
    otp = request("otp-vip", "otp-now", category="authentication", template="login_code",
                  parameters={"code": "424242"}, priority="high")
    await send_commands(kafka_bootstrap, unique_prefix, [otp])
    results = await outcomes(kafka_bootstrap, unique_prefix, lambda got: len(got) >= 21, timeout=120)
    order = [o["message_id"] for o in sorted(results, key=lambda o: o["sent_at"])]
    per_message = await message_events(kafka_bootstrap, unique_prefix, all_terminal(21))
    [otp_id] = [mid for mid, e in per_message.items() if payloads(e, "MessageRequested")[0]["category"]
                == "authentication"]
    assert order.index(otp_id) <= 4, order.index(otp_id)  # sent next, not after the 20 queued before it


async def test_a_backlog_far_over_the_senders_rate_waits_in_pages_without_stopping_the_worker(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    # 6,000 jobs kept whole in the sender's row made it larger than Kafka's 1 MB record limit: the worker stopped
    # at its first write, and again at every restart. Paged, the row stays small and the jobs go out at the rate.
    count, rate = 6000, 20.0
    worker = await start_pipeline(write_pipeline(tmp_path, per_second=rate, burst=rate))
    await send_commands(kafka_bootstrap, unique_prefix, [request(f"bl-{i}", f"bl-{i}") for i in range(count)])
    topics = Topics(unique_prefix)
    await outcomes(kafka_bootstrap, unique_prefix, lambda got: len(got) >= 1)  # the group exists
    await until_committed(kafka_bootstrap, f"{unique_prefix}pipeline", topics.commands, timeout=240)
    await until_committed(kafka_bootstrap, f"{unique_prefix}pipeline", topics.dispatch, timeout=240)
    sent = await outcomes(kafka_bootstrap, unique_prefix, lambda got: len(got) >= 200)
    assert worker.is_running(), worker.log_tail()
    assert len({o["message_id"] for o in sent}) == len(sent)  # each once
    assert {o["outcome"] for o in sent} == {"accepted"}
