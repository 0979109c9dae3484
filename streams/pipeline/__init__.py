"""The message pipeline: triggers, the single writer per contact, and the dispatcher per sender account."""

from streams.pipeline._commands import (
    COMMAND_KINDS,
    PRIORITIES,
    CommandError,
    check_command,
    check_job,
    parse_reference,
    reference_trace,
    send_reference,
)
from streams.pipeline._dispatch import BreakerSettings, CircuitBreaker, Dispatcher, Limits, SenderState
from streams.pipeline._state import ContactRow, MessageSlot
from streams.pipeline._writer import STOP_WORDS, Effects, Emitted, Writer, is_stop

__all__ = [
    "COMMAND_KINDS",
    "PRIORITIES",
    "STOP_WORDS",
    "BreakerSettings",
    "CircuitBreaker",
    "CommandError",
    "ContactRow",
    "Dispatcher",
    "Effects",
    "Emitted",
    "Limits",
    "MessageSlot",
    "SenderState",
    "Writer",
    "check_command",
    "check_job",
    "is_stop",
    "parse_reference",
    "reference_trace",
    "send_reference",
]
