"""Twilio SMS specifics: the form request and basic auth, Twilio codes, X-Twilio-Signature, callbacks, secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from connectors import (
    InboundItem,
    InMemoryTransport,
    LocalErrorCode,
    MissingSecret,
    OutboundMessage,
    Outcome,
    ProviderError,
    ReceiptItem,
    ReceiptStatus,
    SecretSource,
    SignatureInvalid,
    SignatureMissing,
    Text,
    TransportResponse,
    UnhandledItem,
)
from connectors._callback_reference import QUERY_HEADER
from connectors.twilio_sms import (
    SIGNATURE_HEADER,
    TWILIO_ERROR_CODES,
    TwilioSmsConfig,
    TwilioSmsDriver,
    twilio_signature,
)
from tests.contract.sms_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM,
    RECIPIENT,
    WEBHOOK_URL,
    FakeTwilio,
    config,
    error_body,
    expected_signature,
    raw,
    response,
)
from tests.unit.connectors.docs_tables import check

MESSAGE = OutboundMessage("msg-7", FROM, RECIPIENT, Text("Your order shipped"))


def driver(*answers: TransportResponse) -> tuple[TwilioSmsDriver, InMemoryTransport]:
    transport = InMemoryTransport.scripted(answers) if answers else InMemoryTransport(handler=FakeTwilio())
    return TwilioSmsDriver(config(), transport=transport), transport


async def test_send_posts_a_form_with_basic_auth_and_the_status_callback() -> None:
    sms, transport = driver()
    result = await sms.send(MESSAGE)
    assert (result.outcome, result.provider_status) == (Outcome.ACCEPTED, "queued")
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("SM")
    request = transport.requests[0]
    assert request.url == f"https://twilio.invalid/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qsl((request.body or b"").decode()) == [
        ("To", RECIPIENT), ("From", FROM), ("Body", "Your order shipped"),
        ("StatusCallback", f"{WEBHOOK_URL}&sb_ref=msg-7")]  # the configured URL and our reference


async def test_a_messaging_service_sends_as_messaging_service_sid() -> None:
    sms, transport = driver()
    await sms.send(OutboundMessage("m", "MG00000000000000000000000000000002", RECIPIENT, Text("hi")))
    form = dict(parse_qsl((transport.requests[0].body or b"").decode()))
    assert form["MessagingServiceSid"] == "MG00000000000000000000000000000002"
    assert "From" not in form


@pytest.mark.parametrize(("status", "code", "outcome", "revoked"), [
    (400, 21211, Outcome.PERMANENT_FAILURE, False),
    (400, 21610, Outcome.PERMANENT_FAILURE, True),
    (429, 20429, Outcome.RETRY_LATER, False),
    (401, 20003, Outcome.STOP_ACCOUNT, False),
    (500, 20500, Outcome.RETRY_LATER, False),
    (400, 12345, Outcome.PERMANENT_FAILURE, False),
])
async def test_twilio_errors(status: int, code: int, outcome: Outcome, revoked: bool) -> None:
    sms, _ = driver(response(status, error_body(code, status)))
    result = await sms.send(MESSAGE)
    assert (result.outcome, result.consent_revoked, result.maybe_sent) == (outcome, revoked, status >= 500)
    assert result.error is not None
    assert result.error.code == str(code)
    assert result.error.details == f"https://www.twilio.com/docs/errors/{code}"


async def test_invalid_numbers_and_missing_credentials_send_nothing() -> None:
    sms, transport = driver()
    for recipient in ("5551234567", "+0123", "+1555123456789012"):
        refused = await sms.send(OutboundMessage("m", FROM, recipient, Text("hi")))
        assert refused.error is not None
        assert refused.error.code == LocalErrorCode.INVALID_MESSAGE
    no_sid = TwilioSmsDriver(TwilioSmsConfig(account_sid=SecretSource("SB_TEST_NO_SUCH_SID")), transport=transport)
    missing = await no_sid.send(MESSAGE)
    assert missing.outcome is Outcome.STOP_ACCOUNT
    assert missing.error is not None
    assert missing.error.code == LocalErrorCode.CREDENTIALS
    assert transport.requests == []


def test_code_table() -> None:
    sms, _ = driver()
    assert {code: sms.classify(ProviderError(code)) for code in TWILIO_ERROR_CODES} == TWILIO_ERROR_CODES
    assert sms.classify(ProviderError("77777", http_status=503)) is Outcome.RETRY_LATER


def test_signature_vector_computed_from_the_auth_token() -> None:
    # Twilio's documented example ("Webhooks security": validating signatures), written out by hand.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
              ("From", "+12349013030"), ("To", "+18005551212")]
    data = url + "CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212"
    expected = base64.b64encode(hmac.new(b"12345", data.encode(), hashlib.sha1).digest()).decode()
    assert twilio_signature(url, list(reversed(params)), "12345") == expected


def test_callbacks_are_verified_against_the_configured_url() -> None:
    sms, _ = driver()
    body = raw("status_delivered")
    sms.verify_webhook({SIGNATURE_HEADER.lower(): expected_signature(WEBHOOK_URL, body)}, body)
    with pytest.raises(SignatureMissing):
        sms.verify_webhook({}, body)
    with pytest.raises(SignatureInvalid):  # signed for another URL (the query string counts)
        sms.verify_webhook({SIGNATURE_HEADER: expected_signature(WEBHOOK_URL.split("?")[0], body)}, body)
    with pytest.raises(SignatureInvalid):  # a parameter changed
        sms.verify_webhook({SIGNATURE_HEADER: expected_signature(WEBHOOK_URL, body)},
                           body.replace(b"delivered", b"failed"))
    without_url = TwilioSmsDriver(TwilioSmsConfig(auth_token=config().auth_token), transport=InMemoryTransport())
    with pytest.raises(MissingSecret, match="webhook_url"):
        without_url.verify_webhook({SIGNATURE_HEADER: "x"}, body)


async def test_a_status_callback_is_verified_against_the_url_it_came_to_with_our_reference() -> None:
    sms, transport = driver()
    await sms.send(OutboundMessage("c.m.t", FROM, RECIPIENT, Text("hi")))
    callback = dict(parse_qsl((transport.requests[0].body or b"").decode()))["StatusCallback"]
    query = callback.split("?", 1)[1]
    assert query == "tenant=acme&sb_ref=c.m.t"
    body = raw("status_delivered")
    signature = expected_signature(callback, body)
    sms.verify_webhook({SIGNATURE_HEADER: signature, QUERY_HEADER: query}, body)
    with pytest.raises(SignatureInvalid):  # another message's reference put in the URL: Twilio did not sign it
        sms.verify_webhook({SIGNATURE_HEADER: signature, QUERY_HEADER: "tenant=acme&sb_ref=c.other.t"}, body)
    with pytest.raises(SignatureInvalid):  # a receiver that passes no query verifies against webhook_url itself
        sms.verify_webhook({SIGNATURE_HEADER: signature}, body)
    inbound = raw("inbound_sms")  # to the number's URL: webhook_url as configured, its own query
    sms.verify_webhook({SIGNATURE_HEADER: expected_signature(WEBHOOK_URL, inbound), QUERY_HEADER: "tenant=acme"},
                       inbound)


def test_callbacks_parse_into_items() -> None:
    sms, _ = driver()
    delivered, = sms.parse_webhook(raw("status_delivered"))
    assert isinstance(delivered, ReceiptItem)
    assert (delivered.provider_message_id, delivered.status, delivered.account_id, delivered.recipient_id,
            delivered.message_id) == ("SM5f0a1e9c2b7d4e8f9a0b1c2d3e4f5a6b", ReceiptStatus.DELIVERED, ACCOUNT_SID,
                                      RECIPIENT, None)
    assert delivered.occurred_at == datetime(2024, 11, 25, 16, 12, tzinfo=UTC)
    undelivered, = sms.parse_webhook(raw("status_undelivered"))
    assert isinstance(undelivered, ReceiptItem)
    assert undelivered.status is ReceiptStatus.FAILED
    assert [error.code for error in undelivered.errors] == ["30003"]
    assert sms.classify(undelivered.errors[0]) is Outcome.RETRY_RECIPIENT_LATER
    # Callbacks carry no time: stored ones take the receiver's; the carrier's delivery time still wins.
    taken = datetime(2024, 11, 25, 16, 13, 7, tzinfo=UTC)
    [stored] = sms.parse_received(raw("status_undelivered"), taken)
    [carried] = sms.parse_received(raw("status_delivered"), taken)
    assert isinstance(stored, ReceiptItem)
    assert isinstance(carried, ReceiptItem)
    assert (stored.occurred_at, carried.occurred_at) == (taken, delivered.occurred_at)
    queued, = sms.parse_webhook(raw("status_queued"))
    assert isinstance(queued, UnhandledItem)
    assert queued.source == "status:queued"
    inbound, = sms.parse_webhook(raw("inbound_sms"))
    assert isinstance(inbound, InboundItem)
    assert (inbound.sender, inbound.text, inbound.kind) == (RECIPIENT, "Where is my order?", "text")
    assert "15551234567" not in repr(inbound)
    mms, = sms.parse_webhook(raw("inbound_mms"))
    assert isinstance(mms, InboundItem)
    assert mms.media is not None
    assert (mms.kind, mms.media.mime_type) == ("media", "image/jpeg")


def test_from_settings_reads_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    monkeypatch.setenv("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("SWITCHBOARD_TWILIO_AUTH_TOKEN_FILE", str(token_file))
    sms = TwilioSmsDriver.from_settings({"webhook_url": WEBHOOK_URL}, transport=InMemoryTransport())
    body = raw("status_sent")
    sms.verify_webhook({SIGNATURE_HEADER: expected_signature(WEBHOOK_URL, body, "file-token")}, body)
    assert "file-token" not in repr(sms) + repr(sms.config)
    with pytest.raises(ValueError, match="auth_token"):
        TwilioSmsDriver.from_settings({"auth_token": "leak"})
    monkeypatch.setenv("SWITCHBOARD_TWILIO_WEBHOOK_URL", "https://from-env.example.com/webhooks/sms")
    assert TwilioSmsDriver.from_settings({}).config.webhook_url == "https://from-env.example.com/webhooks/sms"
    assert TwilioSmsDriver.from_settings({"webhook_url": WEBHOOK_URL}).config.webhook_url == WEBHOOK_URL


def test_docs_outcome_table_matches_the_code_table() -> None:
    sms, _ = driver()
    check("Outcome of every Twilio error code", sms.classify, TWILIO_ERROR_CODES)


def test_a_failed_receipt_for_an_unsubscribed_number_withdraws_all_consent() -> None:
    sms, _ = driver()
    assert sms.opted_out(ProviderError("21610", "Attempt to send to unsubscribed recipient")) == "all"
    assert sms.opted_out(ProviderError("30003", "Unreachable destination handset")) is None
