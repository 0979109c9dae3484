"""LINE specifics: the push request and its retry key, status mapping, x-line-signature, event parsing, secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest

from connectors import (
    InboundItem,
    InMemoryTransport,
    LocalErrorCode,
    OutboundMessage,
    Outcome,
    ProviderError,
    SignatureInvalid,
    SignatureMissing,
    Text,
    TransportResponse,
    UnhandledItem,
)
from connectors.line import (
    LINE_STATUS_OUTCOMES,
    RETRY_KEY_HEADER,
    SIGNATURE_HEADER,
    LineDriver,
    line_signature,
    retry_key,
)
from tests.contract.line_support import ACCESS_TOKEN, CHANNEL_SECRET, USER_ID, FakeLine, config, raw, response
from tests.unit.connectors.docs_tables import check

MESSAGE = OutboundMessage("msg-7", "switchboard", USER_ID, Text("Your order shipped"))


def driver(*answers: TransportResponse) -> tuple[LineDriver, InMemoryTransport]:
    transport = InMemoryTransport.scripted(answers) if answers else InMemoryTransport(handler=FakeLine())
    return LineDriver(config(), transport=transport), transport


def test_retry_key_is_a_uuid_fixed_by_our_message_id() -> None:
    key = retry_key("msg-7")
    assert uuid.UUID(key).version == 5
    assert key == retry_key("msg-7") == str(uuid.uuid5(uuid.UUID("5b2d6c1e-7f3a-5e0b-9c4d-2a1f0e6b8d37"), "msg-7"))
    # Pinned: a changed namespace would defeat LINE's dedupe for pushes retried across a deploy.
    assert key == "d93cc70c-23e0-5525-9acb-30859a865729"
    assert retry_key("msg-8") != key


async def test_push_request_and_a_retried_push_is_deduplicated() -> None:
    line, transport = driver()
    first = await line.send(MESSAGE)
    again = await line.send(MESSAGE)
    assert first.outcome is again.outcome is Outcome.ACCEPTED
    assert first.provider_message_id == again.provider_message_id == "468789577898260001"
    assert (first.provider_status, again.provider_status) == ("sent", "duplicate")
    one, two = transport.requests
    assert one.url == "https://line.invalid/v2/bot/message/push"
    assert one.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert one.headers[RETRY_KEY_HEADER] == two.headers[RETRY_KEY_HEADER] == retry_key("msg-7")
    assert json.loads(one.body or b"") == {"to": USER_ID, "messages": [{"type": "text", "text": "Your order shipped"}]}


async def test_409_without_a_body_uses_the_accepted_request_id() -> None:
    line, _ = driver(TransportResponse(409, {"x-line-accepted-request-id": "req-earlier"}, b""))
    result = await line.send(MESSAGE)
    assert (result.outcome, result.provider_message_id) == (Outcome.ACCEPTED, "req-earlier")


@pytest.mark.parametrize(("status", "message", "outcome"), [
    (400, "The request body has 1 error(s)", Outcome.PERMANENT_FAILURE),
    (401, "Authentication failed", Outcome.STOP_ACCOUNT),
    (403, "Not authorized to use this endpoint", Outcome.STOP_ACCOUNT),
    (429, "Too many requests", Outcome.RETRY_LATER),
    (429, "You have reached your monthly limit.", Outcome.STOP_ACCOUNT),
    (500, "Internal server error", Outcome.RETRY_LATER),
    (503, "Service unavailable", Outcome.RETRY_LATER),
])
async def test_error_statuses(status: int, message: str, outcome: Outcome) -> None:
    line, _ = driver(response(status, {"message": message, "details": [{"message": "m", "property": "p"}]},
                              {"Retry-After": "3"}))
    result = await line.send(MESSAGE)
    assert result.outcome is outcome
    assert result.error is not None
    assert (result.error.code, result.error.message, result.error.details) == (str(status), message, "p: m")
    assert result.retry_after == 3.0
    assert result.maybe_sent is (status >= 500)
    # Only a rate limit to wait out is a throttle; a used-up monthly quota is a failure the circuit should count.
    assert result.throttled is (message == "Too many requests")


async def test_errors_without_a_line_body_and_invalid_messages() -> None:
    line, transport = driver(TransportResponse(502, {}, b"<html/>"))
    result = await line.send(MESSAGE)
    assert result.error is not None
    assert result.error.code == LocalErrorCode.HTTP
    assert result.outcome is Outcome.RETRY_LATER
    refused = await line.send(OutboundMessage("m", "s", USER_ID, Text("x" * 5001)))
    assert refused.error is not None
    assert refused.error.code == LocalErrorCode.INVALID_MESSAGE
    assert len(transport.requests) == 1


def test_status_table() -> None:
    line, _ = driver()
    assert {code: line.classify(ProviderError(code)) for code in LINE_STATUS_OUTCOMES} == LINE_STATUS_OUTCOMES
    assert line.classify(ProviderError("504")) is Outcome.RETRY_LATER
    assert line.classify(ProviderError("404")) is Outcome.PERMANENT_FAILURE


def test_signature_vector_computed_from_the_channel_secret() -> None:
    body = raw("message_text")
    expected = base64.b64encode(hmac.new(CHANNEL_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert line_signature(body, CHANNEL_SECRET) == expected
    line, _ = driver()
    line.verify_webhook({SIGNATURE_HEADER: expected}, body)
    line.verify_webhook({"X-Line-Signature": expected}, body)
    with pytest.raises(SignatureMissing):
        line.verify_webhook({}, body)
    with pytest.raises(SignatureInvalid):
        line.verify_webhook({SIGNATURE_HEADER: line_signature(body, "another-secret")}, body)
    with pytest.raises(SignatureInvalid):
        line.verify_webhook({SIGNATURE_HEADER: expected}, body.replace(b"order", b"ordeR"))


def test_events_parse_into_items() -> None:
    line, _ = driver()
    text, = line.parse_webhook(raw("message_text"))
    assert isinstance(text, InboundItem)
    assert (text.provider_message_id, text.sender, text.text, text.account_id) == (
        "468789577898262530", USER_ID, "Where is my order?", "U00000000000000000000000000000bot")
    assert text.occurred_at.timestamp() == pytest.approx(1732550400.123)
    image, = line.parse_webhook(raw("message_image_group"))
    assert isinstance(image, InboundItem)
    assert image.media is not None
    assert (image.kind, image.sender, image.user_id, image.reply_to, image.media.media_id) == (
        "image", "Ca56f94637c0123456789abcdef012345", USER_ID, "468789577898262529", "354718705033693861")
    postback, = line.parse_webhook(raw("postback"))
    assert isinstance(postback, InboundItem)
    assert postback.payload == "action=reschedule&order=42"
    follow, message, unfollow = line.parse_webhook(raw("follow_message_unfollow"))
    assert isinstance(follow, UnhandledItem)
    assert follow.source == "follow"
    assert isinstance(message, InboundItem)
    assert message.text == "STOP"
    assert isinstance(unfollow, UnhandledItem)
    assert unfollow.source == "unfollow"
    assert line.parse_webhook(raw("verification")) == []
    broken, = line.parse_webhook(b'{"events": [{"type": "message", "timestamp": 1}]}')
    assert isinstance(broken, UnhandledItem)


def test_from_settings_reads_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret")
    monkeypatch.setenv("SWITCHBOARD_LINE_CHANNEL_ACCESS_TOKEN", "env-token")
    monkeypatch.setenv("SWITCHBOARD_LINE_CHANNEL_SECRET_FILE", str(secret_file))
    line = LineDriver.from_settings({}, transport=InMemoryTransport())
    assert line.config.access_token.get().reveal() == "env-token"
    line.verify_webhook({SIGNATURE_HEADER: line_signature(b"{}", "file-secret")}, b"{}")
    assert "env-token" not in repr(line) + repr(line.config)
    with pytest.raises(ValueError, match="channel_secret"):
        LineDriver.from_settings({"channel_secret": "leak"})


def test_docs_outcome_table_matches_the_code_table() -> None:
    line, _ = driver()
    check("Outcome of every LINE status", line.classify, LINE_STATUS_OUTCOMES)
