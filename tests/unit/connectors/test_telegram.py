"""Telegram specifics: the sendMessage request, Bot API answers, secret-token check, Update parsing, secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from connectors import (
    InboundItem,
    InMemoryTransport,
    LocalErrorCode,
    OutboundMessage,
    Outcome,
    ProviderError,
    SecretSource,
    SignatureInvalid,
    SignatureMissing,
    Text,
    TransportResponse,
    TransportTimeout,
    UnhandledItem,
)
from connectors.telegram import SECRET_HEADER, TELEGRAM_ERROR_CODES, TelegramConfig, TelegramDriver
from tests.contract.telegram_support import BOT_TOKEN, CHAT_ID, WEBHOOK_SECRET, FakeBotApi, config, raw, response
from tests.unit.connectors.docs_tables import check

MESSAGE = OutboundMessage("msg-7", "switchboard_bot", CHAT_ID, Text("Your order shipped"))


def driver(*answers: TransportResponse) -> tuple[TelegramDriver, InMemoryTransport]:
    transport = InMemoryTransport.scripted(answers) if answers else InMemoryTransport(handler=FakeBotApi())
    return TelegramDriver(config(), transport=transport), transport


async def test_send_posts_json_to_the_bot_url() -> None:
    telegram, transport = driver()
    result = await telegram.send(OutboundMessage("msg-7", "bot", CHAT_ID, Text("Hi", preview_url=True),
                                                 reply_to=f"{CHAT_ID}:1366"))
    assert result.outcome is Outcome.ACCEPTED
    assert result.provider_message_id == f"{CHAT_ID}:1401"
    request = transport.requests[0]
    assert request.url == f"https://telegram.invalid/bot{BOT_TOKEN}/sendMessage"
    assert json.loads(request.body or b"") == {"chat_id": CHAT_ID, "text": "Hi",
                                               "link_preview_options": {"is_disabled": False},
                                               "reply_parameters": {"message_id": 1366}}


@pytest.mark.parametrize(("status", "body", "outcome", "retry_after", "revoked"), [
    (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
           "parameters": {"retry_after": 7}}, Outcome.RETRY_LATER, 7.0, False),
    (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
     Outcome.PERMANENT_FAILURE, None, True),
    (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot can't initiate conversation with a user"},
     Outcome.PERMANENT_FAILURE, None, False),
    (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
     Outcome.PERMANENT_FAILURE, None, False),
    (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, Outcome.STOP_ACCOUNT, None, False),
    (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, Outcome.RETRY_LATER, None, False),
])
async def test_bot_api_errors(status: int, body: dict[str, object], outcome: Outcome, retry_after: float | None,
                              revoked: bool) -> None:
    telegram, _ = driver(response(status, body))
    result = await telegram.send(MESSAGE)
    assert (result.outcome, result.retry_after, result.consent_revoked) == (outcome, retry_after, revoked)
    assert result.error is not None
    assert result.error.code == str(status)
    assert result.maybe_sent is (status >= 500)


async def test_answers_that_are_not_the_bot_api() -> None:
    telegram, _ = driver(TransportResponse(502, {}, b"<html>bad gateway</html>"),
                         TransportResponse(200, {}, b"{}"), response(200, {"ok": True, "result": {}}))
    gateway = await telegram.send(MESSAGE)
    assert (gateway.outcome, gateway.maybe_sent) == (Outcome.RETRY_LATER, True)
    assert gateway.error is not None
    assert gateway.error.code == LocalErrorCode.HTTP
    for _ in range(2):
        odd = await telegram.send(MESSAGE)
        assert (odd.outcome, odd.maybe_sent) == (Outcome.RETRY_LATER, True)
        assert odd.error is not None
        assert odd.error.code == LocalErrorCode.BAD_RESPONSE


async def test_timeout_and_missing_token_and_invalid_content() -> None:
    telegram = TelegramDriver(config(), transport=InMemoryTransport.scripted([TransportTimeout("slow")]))
    timed_out = await telegram.send(MESSAGE)
    assert (timed_out.outcome, timed_out.maybe_sent) == (Outcome.RETRY_LATER, True)
    no_token = TelegramDriver(TelegramConfig(bot_token=SecretSource("SB_TEST_NO_SUCH_VAR")),
                              transport=InMemoryTransport())
    missing = await no_token.send(MESSAGE)
    assert missing.outcome is Outcome.STOP_ACCOUNT
    assert missing.error is not None
    assert missing.error.code == LocalErrorCode.CREDENTIALS
    for content in (Text(""), Text("x" * 4097)):
        refused = await telegram.send(OutboundMessage("m", "bot", CHAT_ID, content))
        assert refused.error is not None
        assert refused.error.code == LocalErrorCode.INVALID_MESSAGE


def test_error_table_and_unknown_codes() -> None:
    telegram, _ = driver()
    assert {code: telegram.classify(ProviderError(code)) for code in TELEGRAM_ERROR_CODES} == TELEGRAM_ERROR_CODES
    assert telegram.classify(ProviderError("503")) is Outcome.RETRY_LATER
    assert telegram.classify(ProviderError("weird", http_status=500)) is Outcome.RETRY_LATER
    assert telegram.classify(ProviderError("weird", http_status=400)) is Outcome.PERMANENT_FAILURE


def test_secret_token_is_compared_exactly() -> None:
    telegram, _ = driver()
    body = raw("message_text")
    telegram.verify_webhook({SECRET_HEADER.lower(): WEBHOOK_SECRET}, body)
    with pytest.raises(SignatureMissing):
        telegram.verify_webhook({SECRET_HEADER: ""}, body)
    for wrong in (WEBHOOK_SECRET[:-1], WEBHOOK_SECRET + "x", "é" * 5):
        with pytest.raises(SignatureInvalid):
            telegram.verify_webhook({SECRET_HEADER: wrong}, body)


def test_updates_parse_into_items() -> None:
    telegram, _ = driver()
    text, = telegram.parse_webhook(raw("message_text"))
    assert isinstance(text, InboundItem)
    assert (text.provider_message_id, text.sender, text.text, text.kind, text.profile_name, text.account_id) == (
        "123456789:1365", "123456789", "Where is my order?", "text", "Ada Lovelace", "switchboard_bot")
    assert text.occurred_at.timestamp() == 1732550400
    photo, = telegram.parse_webhook(raw("message_photo_reply"))
    assert isinstance(photo, InboundItem)
    assert photo.media is not None
    assert (photo.kind, photo.media.media_id, photo.media.caption, photo.reply_to) == (
        "image", "AgACAgQAAxkBAAIBW2LargeSize", "The parcel arrived damaged", "123456789:1366")
    edited, = telegram.parse_webhook(raw("edited_message"))
    assert isinstance(edited, InboundItem)
    assert (edited.kind, edited.sender, edited.user_id) == ("edited_text", "-1001987654321", "123456789")
    assert edited.occurred_at.timestamp() == 1732550560
    button, = telegram.parse_webhook(raw("callback_query"))
    assert isinstance(button, InboundItem)
    assert (button.kind, button.payload, button.reply_to) == ("button", "reschedule:yes", "123456789:1368")
    blocked, = telegram.parse_webhook(raw("my_chat_member_blocked"))
    assert isinstance(blocked, UnhandledItem)
    assert blocked.source == "my_chat_member"
    broken, = telegram.parse_webhook(b'{"update_id": 1, "message": {"message_id": 1}}')
    assert isinstance(broken, UnhandledItem)


def test_from_settings_reads_secrets_from_the_environment_or_a_file(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("SWITCHBOARD_TELEGRAM_BOT_TOKEN", "env-token")
    monkeypatch.setenv("SWITCHBOARD_TELEGRAM_WEBHOOK_SECRET_FILE", str(secret_file))
    telegram = TelegramDriver.from_settings({"base_url": "https://telegram.invalid"}, transport=InMemoryTransport())
    assert telegram.config.bot_token.get().reveal() == "env-token"
    telegram.verify_webhook({SECRET_HEADER: "from-a-file"}, b"{}")
    assert "env-token" not in repr(telegram) + repr(telegram.config)
    with pytest.raises(ValueError, match="bot_token"):
        TelegramDriver.from_settings({"bot_token": "leak"})


async def test_logs_mask_the_chat_and_never_show_the_token(caplog: pytest.LogCaptureFixture) -> None:
    telegram, _ = driver()
    with caplog.at_level(logging.DEBUG):
        await telegram.send(OutboundMessage("msg-log", "bot", "+15551234567", Text("hi")))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "msg-log" in text
    assert "+15*******67" in text
    assert BOT_TOKEN not in text
    assert "15551234567" not in text


def test_docs_outcome_table_matches_the_code_table() -> None:
    telegram, _ = driver()
    check("Outcome of every Telegram error", telegram.classify, TELEGRAM_ERROR_CODES)
