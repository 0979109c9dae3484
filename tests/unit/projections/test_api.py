"""The read API over real HTTP (aiohttp's test server) on stores folded from synthetic histories, per tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.ingest import IngestClients
from projections import DeliveryStatsProjection, MemoryStore, MessageStatusProjection
from projections._api_follow import ReadModels, Throughput
from projections.api import SESSION_COOKIE, ConsoleSessions, api_app, signed_get_headers
from tests.unit.projections.history import delivered_and_read, event, fell_back

NOW = 1_795_600_000.0
DAY = date(2026, 11, 25)
CLIENTS = IngestClients.of({"erp-1": ("acme", "acme-secret"), "erp-2": ("globex", "globex-secret")})
SECRETS = {"erp-1": "acme-secret", "erp-2": "globex-secret"}
Events = list[tuple[str, dict[str, Any]]]


def retarget(events: Events, tenant: str | None = None, contact: str | None = None) -> Events:
    """The same history for another tenant or recipient."""
    moved = []
    for event_type, payload in events:
        envelope = {**payload["envelope"], "tenant_id": tenant or payload["envelope"]["tenant_id"]}
        moved.append((event_type, {**payload, "envelope": envelope, "contact_id": contact or payload["contact_id"]}))
    return moved


def later(message: str, seconds: float) -> Events:
    """A second message to m1's recipient, requested later, still waiting."""
    return [event(message, 1, "MessageRequested", seconds, category="marketing", template_name="weekend_offer")]


def seeded() -> ReadModels:
    history = (delivered_and_read("m1") + fell_back("m2") + retarget(later("m3", 120), contact="contact-m1")
               + retarget(delivered_and_read("g1"), tenant="globex"))
    models = ReadModels(MemoryStore(), MemoryStore())
    for projection, store in ((MessageStatusProjection(), models.status), (DeliveryStatsProjection(), models.stats)):
        for event_type, payload in history:
            store.commit(projection.apply(store.get, event_type, payload), {})
    return models


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    sessions: ConsoleSessions
    throughput: Throughput

    async def get(self, path: str, client: str | None = "erp-1", at: float = NOW,
                  secret: str | None = None, signed_path: str | None = None) -> tuple[int, Any]:
        headers = {} if client is None else signed_get_headers(client, secret or SECRETS.get(client, "x"),
                                                                 signed_path or path, at)
        answer = await self.client.get(path, headers=headers)
        return answer.status, await answer.json()


@asynccontextmanager
async def serving(models: ReadModels | None = None) -> AsyncIterator[Api]:
    clock = {"now": NOW}
    sessions = ConsoleSessions(clock=lambda: clock["now"])
    throughput = Throughput(clock=lambda: NOW)
    app = api_app(models or seeded(), CLIENTS, sessions=sessions, throughput=throughput, clock=lambda: NOW + 0.4,
                  today=lambda: DAY)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, sessions, throughput)


async def test_a_message_row_is_answered_to_its_tenant() -> None:
    async with serving() as api:
        status, row = await api.get("/v1/messages/m1")
    assert status == 200
    assert (row["message_id"], row["status"], row["channels"], row["tenant"]) == ("m1", "read", ["whatsapp"], "acme")
    assert list(row["times"]) == ["requested", "rendered", "routed", "dispatching", "accepted", "sent",
                                  "delivered", "read"]


async def test_another_tenants_message_is_not_found_exactly_like_an_unknown_one() -> None:
    async with serving() as api:
        theirs = await api.get("/v1/messages/g1")
        unknown = await api.get("/v1/messages/nope")
        own = await api.get("/v1/messages/g1", client="erp-2")
    assert theirs == (404, {"error": {"code": "not_found", "message": "no message g1", "details": []}})
    assert unknown == (404, {"error": {"code": "not_found", "message": "no message nope", "details": []}})
    assert (own[0], own[1]["tenant"]) == (200, "globex")


