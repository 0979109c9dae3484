"""POST /v1/messages on a real broker: refusals write nothing, keys are idempotent across replicas, sync outcomes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from aggregates import Message
from projections import MemoryStore
from projections._api_follow import ReadModels
from projections._message_status import message_key
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import message_events, terminal_count, types, write_pipeline
from tests.integration.send_api_support import message, serving, written

REFUSALS: dict[str, tuple[dict[str, Any], int, str]] = {
    "no signature": ({"headers": {"X-Switchboard-Signature": ""}}, 401, "missing_signature"),
    "wrong signature": ({"secret": "not-the-signing-secret-at-all"}, 403, "bad_signature"),
    "expired timestamp": ({"at": time.time() - 301}, 401, "timestamp_expired"),
    "no API key": ({"api_key": None}, 401, "missing_api_key"),
    "wrong API key": ({"api_key": "sbk_guessed"}, 401, "invalid_api_key"),
    "unknown client": ({"headers": {"X-Switchboard-Client": "erp-nobody"}}, 401, "unknown_client"),
    "another tenant in the body": ({"body": message(tenant="globex")}, 403, "tenant_mismatch"),
    "oversized body": ({"body": message(body="x" * 20_000)}, 413, "body_too_large"),
    "invalid message": ({"body": {"to": {}, "category": "spam"}}, 422, "validation_failed"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_a_refused_send_answers_its_code_and_writes_nothing(kafka_bootstrap: str, unique_prefix: str,
                                                                  tmp_path: Path, case: str) -> None:
    options, status, code = dict(REFUSALS[case][0]), REFUSALS[case][1], REFUSALS[case][2]
    body = options.pop("body", message())
    async with serving(kafka_bootstrap, unique_prefix, tmp_path) as api:
        before = await written(kafka_bootstrap, unique_prefix)
        answer = await api.post("/v1/messages", body, idempotency_key=f"refused-{case.replace(' ', '-')}", **options)
        after = await written(kafka_bootstrap, unique_prefix)
    assert (answer[0], answer[1]["error"]["code"]) == (status, code), answer[1]
    assert set(answer[1]["error"]) == {"code", "message", "details"}
    assert after == before


async def test_another_tenants_message_is_not_found_and_the_read_writes_nothing(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    theirs = str(Message.create_id("globex", "api:erp-globex:k1"))
    models = ReadModels(MemoryStore(), MemoryStore())
    models.status.commit({message_key(theirs): {"message_id": theirs, "tenant": "globex", "status": "accepted"}}, {})
    async with serving(kafka_bootstrap, unique_prefix, tmp_path, models=models) as api:
        before = await written(kafka_bootstrap, unique_prefix)
        from projections.api import signed_get_headers
        from tests.integration.send_api_support import KEYS, SECRETS

        path = f"/v1/messages/{theirs}"
        answers = []
        for client in ("erp-acme", "erp-globex"):
            headers = {**signed_get_headers(client, SECRETS[client], path), "X-Switchboard-Key": KEYS[client]}
            async with api.session.get(api.base + path, headers=headers) as answer:
                answers.append((answer.status, await answer.json()))
        after = await written(kafka_bootstrap, unique_prefix)
    assert answers[0] == (404, {"error": {"code": "not_found", "message": f"no message {theirs}", "details": []}})
    assert (answers[1][0], answers[1][1]["tenant"]) == (200, "globex")
    assert after == before


async def test_a_burst_over_the_clients_tier_gets_429_and_only_the_allowed_requests_are_written(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    async with serving(kafka_bootstrap, unique_prefix, tmp_path) as api:
        before = await written(kafka_bootstrap, unique_prefix)
        answers = await asyncio.gather(*(api.post("/v1/messages", message(order=str(i)), "erp-small",
                                                  idempotency_key=f"burst-{i}") for i in range(5)))
        after = await written(kafka_bootstrap, unique_prefix)
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [202, 202, 429, 429, 429]  # the tier's burst is 2
    limited = [(body, headers) for status, body, headers in answers if status == 429]
    assert all(body["error"]["code"] == "rate_limited" and int(headers["Retry-After"]) >= 1
               for body, headers in limited)
    assert after == {topic: count + 2 for topic, count in before.items()}  # two commands, two claims; no more


async def test_the_same_key_and_body_is_one_message_and_another_body_is_a_409(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    async with serving(kafka_bootstrap, unique_prefix, tmp_path) as api:
        first = await api.post("/v1/messages", message(), idempotency_key="order-1")
        again = await api.post("/v1/messages", dict(reversed(list(message().items()))), idempotency_key="order-1")
        before = await written(kafka_bootstrap, unique_prefix)
        other = await api.post("/v1/messages", message(order="2"), idempotency_key="order-1")
        after = await written(kafka_bootstrap, unique_prefix)
    assert (first[0], again[0]) == (202, 202)
    assert first[1]["message_id"] == again[1]["message_id"] == str(Message.create_id("acme", "api:erp-acme:order-1"))
    assert (first[1]["replayed"], again[1]["replayed"], again[2]["Idempotent-Replayed"]) == (False, True, "true")
    assert (other[0], other[1]["error"]["code"]) == (409, "idempotency_key_reused")
    assert after["sb.commands"] == before["sb.commands"]  # the refused body never reaches the pipeline


async def test_two_replicas_agree_which_body_owns_a_key(kafka_bootstrap: str, unique_prefix: str,
                                                        tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with serving(kafka_bootstrap, unique_prefix, tmp_path / "a") as one, \
            serving(kafka_bootstrap, unique_prefix, tmp_path / "b") as two:
        before = await written(kafka_bootstrap, unique_prefix)
        answers = await asyncio.gather(one.post("/v1/messages", message(order="A"), idempotency_key="race"),
                                       two.post("/v1/messages", message(order="B"), idempotency_key="race"))
        after = await written(kafka_bootstrap, unique_prefix)
    assert sorted(status for status, _, _ in answers) == [202, 409]
    assert after["sb.commands"] == before["sb.commands"] + 1


async def test_a_batch_answers_each_message(kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    items = [{**message(ref="b-1"), "idempotency_key": "batch-1"}, {"to": {}, "category": "utility"},
             {**message(ref="b-1", order="other"), "idempotency_key": "batch-1"}, message(ref="b-2"),
             {**message(ref="b-3"), "tenant": "globex"}]
    async with serving(kafka_bootstrap, unique_prefix, tmp_path, max_body_bytes=256 * 1024) as api:
        before = await written(kafka_bootstrap, unique_prefix)
        status, body, _ = await api.post("/v1/messages:batch", {"messages": items})
        too_many = await api.post("/v1/messages:batch", {"messages": [message()] * 101})
        after = await written(kafka_bootstrap, unique_prefix)
    assert status == 200
    results = body["results"]
    assert [r["status"] for r in results] == [202, 422, 409, 202, 403]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert results[0]["message"]["message_id"] == str(Message.create_id("acme", "api:erp-acme:batch-1"))
    assert (results[1]["error"]["code"], results[2]["error"]["code"], results[4]["error"]["code"]) == (
        "validation_failed", "idempotency_key_reused", "tenant_mismatch")
    assert (too_many[0], too_many[1]["error"]["code"]) == (422, "validation_failed")
    assert after["sb.commands"] == before["sb.commands"] + 2


async def test_a_synchronous_send_answers_the_outcome_and_a_repeat_is_still_one_message(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    await start_pipeline(write_pipeline(tmp_path))
    async with serving(kafka_bootstrap, unique_prefix, tmp_path) as api:
        warm = await api.post("/v1/messages", message(ref="warm-up"), idempotency_key="warm-up")
        await message_events(kafka_bootstrap, unique_prefix,
                             lambda per: terminal_count(per.get(warm[1]["message_id"], [])) >= 1)
        sync = await api.post("/v1/messages?wait=30", message(ref="sync"), idempotency_key="sync-1")
        repeat = await api.post("/v1/messages", message(ref="sync"), idempotency_key="sync-1")
        conflict = await api.post("/v1/messages", message(ref="sync", order="9"), idempotency_key="sync-1")
    assert (sync[0], sync[1]["status"]) == (200, "accepted"), sync
    assert (repeat[0], repeat[1]["message_id"], repeat[1]["replayed"]) == (202, sync[1]["message_id"], True)
    assert conflict[0] == 409
    events = await message_events(kafka_bootstrap, unique_prefix,
                                  lambda per: terminal_count(per.get(sync[1]["message_id"], [])) >= 1)
    assert types(events[sync[1]["message_id"]]).count("MessageRequested") == 1
    assert sum(1 for per in events.values() for t in types(per) if t == "MessageRequested") == 2  # warm-up, sync


async def test_a_send_joins_the_callers_trace_in_its_answer_and_its_command(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with serving(kafka_bootstrap, unique_prefix, tmp_path) as api:
        status, body, headers = await api.post("/v1/messages", message(ref="traced"), idempotency_key="traced",
                                               headers={"traceparent": caller})
    assert status == 202, body
    assert headers["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    [(value, record_headers)] = [(v, h) for v, h in await _commands(kafka_bootstrap, unique_prefix)
                                 if v["command_id"] == f"api:{body['message_id']}"]
    assert value["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert record_headers["traceparent"].decode().split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def _commands(bootstrap: str, prefix: str) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    """Every record on the commands topic so far: (JSON value, headers)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    from projections._runner import end_offsets

    topic = prefix + "sb.commands"
    ends = await end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[tuple[dict[str, Any], dict[str, bytes]]] = []
    try:
        partitions = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        for tp in partitions:
            while await consumer.position(tp) < ends[tp.partition]:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    found.append((json.loads(record.value), dict(record.headers)))
    finally:
        await consumer.stop()
    return found
