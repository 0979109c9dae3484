"""Webhook security helpers: X-Hub-Signature-256 over raw bytes in constant time, and the GET handshake."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connectors import (
    SIGNATURE_HEADER,
    HandshakeRejected,
    SignatureInvalid,
    SignatureMissing,
    answer_hub_challenge,
    header_value,
    hub_signature,
    verify_hub_signature,
)

BODY = b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[]}]}'
SECRET = "app-secret"


def test_signature_is_sha256_hmac_hex_of_the_raw_body() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert hub_signature(BODY, SECRET) == f"sha256={expected}"


def test_valid_signature_passes_under_any_header_case() -> None:
    signature = hub_signature(BODY, SECRET)
    for name in (SIGNATURE_HEADER, SIGNATURE_HEADER.lower(), SIGNATURE_HEADER.upper()):
        verify_hub_signature({name: signature}, BODY, SECRET)


def test_uppercase_hex_is_the_same_signature() -> None:
    signature = hub_signature(BODY, SECRET)
    verify_hub_signature({SIGNATURE_HEADER: "sha256=" + signature[7:].upper()}, BODY, SECRET)


@pytest.mark.parametrize("headers", [{}, {SIGNATURE_HEADER: ""}, {"Content-Type": "application/json"}])
def test_missing_signature_is_401(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureMissing) as refused:
        verify_hub_signature(headers, BODY, SECRET)
    assert refused.value.http_status == 401


@pytest.mark.parametrize("value", [
    "sha1=" + "0" * 40,  # the old header's scheme
    "sha256=" + "0" * 64,
    "sha256=zz",
    "sha256=\u00e9\u00e9",  # non-ASCII must be refused, not crash compare_digest
])
def test_wrong_signature_is_403(value: str) -> None:
    with pytest.raises(SignatureInvalid) as refused:
        verify_hub_signature({SIGNATURE_HEADER: value}, BODY, SECRET)
    assert refused.value.http_status == 403


def test_signature_is_over_the_exact_bytes() -> None:
    respaced = BODY.replace(b",", b", ")  # same JSON, different bytes
    with pytest.raises(SignatureInvalid):
        verify_hub_signature({SIGNATURE_HEADER: hub_signature(BODY, SECRET)}, respaced, SECRET)
    with pytest.raises(SignatureInvalid):
        verify_hub_signature({SIGNATURE_HEADER: hub_signature(BODY, "other-secret")}, BODY, SECRET)


def test_verification_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verify_hub_signature({SIGNATURE_HEADER: hub_signature(BODY, SECRET)}, BODY, SECRET)
    with pytest.raises(HandshakeRejected):
        answer_hub_challenge({"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"}, "y")
    assert len(calls) == 2


def test_handshake_echoes_the_challenge() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    assert answer_hub_challenge(query, "vt") == "1158201444"


@pytest.mark.parametrize("query", [
    {"hub.mode": "unsubscribe", "hub.verify_token": "vt", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": "vt"},
    {},
])
def test_handshake_refusals_are_403(query: dict[str, str]) -> None:
    with pytest.raises(HandshakeRejected) as refused:
        answer_hub_challenge(query, "vt")
    assert refused.value.http_status == 403


def test_header_value_is_case_insensitive() -> None:
    assert header_value({"x-hub-signature-256": "a"}, "X-Hub-Signature-256") == "a"
    assert header_value({"Other": "b"}, "X-Hub-Signature-256") is None