@pytest.mark.parametrize(("how", "status", "code"), [
    ("unsigned", 401, "missing_signature"),
    ("bad signature", 403, "bad_signature"),
    ("expired", 401, "timestamp_expired"),
    ("unknown client", 401, "unknown_client"),
    ("query changed", 403, "bad_signature"),
])
async def test_every_read_is_signed_like_ingestion(how: str, status: int, code: str) -> None:
    path = "/v1/recipients/contact-m1/messages?limit=1"
    cases: dict[str, dict[str, Any]] = {
        "unsigned": {"client": None}, "bad signature": {"secret": "guessed"}, "expired": {"at": NOW - 301},
        "unknown client": {"client": "erp-9"},
        "query changed": {"signed_path": "/v1/recipients/contact-m1/messages?limit=2"}}
    options = cases[how]
    async with serving() as api:
        answer = await api.get(path, **options)
    assert answer[0] == status
    assert answer[1]["error"]["code"] == code
    assert set(answer[1]["error"]) == {"code", "message", "details"}


async def test_a_recipients_messages_come_newest_first_and_limited() -> None:
    async with serving() as api:
        status, found = await api.get("/v1/recipients/contact-m1/messages")
        _, first = await api.get("/v1/recipients/contact-m1/messages?limit=1")
        other = await api.get("/v1/recipients/contact-g1/messages")
        bad = await api.get("/v1/recipients/contact-m1/messages?limit=0")
    assert status == 200
    assert [row["message_id"] for row in found["messages"]] == ["m3", "m1"]
    assert [row["message_id"] for row in first["messages"]] == ["m3"]
    assert other[0] == 404  # globex's recipient, asked by acme
    assert (bad[0], bad[1]["error"]["code"]) == (400, "invalid_query")


async def test_the_funnel_has_its_rates_per_day_template_and_channel() -> None:
    async with serving() as api:
        status, funnel = await api.get("/v1/stats/funnel?from=2026-11-25&to=2026-11-25")
        _, shipped = await api.get("/v1/stats/funnel?from=2026-11-25&to=2026-11-25&template=order_shipped")
        _, default = await api.get("/v1/stats/funnel")
        _, before = await api.get("/v1/stats/funnel?from=2026-11-01&to=2026-11-24")
    assert status == 200
    assert [(row["day"], row["template"]) for row in funnel["rows"]] == [("2026-11-25", "order_shipped"),
                                                                         ("2026-11-25", "weekend_offer")]
    assert funnel["total"]["counts"]["requested"] == 3  # m1, m2, m3: globex's g1 is not here
    assert shipped["total"]["counts"] == {"requested": 2, "accepted": 2, "sent": 1, "delivered": 1, "read": 1,
                                          "failed": 1, "fell_back": 1}
    assert shipped["total"]["rates"]["read_of_delivered"] == 1.0
    assert shipped["rows"][0]["by_channel"]["sms"]["counts"] == {"accepted": 1}
    assert (default["from"], default["to"], len(default["rows"])) == ("2026-11-19", "2026-11-25", 2)
    assert before["rows"] == []


@pytest.mark.parametrize("query", ["from=2026-13-01", "from=yesterday", "from=2026-11-26&to=2026-11-25",
                                   "from=2024-01-01&to=2026-11-25"])
async def test_a_bad_range_is_a_400(query: str) -> None:
    async with serving() as api:
        status, answer = await api.get(f"/v1/stats/funnel?{query}")
    assert (status, answer["error"]["code"]) == (400, "invalid_query")


async def test_latency_histograms_come_with_percentile_estimates() -> None:
    async with serving() as api:
        status, latency = await api.get("/v1/stats/latency?day=2026-11-25")
        _, empty = await api.get("/v1/stats/latency?day=2026-11-24")
    assert status == 200
    accepted = latency["spans"]["requested_to_accepted"]
    assert accepted["count"] == 2  # m1 after 300 ms, m2 after 500 ms: both in (250, 500]
    assert (accepted["p50"], accepted["p90"], accepted["p99"]) == (375.0, 475.0, 497.5)
    assert latency["spans"]["delivered_to_read"]["p50"] == 45_000.0  # the one value, mid-bucket (30 s, 60 s]
    assert len(latency["buckets_ms"]) + 1 == len(accepted["counts"])
    assert empty["spans"] == {}


