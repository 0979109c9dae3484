"""Logging for every `switchboard` command: JSON lines (or text) with the current trace and phone numbers masked."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final

from switchboard import tracing

__all__ = ["FORMATS", "JsonFormatter", "MaskPhones", "TraceFields", "configure", "dict_config", "mask_text"]

FORMATS: Final = ("json", "text")
ENV_FORMAT: Final = "SWITCHBOARD_LOG_FORMAT"
ENV_LEVEL: Final = "SWITCHBOARD_LOG_LEVEL"

# An E.164-like run of digits standing alone: not inside a word, a hex id or a UUID segment.
_PHONE: Final = re.compile(r"(?<![\w-])\+?\d{7,15}(?![\w-])")
# Context fields whose whole value is a phone number or an address, whatever it looks like.
_PHONE_FIELDS: Final = frozenset({"phone", "address", "recipient", "wa_id", "to", "from"})
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                      "trace_id", "span_id"}
_state: dict[str, str] = {"format": "text", "level": "INFO"}


def mask_text(text: str) -> str:
    """Every phone-number-like run of digits in `text` masked ('+15551234567' -> '+15*******67')."""
    from connectors._privacy import mask_phone  # connectors import switchboard: imported late, not at load

    return _PHONE.sub(lambda match: mask_phone(match.group()), text)


class TraceFields(logging.Filter):
    """Adds trace_id and span_id of the current span (unless the call gave them as extras)."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = tracing.current()
        if not hasattr(record, "trace_id"):
            record.trace_id = span.trace_id if span is not None else None
        if not hasattr(record, "span_id"):
            record.span_id = span.span_id if span is not None else None
        return True


class MaskPhones(logging.Filter):
    """Masks phone numbers in the message (after its arguments are merged), the traceback and context fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD:
                setattr(record, name, _masked(name, value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace_id, span_id, then the context fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None), "span_id": getattr(record, "span_id", None),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k not in line})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    """A console line with the trace id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(trace)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        trace_id = getattr(record, "trace_id", None)
        record.trace = f" [{trace_id}]" if trace_id else ""
        return super().format(record)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]  # typeshed: generic over the stream
    """Ours, so that configuring again replaces it and nothing else; without a stream of its own it writes to
    whatever sys.stderr is at the time (a test's capture may replace and close it)."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr
        super().emit(record)


def handler(fmt: str | None = None, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler in the configured (or given) format, with the trace and masking filters."""
    made = _Handler(stream)
    made.setFormatter(JsonFormatter() if (fmt or _state["format"]) == "json" else _TextFormatter())
    made.addFilter(TraceFields())
    made.addFilter(MaskPhones())
    return made


def configure(fmt: str | None = None, level: str | int | None = None, stream: IO[str] | None = None) -> None:
    """Replaces the root logger's handlers by one in `fmt` ('json' or 'text'); level from SWITCHBOARD_LOG_LEVEL."""
    fmt = fmt or os.environ.get(ENV_FORMAT) or "json"
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    _state["format"] = fmt
    _state["level"] = str(level or os.environ.get(ENV_LEVEL) or "INFO").upper()
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:  # others' (pytest's capture) stay
        root.removeHandler(old)
    root.addHandler(handler(fmt, stream))
    root.setLevel(_state["level"])
    logging.captureWarnings(True)


def dict_config(level: str | int | None = None) -> dict[str, Any]:
    """The configuration as `logging.config.dictConfig` takes it (faust's worker applies one when it starts)."""
    chosen = str(level or _state["level"]).upper()
    return {"version": 1, "disable_existing_loggers": False,
            "handlers": {"default": {"()": handler, "fmt": _state["format"]}},
            "root": {"level": chosen, "handlers": ["default"]}}


def _masked(name: str, value: Any) -> Any:
    if isinstance(value, str):
        if name.lower() in _PHONE_FIELDS:
            from connectors._privacy import mask_phone

            return mask_phone(value)
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _masked(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(name, v) for v in value]
    return value
