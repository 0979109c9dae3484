"""JSON log lines: one object per line with the current trace, phone numbers masked in messages, args and extras."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from switchboard import logs, tracing
from switchboard.cli import main

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("test.logs")
    handler = logs.handler("json", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def read(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_current_trace(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    with tracing.use(tracing.TraceParent(TRACE, SPAN)):
        logger.info("sent %s", "m-1", extra={"attempt": 2})
    logger.warning("outside")
    inside, outside = read(stream)
    assert inside["message"] == "sent m-1"
    assert (inside["level"], inside["logger"], inside["trace_id"], inside["span_id"]) == (
        "INFO", "test.logs", TRACE, SPAN)
    assert inside["attempt"] == 2
    assert inside["time"].endswith("+00:00")
    assert (outside["trace_id"], outside["span_id"]) == (None, None)


@pytest.mark.parametrize("number", ["+4917012345678", "+15551234567", "+819012345678", "4917012345678"])
def test_e164_numbers_are_masked_in_messages_args_and_extras(lines: tuple[logging.Logger, io.StringIO],
                                                             number: str) -> None:
    logger, stream = lines
    logger.info(f"to {number} directly")
    logger.info("to %s as an argument", number)
    logger.info("an extra", extra={"recipient": number, "note": f"call {number}", "nested": {"to": number},
                                   "many": [number]})
    text = stream.getvalue()
    assert number.lstrip("+") not in text
    message, argument, extra = read(stream)
    assert "*" in message["message"]
    assert "*" in argument["message"]
    assert extra["recipient"].endswith(number[-2:])
    assert "*" in extra["note"]
    assert "*" in extra["nested"]["to"]
    assert "*" in extra["many"][0]


def test_tracebacks_are_masked(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    try:
        raise ValueError("bad number +4917012345678")
    except ValueError:
        logger.exception("failed")
    [entry] = read(stream)
    assert "ValueError: bad number +49*********78" in entry["exception"]


def test_ids_and_times_are_not_mistaken_for_numbers(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    kept = f"trace {TRACE} message 123e4567-e89b-12d3-a456-426614174000 span {SPAN} partition 3@1234"
    logger.info(kept)
    assert read(stream)[0]["message"] == kept


def test_the_text_format_shows_the_trace() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.text")
    logger.addHandler(logs.handler("text", stream))
    logger.propagate = False
    with tracing.use(tracing.TraceParent(TRACE, SPAN)):
        logger.warning("to +4917012345678")
    assert f"WARNING test.text [{TRACE}] to +49*********78" in stream.getvalue()


def test_services_log_json_and_console_commands_text(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(logs.ENV_FORMAT, raising=False)
    main(["config", "check"])
    logging.getLogger("test.cli").warning("console")
    main(["--log-format", "json", "config", "check"])
    logging.getLogger("test.cli").warning("service")
    main(["config", "check", "--log-format", "text"])  # anywhere on the line
    logging.getLogger("test.cli").warning("text again")
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("WARNING test.cli console")
    assert json.loads(err[1])["message"] == "service"
    assert err[2].endswith("WARNING test.cli text again")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        logs.configure("xml")


def test_faust_gets_the_same_handler() -> None:
    config = logs.dict_config("WARN")
    assert config["root"] == {"level": "WARN", "handlers": ["default"]}
    built = config["handlers"]["default"]["()"](fmt="json")
    assert isinstance(built.formatter, logs.JsonFormatter)