async def test_usage_counts_billable_conversations_per_day() -> None:
    async with serving() as api:
        status, usage = await api.get("/v1/stats/usage?from=2026-11-25&to=2026-11-25")
        _, theirs = await api.get("/v1/stats/usage?from=2026-11-25&to=2026-11-25", client="erp-2")
    assert status == 200
    assert usage == {"from": "2026-11-25", "to": "2026-11-25", "rows": [{"day": "2026-11-25",
                                                                         "categories": {"utility": 1}}],
                     "total": {"utility": 1}}
    assert theirs["total"] == {"utility": 1}


async def test_throughput_is_the_tenants_own() -> None:
    async with serving() as api:
        for _ in range(20):
            api.throughput.add("acme")
        api.throughput.add("globex", 5)
        status, recent = await api.get("/v1/stats/throughput?seconds=30")
        _, theirs = await api.get("/v1/stats/throughput", client="erp-2")
    assert status == 200
    assert len(recent["seconds"]) == 30
    assert recent["seconds"][-1] == {"at": int(NOW), "events": 20}
    assert recent["per_second"] == 2.0  # 20 events over the last 10 seconds
    assert sum(second["events"] for second in theirs["seconds"]) == 5


async def test_health_readiness_and_metrics() -> None:
    async with serving() as api:
        await api.get("/v1/messages/m1")
        health = await api.client.get("/healthz")
        ready = await api.client.get("/readyz")
        metrics = await (await api.client.get("/metrics")).text()
    assert (health.status, ready.status) == (200, 200)
    assert 'switchboard_api_requests_total{route="/v1/messages/{id}",status="200"} 1.0' in metrics
    assert "switchboard_ready 1.0" in metrics


async def test_the_console_is_served_without_any_secret_and_under_a_strict_policy() -> None:
    async with serving() as api:
        token = api.sessions.issue("acme")
        page = await api.client.get("/console/")
        html = await page.text()
        script = await api.client.get("/console/console.js")
        code = await script.text()
        moved = await api.client.get("/console", allow_redirects=False)
    assert page.status == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert '<script src="/console/console.js"' in html
    assert token not in html
    assert (script.status, script.content_type.rsplit("/")[-1]) == (200, "javascript")
    assert (moved.status, moved.headers["Location"]) == (301, "/console/")
    for source in (html, code):
        assert "http://" not in source.replace("http://www.w3.org/2000/svg", "")  # nothing from elsewhere
        assert "https://" not in source


async def test_a_console_token_is_traded_once_for_a_session_of_its_tenant() -> None:
    async with serving() as api:
        token = api.sessions.issue("acme")
        traded = await api.client.post("/console/session", json={"token": token})
        assert (traded.status, await traded.json()) == (200, {"tenant": "acme"})
        cookie = traded.cookies[SESSION_COOKIE]
        again = await api.client.post("/console/session", json={"token": token})
        assert (again.status, (await again.json())["error"]["code"]) == (401, "invalid_token")
        asked = await api.client.get("/console/session")
        assert await asked.json() == {"tenant": "acme"}
        own = await api.get("/v1/messages/m1", client=None)
        theirs = await api.get("/v1/messages/g1", client=None)
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert own[0] == 200
    assert theirs[0] == 404


async def test_a_session_ends_and_a_token_expires() -> None:
    clock = {"now": NOW}
    sessions = ConsoleSessions(clock=lambda: clock["now"], token_ttl=60, session_ttl=3600)
    old_token, session = sessions.issue("acme"), sessions.exchange(sessions.issue("acme"))
    assert session is not None
    clock["now"] += 61
    assert sessions.exchange(old_token) is None
    assert sessions.tenant(session) == "acme"
    clock["now"] += 3600
    assert sessions.tenant(session) is None


async def test_an_ended_session_answers_401() -> None:
    async with serving() as api:
        api.client.session.cookie_jar.update_cookies({SESSION_COOKIE: "made-up"})
        status, answer = await api.get("/v1/messages/m1", client=None)
    assert (status, answer["error"]["code"]) == (401, "invalid_session")
