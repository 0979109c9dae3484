"""The send API's pure parts: message bodies and their ids, API keys, rate-limit tiers and the OpenAPI document."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from aggregates import Contact, Message
from aggregates._secrets import hash_secret
from connectors.ingest import IngestClients
from projections import MemoryStore
from projections._api_follow import ReadModels
from projections._api_keys import ApiKeys
from projections._api_limits import LimitsError, LimitsWatcher, RateLimiter, Tier, parse_limits
from projections._api_openapi import document
from projections._api_reads import ApiError
from projections._api_send_body import parse_message
from projections.api import api_app

MESSAGE = {"to": {"external_ref": "customer-4711", "addresses": {"whatsapp": "+4917012345678"}},
           "category": "utility", "template": "order_shipped", "parameters": {"order_id": "42"}}
LIMITS = """
default_tier = "sandbox"
[tiers.sandbox]
per_second = 1
burst = 2
[tiers.big]
per_second = 100
burst = 100
[clients]
erp-big = "big"
[per_ip]
per_second = 0
"""


def test_the_message_id_derives_from_tenant_client_and_key() -> None:
    first = parse_message(MESSAGE, "acme", "erp-1", "order-42")
    again = parse_message(dict(reversed(list(MESSAGE.items()))), "acme", "erp-1", "order-42")
    other_client = parse_message(MESSAGE, "acme", "erp-2", "order-42")
    assert first.message_id == str(Message.create_id("acme", "api:erp-1:order-42"))
    assert first.contact_id == str(Contact.create_id("acme", "customer-4711"))
    assert (again.message_id, again.digest) == (first.message_id, first.digest)  # key order is not the body
    assert other_client.message_id != first.message_id
    assert first.command["message"]["idempotency_key"] == "api:erp-1:order-42"
    assert re.fullmatch(r"[0-9a-f]{32}", first.command["trace_id"])  # the events carry it as a W3C trace id
    assert (first.command["kind"], first.command["tenant"], first.command["contact_id"]) == (
        "request", "acme", first.contact_id)


def test_without_a_key_every_request_is_a_new_message() -> None:
    one, two = (parse_message(MESSAGE, "acme", "erp-1", None) for _ in range(2))
    assert one.message_id != two.message_id
    assert not one.keyed


def test_a_body_naming_another_tenant_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        parse_message({**MESSAGE, "tenant": "globex"}, "acme", "erp-1", "k")
    assert (refused.value.status, refused.value.code) == (403, "tenant_mismatch")


def test_every_problem_of_a_message_is_listed() -> None:
    bad = {"to": {"external_ref": "", "addresses": {"pigeon": "x"}}, "category": "spam", "priority": "urgent",
           "surprise": 1}
    with pytest.raises(ApiError) as refused:
        parse_message(bad, "acme", "erp-1", "k")
    assert (refused.value.status, refused.value.code) == (422, "validation_failed")
    assert {d["field"] for d in refused.value.details} == {"surprise", "to.external_ref", "to.addresses",
                                                            "category", "template", "priority"}


def test_an_api_key_is_checked_by_scrypt_once_then_by_its_digest() -> None:
    keys = ApiKeys({"erp-1": hash_secret("sbk_right-key-of-enough-length")})
    keys.check("erp-1", "sbk_right-key-of-enough-length")
    assert keys._verified["erp-1"]  # cached: the next check costs a SHA-256, not scrypt
    keys.check("erp-1", "sbk_right-key-of-enough-length")
    for presented, code in ((None, "missing_api_key"), ("sbk_wrong", "invalid_api_key")):
        with pytest.raises(ApiError) as refused:
            keys.check("erp-1", presented)
        assert (refused.value.status, refused.value.code) == (401, code)
    with pytest.raises(ApiError):
        ApiKeys({"erp-2": None}).check("erp-2", "anything")  # a client without a key cannot send


def test_a_client_over_its_tier_gets_429_with_retry_after(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text(LIMITS)
    now = [0.0]
    limiter = RateLimiter(LimitsWatcher(path, clock=lambda: now[0]), clock=lambda: now[0])
    limiter.client("erp-1")
    limiter.client("erp-1")
    with pytest.raises(ApiError) as refused:
        limiter.client("erp-1")
    assert (refused.value.status, refused.value.code, refused.value.headers) == (
        429, "rate_limited", {"Retry-After": "1"})
    for _ in range(50):
        limiter.client("erp-big")  # another tier
        limiter.address("10.0.0.1")  # per_second 0: no limit per IP
    now[0] = 1.0
    limiter.client("erp-1")  # a second later one token is back


def test_replicas_share_a_tier_so_that_together_they_let_the_tier_through(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text("replicas = 2\n" + LIMITS)
    now = [0.0]
    replicas = [RateLimiter(LimitsWatcher(path, clock=lambda: now[0]), clock=lambda: now[0]) for _ in range(2)]
    limits = replicas[0].watcher.current()
    assert limits.share(limits.tier_of("erp-big")) == Tier("big", 50, 50)  # 100/s, burst 100, over two
    assert limits.share(limits.tier_of("erp-1")).burst == 1  # a burst of 2 over two: 1 each, never 0
    refusals: list[str] = []
    for request in range(10):  # a balancer spreading one client's requests round robin
        try:
            replicas[request % 2].client("erp-1")
        except ApiError as refused:
            refusals.append(refused.message)
    assert len(refusals) == 8  # the tier's burst of 2 went through, not 4
    assert all("0.5/s, burst 1" in refusal for refusal in refusals)
    with pytest.raises(LimitsError, match="replicas"):
        parse_limits("replicas = 0\n" + LIMITS, "limits.toml")


def test_a_changed_limits_file_applies_without_restart_and_a_broken_one_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text(LIMITS)
    now = [0.0]
    watcher = LimitsWatcher(path, clock=lambda: now[0])
    limiter = RateLimiter(watcher, clock=lambda: now[0])
    limiter.client("erp-1")
    limiter.client("erp-1")
    path.write_text(LIMITS.replace('erp-big = "big"', 'erp-big = "big"\nerp-1 = "big"'))
    _touch_later(path)
    now[0] = 1.0  # the watcher looks once a second; the new tier keeps the tokens left (one refilled)
    limiter.client("erp-1")
    now[0] = 1.5  # and refills at its own rate: 100/s
    for _ in range(20):
        limiter.client("erp-1")
    path.write_text("default_tier = 'nope'\n[tiers.a]\nper_second = 1\n")
    _touch_later(path)
    now[0] = 2.0
    limiter.client("erp-1")
    assert watcher.last_error is not None
    assert "default_tier" in watcher.last_error
    assert watcher.current().tier_of("erp-1").name == "big"


def _touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize(("text", "where"), [
    ("[tiers.a]\nper_second = -1\n", "tiers.a.per_second"),
    ("[tiers.a]\nper_second = 1\nburst = 0\n", "tiers.a.burst"),
    ("[tiers.a]\nper_second = 1\n[clients]\nx = 'b'\n", "clients.x"),
    ("rate = 1\n", "unknown key 'rate'"),
])
def test_an_invalid_limits_file_names_the_key(text: str, where: str) -> None:
    with pytest.raises(LimitsError, match=where.replace(".", r"\.")):
        parse_limits(text, "limits.toml")


def test_every_route_of_the_app_is_in_the_openapi_document_and_nothing_else() -> None:
    app = api_app(ReadModels(MemoryStore(), MemoryStore()), IngestClients.of({"erp-1": ("acme", "s" * 24)}))
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD beside every GET
        resource = route.resource
        assert resource is not None
        served.add((route.method.lower(), resource.canonical))
    documented = {(method, path) for path, item in document()["paths"].items() for method in item}
    assert served == documented
