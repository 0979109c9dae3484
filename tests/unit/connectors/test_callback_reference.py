"""Our send reference in a per-message callback URL, and back from the callback's query into its receipts."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors import InboundItem, ReceiptItem, ReceiptStatus
from connectors._callback_reference import (
    QUERY_HEADER,
    query_of,
    signed_url,
    url_with_reference,
    with_callback_reference,
)

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_the_reference_joins_the_url_s_own_query_encoded() -> None:
    assert url_with_reference("https://h.example/webhooks/sms", "c.m") == "https://h.example/webhooks/sms?sb_ref=c.m"
    assert url_with_reference("https://h.example/webhooks/sms?tenant=acme", "a b&c") == \
        "https://h.example/webhooks/sms?tenant=acme&sb_ref=a%20b%26c"


def test_the_signed_url_is_the_configured_one_with_the_request_s_query() -> None:
    configured = "https://h.example/webhooks/sms?tenant=acme"
    assert signed_url(configured, "tenant=acme&sb_ref=c.m") == "https://h.example/webhooks/sms?tenant=acme&sb_ref=c.m"
    assert signed_url(configured, "") == "https://h.example/webhooks/sms"
    assert signed_url(configured, None) == configured  # a caller that passes no query: the URL as configured
    assert query_of({QUERY_HEADER: "a=1"}) == "a=1"
    assert query_of({}) is None


def test_only_receipts_without_a_reference_take_the_query_s() -> None:
    bare = ReceiptItem("sms", "AC1", "SM1", ReceiptStatus.DELIVERED, AT)
    own = ReceiptItem("sms", "AC1", "SM2", ReceiptStatus.SENT, AT, message_id="c.other")
    inbound = InboundItem("sms", "AC1", "SM3", "+15551234567", AT, "text", text="hi")
    items = with_callback_reference([bare, own, inbound], "tenant=acme&sb_ref=c.m")
    assert items[2] is inbound  # an inbound message is the user's, not a receipt of ours
    assert [item.message_id for item in items[:2]] == ["c.m", "c.other"]  # type: ignore[union-attr]
    assert with_callback_reference([bare], "tenant=acme") == [bare]
