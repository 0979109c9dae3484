"""The WhatsApp driver over an in-memory transport: request shape, answers, errors, token handling, logging."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest

from connectors import (
    HandshakeRejected,
    InMemoryTransport,
    LocalErrorCode,
    OutboundMessage,
    Outcome,
    ProviderError,
    SecretSource,
    Text,
    TransportError,
    TransportRequest,
    TransportResponse,
    TransportTimeout,
)
from connectors.whatsapp import GRAPH_API_VERSION, WHATSAPP_ERROR_CODES, WhatsAppConfig, WhatsAppDriver
from connectors.whatsapp_simulator import error_body
from tests.contract.whatsapp_support import ACCESS_TOKEN, REFERENCE_OUTCOMES, driver_config

DOCS = Path(__file__).resolve().parents[3] / "docs" / "CONNECTORS.md"
MESSAGE = OutboundMessage("msg-7", "106540352242922", "+15551234567", Text("Your order shipped"))
OK = TransportResponse(200, {"Content-Type": "application/json"}, json.dumps({
    "messaging_product": "whatsapp", "contacts": [{"input": "+15551234567", "wa_id": "15551234567"}],
    "messages": [{"id": "wamid.HBgN", "message_status": "accepted"}]}).encode())


def meta_error(code: int, status: int = 400, **extra: object) -> TransportResponse:
    body = error_body(code, "details from Meta", "AtraceId")
    body["error"].update(extra)
    return TransportResponse(status, {}, json.dumps(body).encode())


def driver_with(*responses: TransportResponse | TransportError,
                config: WhatsAppConfig | None = None) -> tuple[WhatsAppDriver, InMemoryTransport]:
    transport = InMemoryTransport.scripted(responses)
    return WhatsAppDriver(config or driver_config("https://graph.example"), transport=transport), transport


async def test_send_posts_to_the_pinned_version_with_the_bearer_token() -> None:
    driver, transport = driver_with(OK)
    result = await driver.send(MESSAGE)
    assert result.outcome is Outcome.ACCEPTED
    assert (result.provider_message_id, result.recipient_id, result.provider_status) == (
        "wamid.HBgN", "15551234567", "accepted")
    [request] = transport.requests
    assert request.method == "POST"
    assert request.url == f"https://graph.example/{GRAPH_API_VERSION}/106540352242922/messages"
    assert re.fullmatch(r"v\d+\.0", GRAPH_API_VERSION)
    assert request.headers == {"Authorization": f"Bearer {ACCESS_TOKEN}", "Content-Type": "application/json"}
    assert json.loads(request.body or b"")["biz_opaque_callback_data"] == "msg-7"


async def test_meta_error_body_is_read_into_a_provider_error() -> None:
    driver, _ = driver_with(meta_error(131056, is_transient=False))
    result = await driver.send(MESSAGE)
    assert result.outcome is Outcome.RETRY_RECIPIENT_LATER
    assert result.retry_after == 6.0
    assert result.error == ProviderError("131056", result.error.message if result.error else "", "details from Meta",
                                         400, False, "AtraceId")
    assert not result.maybe_sent


@pytest.mark.parametrize(("code", "status", "outcome", "retry_after", "throttled"), [
    (130429, 400, Outcome.RETRY_LATER, 1.0, True),
    (80007, 400, Outcome.RETRY_LATER, 60.0, True),
    (131047, 400, Outcome.NEEDS_TEMPLATE, None, False),
    (131026, 400, Outcome.PERMANENT_FAILURE, None, False),
    (368, 403, Outcome.STOP_ACCOUNT, None, False),
    (131000, 500, Outcome.RETRY_LATER, 5.0, False),
    (999999, 429, Outcome.RETRY_LATER, None, True),  # a code we do not know, with HTTP's "too many requests"
])
async def test_each_error_maps_to_its_outcome(code: int, status: int, outcome: Outcome,
                                              retry_after: float | None, throttled: bool) -> None:
    driver, _ = driver_with(meta_error(code, status))
    result = await driver.send(MESSAGE)
    assert (result.outcome, result.retry_after) == (outcome, retry_after)
    assert result.maybe_sent is (status >= 500)
    assert result.throttled is throttled  # a rate limit paces the sender; it never opens its circuit


async def test_http_errors_without_a_meta_body() -> None:
    driver, _ = driver_with(TransportResponse(502, {"Retry-After": "3"}, b"<html>Bad gateway</html>"),
                            TransportResponse(404, {}, b"nope"))
    gateway = await driver.send(MESSAGE)
    assert (gateway.outcome, gateway.retry_after, gateway.maybe_sent) == (Outcome.RETRY_LATER, 3.0, True)
    assert gateway.error is not None
    assert gateway.error.code == LocalErrorCode.HTTP
    missing = await driver.send(MESSAGE)
    assert missing.outcome is Outcome.PERMANENT_FAILURE


async def test_success_without_a_message_id_is_retried_as_maybe_sent() -> None:
    driver, _ = driver_with(TransportResponse(200, {}, b'{"messaging_product":"whatsapp"}'))
    result = await driver.send(MESSAGE)
    assert (result.outcome, result.maybe_sent) == (Outcome.RETRY_LATER, True)
    assert result.error is not None
    assert result.error.code == LocalErrorCode.BAD_RESPONSE


async def test_timeout_may_have_sent_but_refused_connection_did_not() -> None:
    driver, _ = driver_with(TransportTimeout("POST timed out"), TransportError("refused", maybe_sent=False))
    timed_out = await driver.send(MESSAGE)
    assert (timed_out.outcome, timed_out.maybe_sent) == (Outcome.RETRY_LATER, True)
    assert timed_out.error is not None
    assert timed_out.error.code == LocalErrorCode.TIMEOUT
    refused = await driver.send(MESSAGE)
    assert (refused.outcome, refused.maybe_sent) == (Outcome.RETRY_LATER, False)


async def test_invalid_message_is_refused_without_a_request() -> None:
    driver, transport = driver_with()
    result = await driver.send(OutboundMessage("m", "1", "2", Text("x" * 5000)))
    assert result.outcome is Outcome.PERMANENT_FAILURE
    assert transport.requests == []


async def test_missing_token_stops_the_account_without_a_request() -> None:
    config = WhatsAppConfig(access_token=SecretSource("NO_SUCH_TOKEN_VAR", environ={}))
    driver, transport = driver_with(config=config)
    result = await driver.send(MESSAGE)
    assert result.outcome is Outcome.STOP_ACCOUNT
    assert result.error is not None
    assert result.error.code == LocalErrorCode.CREDENTIALS
    assert "NO_SUCH_TOKEN_VAR" in result.error.message
    assert transport.requests == []


async def test_expired_token_is_reread_from_a_rotated_file_and_retried_once(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token", encoding="utf-8")

    def meta(request: TransportRequest) -> TransportResponse:
        if request.headers["Authorization"] == "Bearer old-token":
            # An operator rotates the token while this request is refused as expired.
            token_file.write_text("new-token", encoding="utf-8")
            stat = token_file.stat()
            os.utime(token_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
            return meta_error(190, 401)
        return OK

    transport = InMemoryTransport(handler=meta)
    source = SecretSource("WA_TOKEN", environ={"WA_TOKEN_FILE": str(token_file)})
    driver = WhatsAppDriver(WhatsAppConfig(access_token=source), transport=transport)
    result = await driver.send(MESSAGE)
    assert result.outcome is Outcome.ACCEPTED
    assert [r.headers["Authorization"] for r in transport.requests] == ["Bearer old-token", "Bearer new-token"]


async def test_expired_token_without_rotation_stops_after_one_request() -> None:
    driver, transport = driver_with(meta_error(190, 401), OK)
    result = await driver.send(MESSAGE)
    assert result.outcome is Outcome.STOP_ACCOUNT
    assert len(transport.requests) == 1


async def test_logs_mask_the_recipient_and_never_show_the_token(caplog: pytest.LogCaptureFixture) -> None:
    driver, _ = driver_with(OK, meta_error(131026))
    with caplog.at_level(logging.DEBUG):
        await driver.send(MESSAGE)
        await driver.send(MESSAGE)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "msg-7" in text
    assert "+15*******67" in text
    assert "5551234" not in text
    assert ACCESS_TOKEN not in text
    assert ACCESS_TOKEN not in repr(driver)
    assert ACCESS_TOKEN not in repr(driver.config)


def test_handshake_uses_the_verify_token() -> None:
    driver, _ = driver_with()
    query = {"hub.mode": "subscribe", "hub.verify_token": "contract-verify-token", "hub.challenge": "42"}
    assert driver.answer_handshake(query) == "42"
    with pytest.raises(HandshakeRejected):
        driver.answer_handshake({**query, "hub.verify_token": "guess"})


def test_from_settings_reads_names_of_variables_not_secrets() -> None:
    driver = WhatsAppDriver.from_settings({"base_url": "http://127.0.0.1:1", "api_version": "v23.0",
                                           "timeout": "2.5", "access_token_env": "MY_TOKEN"})
    assert driver.messages_url("123") == "http://127.0.0.1:1/v23.0/123/messages"
    assert driver.config.timeout == 2.5
    assert driver.config.access_token.env_var == "MY_TOKEN"
    with pytest.raises(ValueError, match="unknown whatsapp settings: access_token"):
        WhatsAppDriver.from_settings({"access_token": "EAAG..."})


def test_every_reference_code_is_in_the_table_with_its_outcome() -> None:
    assert {code: WHATSAPP_ERROR_CODES[code].outcome for code in REFERENCE_OUTCOMES} == dict(REFERENCE_OUTCOMES)


def test_docs_outcome_table_matches_the_code_table() -> None:
    rows = re.findall(r"^\| (\d+(?:-\d+)?) \| [^|]+ \| `(\w+)` \|", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    documented = {}
    for codes, outcome in rows:
        low, _, high = codes.partition("-")
        for code in range(int(low), int(high or low) + 1):
            documented[code] = outcome
    assert documented == {code: rule.outcome.value for code, rule in WHATSAPP_ERROR_CODES.items()}
