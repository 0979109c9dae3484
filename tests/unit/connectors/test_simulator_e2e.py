"""End to end: the driver sends through the simulator, whose signed webhooks a local receiver verifies and parses."""

from __future__ import annotations

import asyncio

import aiohttp

from connectors import (
    InboundItem,
    LocalErrorCode,
    OutboundMessage,
    Outcome,
    ReceiptStatus,
    Template,
    TemplateUpdateItem,
)
from connectors.testing import wait_until
from connectors.whatsapp_simulator import DEFAULT_PHONE_NUMBER_ID
from tests.contract.whatsapp_support import RECIPIENT, VERIFY_TOKEN, text_message
from tests.unit.connectors.harness import running

SENT, DELIVERED, READ, FAILED = ReceiptStatus.SENT, ReceiptStatus.DELIVERED, ReceiptStatus.READ, ReceiptStatus.FAILED


def template_message(message_id: str, recipient: str = RECIPIENT) -> OutboundMessage:
    return OutboundMessage(message_id, DEFAULT_PHONE_NUMBER_ID, recipient, Template("order_update", "en_US"))


async def test_sent_delivered_read_arrive_signed_and_in_order_for_our_message_id() -> None:
    async with running() as h:
        h.simulator.open_window(RECIPIENT)
        result = await h.driver.send(text_message("order-1001"))
        assert result.accepted, result
        receipts = await h.wait_for_receipts("order-1001", 3)
        assert [r.status for r in receipts] == [SENT, DELIVERED, READ]
        assert {r.provider_message_id for r in receipts} == {result.provider_message_id}
        assert {r.account_id for r in receipts} == {DEFAULT_PHONE_NUMBER_ID}
        assert receipts[0].pricing is not None
        assert receipts[0].pricing.category == "service"
        assert not h.receiver.refused  # every webhook passed X-Hub-Signature-256
        assert (h.simulator.counters.sent, h.simulator.counters.webhooks_posted) == (1, 3)


async def test_a_template_needs_no_window_but_free_form_does() -> None:
    async with running() as h:
        template = await h.driver.send(template_message("tmpl-1"))
        assert template.accepted
        free_form = await h.driver.send(text_message("text-1", recipient="+15550000002"))
        assert free_form.accepted  # Meta accepts the request; the failure arrives as a webhook
        [failed] = await h.wait_for_receipts("text-1", 1)
        assert failed.status is FAILED
        assert [e.code for e in failed.errors] == ["131047"]
        assert h.driver.classify(failed.errors[0]) is Outcome.NEEDS_TEMPLATE
        assert [r.status for r in await h.wait_for_receipts("tmpl-1", 3)] == [SENT, DELIVERED, READ]
        assert h.simulator.counters.failed[131047] == 1


async def test_outside_the_window_synchronously() -> None:
    async with running(sync_failures=True) as h:
        result = await h.driver.send(text_message("text-2"))
        assert result.outcome is Outcome.NEEDS_TEMPLATE
        assert result.error is not None
        assert result.error.code == "131047"
        assert h.simulator.counters.rejected[131047] == 1


async def test_an_inbound_message_opens_the_window_and_reaches_the_receiver() -> None:
    async with running() as h:
        wamid = await h.simulator.simulate_inbound(RECIPIENT, "where is my order?")
        await h.receiver.wait_for(lambda items: any(isinstance(i, InboundItem) for i in items))
        [inbound] = [i for i in h.receiver.items if isinstance(i, InboundItem)]
        assert (inbound.provider_message_id, inbound.text, inbound.sender) == (wamid, "where is my order?",
                                                                               RECIPIENT.lstrip("+"))
        assert (await h.driver.send(text_message("reply-1"))).accepted
        assert [r.status for r in await h.wait_for_receipts("reply-1", 3)] == [SENT, DELIVERED, READ]


async def test_template_review_reaches_the_receiver() -> None:
    async with running() as h:
        h.simulator.simulate_template_status(42, "order_update", "en_US", "APPROVED")
        await h.receiver.wait_for(lambda items: any(isinstance(i, TemplateUpdateItem) for i in items))
        [update] = h.receiver.items
        assert isinstance(update, TemplateUpdateItem)
        assert (update.template_id, update.status) == ("42", "APPROVED")


