"""Messenger specifics: the Send API request, Graph error codes and subcodes, hub signature, receipts, handshake."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from connectors import (
    SIGNATURE_HEADER,
    HandshakeRejected,
    InboundItem,
    InMemoryTransport,
    LocalErrorCode,
    OutboundMessage,
    Outcome,
    ProviderError,
    ReceiptItem,
    ReceiptStatus,
    SignatureInvalid,
    Text,
    TransportResponse,
    UnhandledItem,
)
from connectors.messenger import (
    GRAPH_API_VERSION,
    MESSENGER_ERROR_CODES,
    MESSENGER_SUBCODES,
    MessengerDriver,
)
from tests.contract.messenger_support import (
    APP_SECRET,
    ERRORS,
    PAGE_ID,
    PAGE_TOKEN,
    PSID,
    VERIFY_TOKEN,
    FakeSendApi,
    config,
    raw,
    response,
)
from tests.unit.connectors.docs_tables import check

MESSAGE = OutboundMessage("msg-7", PAGE_ID, PSID, Text("Your order shipped"))


def driver(*answers: TransportResponse) -> tuple[MessengerDriver, InMemoryTransport]:
    transport = InMemoryTransport.scripted(answers) if answers else InMemoryTransport(handler=FakeSendApi())
    return MessengerDriver(config(), transport=transport), transport


async def test_send_request_carries_our_id_as_metadata() -> None:
    messenger, transport = driver()
    result = await messenger.send(MESSAGE)
    assert (result.outcome, result.recipient_id) == (Outcome.ACCEPTED, PSID)
    request = transport.requests[0]
    assert request.url == f"https://graph.invalid/{GRAPH_API_VERSION}/me/messages"
    assert request.headers["Authorization"] == f"Bearer {PAGE_TOKEN}"
    assert PAGE_TOKEN not in request.url
    assert json.loads(request.body or b"") == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                                               "message": {"text": "Your order shipped", "metadata": "msg-7"}}


@pytest.mark.parametrize("outcome", list(ERRORS), ids=str)
async def test_graph_errors_are_read_with_their_subcode(outcome: Outcome) -> None:
    status, body = ERRORS[outcome]
    messenger, _ = driver(response(status, body))
    result = await messenger.send(MESSAGE)
    assert result.outcome is outcome
    graph = body["error"]
    assert isinstance(graph, dict)
    assert result.error is not None
    assert result.error.code == str(graph["code"])
    assert result.error.details == (str(graph["error_subcode"]) if "error_subcode" in graph else None)
    assert result.error.trace_id is not None
    if outcome is Outcome.RETRY_LATER:
        assert result.retry_after == 60.0


async def test_answers_that_are_not_graph_errors() -> None:
    messenger, _ = driver(TransportResponse(503, {"Retry-After": "9"}, b"upstream"), response(200, {}))
    gateway = await messenger.send(MESSAGE)
    assert (gateway.outcome, gateway.maybe_sent, gateway.retry_after) == (Outcome.RETRY_LATER, True, 9.0)
    assert gateway.error is not None
    assert gateway.error.code == LocalErrorCode.HTTP
    empty = await messenger.send(MESSAGE)
    assert empty.error is not None
    assert empty.error.code == LocalErrorCode.BAD_RESPONSE


def test_code_tables() -> None:
    messenger, _ = driver()
    assert {code: messenger.classify(ProviderError(code)) for code in MESSENGER_ERROR_CODES} == MESSENGER_ERROR_CODES
    assert {key: messenger.classify(ProviderError(key[0], details=key[1])) for key in MESSENGER_SUBCODES} == \
        MESSENGER_SUBCODES
    assert messenger.classify(ProviderError("10", details="2018278")) is Outcome.NEEDS_TEMPLATE
    assert messenger.classify(ProviderError("10", details="999")) is Outcome.STOP_ACCOUNT
    assert messenger.classify(ProviderError("551", is_transient=True)) is Outcome.RETRY_LATER
    assert messenger.classify(ProviderError("190", is_transient=True)) is Outcome.STOP_ACCOUNT


def test_signature_vector_and_handshake() -> None:
    messenger, _ = driver()
    body = raw("delivery")
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    messenger.verify_webhook({SIGNATURE_HEADER: expected}, body)
    with pytest.raises(SignatureInvalid):
        messenger.verify_webhook({SIGNATURE_HEADER: expected}, body.replace(b"42", b"41"))
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    assert messenger.answer_handshake(query) == "1158201444"
    with pytest.raises(HandshakeRejected):
        messenger.answer_handshake({**query, "hub.verify_token": "wrong"})


def test_events_parse_into_items() -> None:
    messenger, _ = driver()
    text, = messenger.parse_webhook(raw("message_text"))
    assert isinstance(text, InboundItem)
    assert (text.sender, text.account_id, text.text, text.kind) == (PSID, PAGE_ID, "Where is my order?", "text")
    quick, = messenger.parse_webhook(raw("message_quick_reply"))
    assert isinstance(quick, InboundItem)
    assert (quick.kind, quick.payload, quick.reply_to) == ("button", "RESCHEDULE_TOMORROW",
                                                          "m_outbound000000000000000042")
    image, = messenger.parse_webhook(raw("message_attachment"))
    assert isinstance(image, InboundItem)
    assert image.media is not None
    assert image.kind == "image"
    assert image.media.url is not None
    assert image.media.url.startswith("https://scontent")
    echo, = messenger.parse_webhook(raw("message_echo"))
    assert isinstance(echo, ReceiptItem)
    assert (echo.status, echo.message_id, echo.provider_message_id, echo.recipient_id) == (
        ReceiptStatus.SENT, "msg-0001", "m_outbound000000000000000042", PSID)
    delivered = messenger.parse_webhook(raw("delivery"))
    assert [(r.provider_message_id, r.status, r.watermark) for r in delivered if isinstance(r, ReceiptItem)] == [
        ("m_outbound000000000000000042", ReceiptStatus.DELIVERED, False),
        ("m_outbound000000000000000043", ReceiptStatus.DELIVERED, False),
        ("watermark:1732550640000", ReceiptStatus.DELIVERED, True)]  # it also covers messages the mids leave out
    read, = messenger.parse_webhook(raw("read"))
    assert isinstance(read, ReceiptItem)
    assert (read.provider_message_id, read.recipient_id, read.message_id, read.watermark) == (
        "watermark:1732550699000", PSID, None, True)
    assert read.occurred_at.timestamp() == 1732550699
    batch = messenger.parse_webhook(raw("batch"))
    assert isinstance(batch[1], ReceiptItem)
    assert batch[1].provider_message_id == "watermark:1732550755000"
    assert isinstance(batch[3], UnhandledItem)
    assert batch[3].source == "optin"
    broken, = messenger.parse_webhook(b'{"object": "page", "entry": [{"id": "1", "messaging": [{"sender": {}}]}]}')
    assert isinstance(broken, UnhandledItem)


def test_from_settings_reads_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret")
    monkeypatch.setenv("SWITCHBOARD_MESSENGER_PAGE_TOKEN", "env-token")
    monkeypatch.setenv("SWITCHBOARD_MESSENGER_APP_SECRET_FILE", str(secret_file))
    messenger = MessengerDriver.from_settings({"api_version": "v23.0"}, transport=InMemoryTransport())
    assert messenger.messages_url.endswith("/v23.0/me/messages")
    assert messenger.config.page_token.get().reveal() == "env-token"
    body = b'{"object":"page","entry":[]}'
    messenger.verify_webhook({SIGNATURE_HEADER: "sha256=" + hmac.new(b"file-secret", body, hashlib.sha256).hexdigest()},
                             body)
    assert "env-token" not in repr(messenger) + repr(messenger.config)


def test_docs_outcome_table_matches_the_code_tables() -> None:
    messenger, _ = driver()
    check("Outcome of every Messenger error code", messenger.classify,
          [*MESSENGER_ERROR_CODES, *("/".join(key) for key in MESSENGER_SUBCODES)])
