"""Readiness, per-partition lag and HTTP RED of the parts (switchboard.observability), and `switchboard run` roles."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from connectors.receiver import InMemoryWebhookSink, ReceiverConfig, build_receiver_app
from connectors.whatsapp import WhatsAppDriver
from switchboard.errors import SwitchboardError
from switchboard.observability import ConsumerLag, HttpMetrics, Observability, Readiness, kafka_reachable
from switchboard.roles import ROLES, plan_roles
from tests.contract.whatsapp_support import driver_config, signed
from tests.unit.connectors.test_receiver import receipt_body


class FakeConsumer:
    """What ConsumerLag reads from aiokafka's consumer: the assignment and each partition's high-water mark."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.ends = ends

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.ends[partition]


RAW0, RAW1 = TopicPartition("sb.webhooks.raw", 0), TopicPartition("sb.webhooks.raw", 1)


def test_lag_is_the_high_water_mark_minus_the_next_offset_to_process() -> None:
    consumer = FakeConsumer({RAW0: 10, RAW1: 4})
    lag = ConsumerLag(lambda: consumer)
    lag.done("sb.webhooks.raw", 0, 6)  # offsets up to 6 done: 7, 8 and 9 wait
    lag.done("sb.webhooks.raw", 1, 3)
    assert lag.lags() == {("sb.webhooks.raw", 0): 3, ("sb.webhooks.raw", 1): 0}


def test_a_partition_lost_in_a_rebalance_leaves_the_lag_series() -> None:
    consumer = FakeConsumer({RAW0: 10, RAW1: 4})
    lag = ConsumerLag(lambda: consumer)
    lag.done("sb.webhooks.raw", 1, 0)
    registry = CollectorRegistry()
    registry.register(lag)
    assert registry.get_sample_value("switchboard_consumer_lag", {"topic": "sb.webhooks.raw", "partition": "1"}) == 3
    del consumer.ends[RAW1]
    assert registry.get_sample_value("switchboard_consumer_lag", {"topic": "sb.webhooks.raw", "partition": "1"}) is None


def test_without_a_consumer_there_is_no_lag() -> None:
    assert ConsumerLag(lambda: None).lags() == {}


async def test_ready_only_when_every_check_passes() -> None:
    readiness = Readiness()
    recovered = False
    readiness.add_flag("store", lambda: recovered, "store recovered")
    consumer = FakeConsumer({RAW0: 500})
    lag = ConsumerLag(lambda: consumer)
    readiness.add_lag(lag, threshold=100)
    lag.done("sb.webhooks.raw", 0, 349)  # 150 behind

    ready, report = await readiness.evaluate()
    assert not ready
    assert report == {"store": {"ok": False, "detail": "not yet: store recovered"},
                      "consumer_lag": {"ok": False, "detail": "largest lag 150 (threshold 100)"}}
    recovered = True
    lag.done("sb.webhooks.raw", 0, 449)  # 50 behind
    ready, report = await readiness.evaluate()
    assert ready
    assert report["consumer_lag"] == {"ok": True, "detail": "largest lag 50 (threshold 100)"}


async def test_kafka_is_reachable_when_a_metadata_request_lists_brokers() -> None:
    class Client:
        def __init__(self, brokers: int, error: Exception | None = None) -> None:
            self.brokers, self.error = brokers, error

        async def fetch_all_metadata(self) -> Any:
            if self.error is not None:
                raise self.error
            return SimpleNamespace(brokers=lambda: set(range(self.brokers)))

    assert await kafka_reachable(lambda: Client(3)) == (True, "3 broker(s)")
    assert await kafka_reachable(lambda: Client(0)) == (False, "0 broker(s)")
    assert await kafka_reachable(lambda: Client(1, ConnectionError("refused"))) == (
        False, "metadata request failed: ConnectionError")
    assert await kafka_reachable(lambda: None) == (False, "not connected yet")


async def test_readyz_answers_503_with_the_failing_check_and_healthz_200() -> None:
    observability = Observability("normaliser")
    observability.readiness.add_flag("contacts_index", lambda: False, "address index caught up")
    app = web.Application(middlewares=[HttpMetrics(observability.registry).middleware])
    observability.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 200
        answer = await client.get("/readyz")
        assert answer.status == 503
        body = await answer.json()
        assert body["status"] == "not ready"
        assert body["checks"]["contacts_index"]["ok"] is False


async def test_the_ready_gauge_says_at_each_scrape_what_readyz_would_answer() -> None:
    observability, caught_up = Observability("normaliser"), False
    observability.readiness.add_flag("contacts_index", lambda: caught_up, "address index caught up")
    app = web.Application()
    observability.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        assert 'switchboard_ready 0.0' in await (await client.get("/metrics")).text()
        caught_up = True
        assert 'switchboard_ready 1.0' in await (await client.get("/metrics")).text()


async def test_the_receiver_counts_its_stage_ack_latency_refusals_and_http_red() -> None:
    observability = Observability("receiver")
    driver = WhatsAppDriver(driver_config())
    app = build_receiver_app(ReceiverConfig({"whatsapp": driver}), InMemoryWebhookSink(), observability)
    raw = receipt_body()
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/webhooks/whatsapp", data=raw, headers=signed(raw))).status == 200
        assert (await client.post("/webhooks/whatsapp", data=raw, headers={"Content-Type": "application/json"})
                ).status == 401
        assert (await client.get("/readyz")).status == 200  # an in-memory sink needs no Kafka
        metrics = await (await client.get("/metrics")).text()
    await driver.aclose()
    sample = observability.registry.get_sample_value
    assert sample("switchboard_stage_events_total", {"stage": "receiver"}) == 1
    assert sample("switchboard_stage_errors_total", {"stage": "receiver"}) == 0
    assert sample("switchboard_webhook_ack_seconds_count", {"channel": "whatsapp"}) == 1
    assert sample("switchboard_webhooks_rejected_total", {"channel": "whatsapp", "reason": "signature_missing"}) == 1
    route = {"route": "/webhooks/{channel}", "method": "POST"}
    assert sample("switchboard_http_requests_total", {**route, "status": "200"}) == 1
    assert sample("switchboard_http_requests_total", {**route, "status": "401"}) == 1
    assert sample("switchboard_http_request_duration_seconds_count", route) == 2
    assert 'switchboard_stage_events_total{stage="receiver"} 1.0' in metrics


def test_all_runs_every_role_and_leaves_out_those_needing_clients_when_there_are_none() -> None:
    assert plan_roles([], clients_configured=True) == (ROLES, [])
    roles, notes = plan_roles(["all"], clients_configured=False)
    assert roles == tuple(role for role in ROLES if role not in ("ingest", "api"))
    assert "ingest and api left out" in notes[0]


def test_named_roles_run_alone_in_start_order() -> None:
    assert plan_roles(["normaliser", "receiver"], clients_configured=False) == (("receiver", "normaliser"), [])
    assert plan_roles(["api"], clients_configured=False) == (("api",), [])  # named: a missing file is an error


def test_an_unknown_role_is_an_error() -> None:
    with pytest.raises(SwitchboardError, match="unknown role"):
        plan_roles(["normalizer"], clients_configured=True)
