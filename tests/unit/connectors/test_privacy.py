"""Phone numbers are masked and credentials never show in repr, str or logs; secrets come from env or a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors import MissingSecret, OutboundMessage, Outcome, Secret, SecretSource, SendResult, Text, mask_phone


@pytest.mark.parametrize(("number", "masked"), [
    ("+15551234567", "+15*******67"),
    ("15551234567", "15*******67"),
    ("972987654321", "97********21"),
    ("123456", "******"),
    ("", "<none>"),
    (None, "<none>"),
])
def test_mask_phone(number: str | None, masked: str) -> None:
    assert mask_phone(number) == masked


def test_mask_phone_keeps_too_few_digits_to_dial() -> None:
    masked = mask_phone("+4915112345678")
    assert sum(ch.isdigit() for ch in masked) == 4
    assert len(masked) == len("+4915112345678")


def test_message_and_result_reprs_mask_the_recipient() -> None:
    message = OutboundMessage("m-1", "100000000000001", "+15551234567", Text("hi"))
    result = SendResult(Outcome.ACCEPTED, "m-1", "wamid.x", recipient_id="15551234567")
    assert "15551234567" not in repr(message)
    assert "+15*******67" in repr(message)
    assert "15551234567" not in repr(result)
    assert "wamid.x" in repr(result)


def test_secret_never_shows_itself() -> None:
    secret = Secret("EAAG-very-secret")
    assert "very-secret" not in repr(secret)
    assert "very-secret" not in str(secret)
    assert "very-secret" not in f"{secret}"
    assert secret.reveal() == "EAAG-very-secret"
    assert secret == Secret("EAAG-very-secret")
    assert "very-secret" not in repr(SecretSource.of("EAAG-very-secret"))


def test_secret_source_prefers_the_variable_then_the_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n", encoding="utf-8")
    assert SecretSource("TOKEN", environ={"TOKEN": "from-env"}).get().reveal() == "from-env"
    assert SecretSource("TOKEN", environ={"TOKEN_FILE": str(token_file)}).get().reveal() == "from-file"


def test_secret_source_rereads_a_rotated_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first", encoding="utf-8")
    source = SecretSource("TOKEN", environ={"TOKEN_FILE": str(token_file)})
    assert source.get().reveal() == "first"
    token_file.write_text("second", encoding="utf-8")
    stat = token_file.stat()
    os.utime(token_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new mtime even on coarse clocks
    assert source.get().reveal() == "second"


def test_missing_secret_names_the_variables_not_a_value(tmp_path: Path) -> None:
    with pytest.raises(MissingSecret, match="set TOKEN or TOKEN_FILE"):
        SecretSource("TOKEN", environ={}).get()
    with pytest.raises(MissingSecret, match="cannot be read"):
        SecretSource("TOKEN", environ={"TOKEN_FILE": str(tmp_path / "absent")}).get()