async def test_a_paused_or_disabled_template_is_refused_until_it_is_reinstated() -> None:
    async with running(pair_window=None) as h:
        assert (await h.driver.send(template_message("before-review"))).accepted
        for event, code in (("PAUSED", "132015"), ("DISABLED", "132016")):
            h.simulator.simulate_template_status(42, "order_update", "en_US", event)
            result = await h.driver.send(template_message(f"while-{event.lower()}"))
            assert (result.outcome, result.error.code if result.error else None) == (Outcome.PERMANENT_FAILURE, code)
        h.simulator.simulate_template_status(42, "order_update", "en_US", "REINSTATED")
        assert (await h.driver.send(template_message("reinstated"))).accepted
        assert (h.simulator.counters.rejected[132015], h.simulator.counters.rejected[132016]) == (1, 1)


async def test_throughput_limit_gives_130429_above_n_per_second() -> None:
    async with running(mps_limit=3, pair_window=None, enforce_window=False) as h:
        messages = [text_message(f"burst-{i}", recipient=f"+1555000{i:04d}") for i in range(5)]
        results = await asyncio.gather(*(h.driver.send(m) for m in messages))
        outcomes = sorted(r.outcome.value for r in results)
        assert outcomes == ["accepted"] * 3 + ["retry_later"] * 2
        throttled = [r for r in results if not r.accepted]
        assert {r.error.code for r in throttled if r.error} == {"130429"}
        assert {r.retry_after for r in throttled} == {1.0}
        assert h.simulator.counters.rejected[130429] == 2


async def test_pair_limit_gives_131056_for_that_recipient_only() -> None:
    window = 0.3
    async with running(pair_window=window, enforce_window=False) as h:
        assert (await h.driver.send(text_message("pair-1"))).accepted
        second = await h.driver.send(text_message("pair-2"))
        assert second.outcome is Outcome.RETRY_RECIPIENT_LATER
        assert second.error is not None
        assert second.error.code == "131056"
        assert (await h.driver.send(text_message("other-1", recipient="+15550000077"))).accepted
        await asyncio.sleep(window)  # the condition under test is the passing of the pair window itself
        assert (await h.driver.send(text_message("pair-3"))).accepted


async def test_undeliverable_number_fails_with_131026_by_webhook_and_synchronously() -> None:
    async with running(undeliverable=frozenset({"15550009999"})) as h:
        await h.driver.send(template_message("undeliverable-1", recipient="+15550009999"))
        [failed] = await h.wait_for_receipts("undeliverable-1", 1)
        assert (failed.status, failed.errors[0].code) == (FAILED, "131026")
        assert h.driver.classify(failed.errors[0]) is Outcome.PERMANENT_FAILURE
    async with running(undeliverable=frozenset({"15550009999"}), sync_failures=True) as h:
        result = await h.driver.send(template_message("undeliverable-2", recipient="+15550009999"))
        assert result.outcome is Outcome.PERMANENT_FAILURE
        assert result.error is not None
        assert result.error.code == "131026"


async def _outcomes_with_error_rate(seed: int) -> list[tuple[str, str | None]]:
    async with running(error_rate=0.4, seed=seed, pair_window=None, enforce_window=False) as h:
        results = [await h.driver.send(text_message(f"flaky-{i}", recipient=f"+1555100{i:04d}")) for i in range(20)]
        assert h.simulator.counters.sent == sum(r.accepted for r in results)
        for failed in (r for r in results if not r.accepted):
            assert failed.outcome is Outcome.RETRY_LATER
            assert failed.error is not None
            assert failed.error.code in {"131000", "131016", "2"}
            assert failed.maybe_sent  # a 5xx never proves the message was not taken
        return [(r.outcome.value, r.error.code if r.error else None) for r in results]


async def test_seeded_5xx_rate_gives_retry_later_reproducibly() -> None:
    first = await _outcomes_with_error_rate(seed=11)
    assert 0 < sum(outcome == "retry_later" for outcome, _ in first) < 20
    assert await _outcomes_with_error_rate(seed=11) == first


async def test_a_timeout_is_ambiguous_and_the_receipts_reconcile_it() -> None:
    async with running(timeout_rate=1.0, timeout_hold=10.0, driver_timeout=0.3) as h:
        result = await h.driver.send(template_message("slow-1"))
        assert (result.outcome, result.maybe_sent) == (Outcome.RETRY_LATER, True)
        assert result.error is not None
        assert result.error.code == LocalErrorCode.TIMEOUT
        receipts = await h.wait_for_receipts("slow-1", 3)  # Meta had it all along: our id ties them back
        assert [r.status for r in receipts] == [SENT, DELIVERED, READ]
        assert h.simulator.counters.timeouts == 1


async def test_duplicate_receipts_share_a_dedupe_key() -> None:
    async with running(duplicate_rate=1.0, seed=5) as h:
        await h.driver.send(template_message("dup-1"))
        receipts = await h.wait_for_receipts("dup-1", 4)
        assert len(receipts) == 4
        assert len({r.dedupe_key for r in receipts}) == 3


async def test_read_without_delivered_and_out_of_order() -> None:
    async with running(read_without_delivered_rate=1.0) as h:
        await h.driver.send(template_message("chat-open"))
        assert [r.status for r in await h.wait_for_receipts("chat-open", 2)] == [SENT, READ]
    async with running(reorder_rate=1.0, seed=2) as h:
        await h.driver.send(template_message("shuffled"))
        statuses = [r.status for r in await h.wait_for_receipts("shuffled", 3)]
        assert sorted(statuses) == sorted([SENT, DELIVERED, READ])
        assert statuses != [SENT, DELIVERED, READ]


async def test_failed_webhook_posts_are_retried_then_dropped() -> None:
    async with running(webhook_attempts=3, webhook_retry_delay=0.05) as h:
        good_url = h.receiver.url
        h.simulator.webhook_url = good_url + "-missing"  # 404 until switched back
        await h.driver.send(template_message("retry-1"))
        await wait_until(lambda: h.simulator.counters.webhook_failures >= 1, what="a failed post")
        h.simulator.webhook_url = good_url
        await h.wait_for_receipts("retry-1", 3)
        assert h.simulator.counters.webhooks_posted == 3
    async with running(webhook_attempts=2, webhook_retry_delay=0.01) as h:
        h.simulator.webhook_url = h.receiver.url + "-missing"
        await h.driver.send(template_message("dropped-1"))
        await wait_until(lambda: h.simulator.counters.webhooks_dropped == 3, what="three dropped webhooks")
        assert h.simulator.counters.webhook_failures == 6


async def test_stop_drains_queued_webhooks_or_cancels_them() -> None:
    async with running(receipt_interval=0.1) as h:
        await h.driver.send(template_message("drain-1"))
        await wait_until(lambda: h.simulator.pending_webhooks == 3, what="three queued receipts")
        await h.simulator.stop()  # drains: everything queued is posted before stop returns
        assert h.simulator.counters.webhooks_posted == 3
        assert len(h.receipts("drain-1")) == 3
    async with running(receipt_interval=5.0) as h:
        await h.driver.send(template_message("cancel-1"))
        await h.simulator.stop(drain=True, timeout=0.1)
        assert h.simulator.counters.webhooks_posted == 0
        assert h.simulator.pending_webhooks == 0


async def test_the_receiver_answers_the_subscription_handshake() -> None:
    async with running() as h, aiohttp.ClientSession() as session:
        query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
        async with session.get(h.receiver.url, params=query) as answer:
            assert (answer.status, await answer.text()) == (200, "1158201444")
        async with session.get(h.receiver.url, params={**query, "hub.verify_token": "nope"}) as answer:
            assert answer.status == 403
        async with session.post(h.receiver.url, data=b"{}") as answer:
            assert answer.status == 401
        async with session.post(h.receiver.url, data=b"{}", headers={"X-Hub-Signature-256": "sha256=00"}) as answer:
            assert answer.status == 403
