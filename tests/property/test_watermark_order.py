"""Messenger's receipts in any order: a message is delivered and read once each, when a watermark covers it."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline._state import ContactRow
from streams.pipeline._writer import Writer
from tests.unit.pipeline.conftest import outcome
from tests.unit.pipeline.test_writer_recipient_receipts import (
    NOON,
    by_recipient,
    echo,
    messenger_config,
    messenger_request,
)

CONFIG = messenger_config()
# Meta's send times of the two messages, and our clock's record of each answer: a little later.
SENT = (NOON + 1.0, NOON + 20.0)
ANSWERED = (NOON + 1.5, NOON + 20.5)
MARKS = st.floats(NOON, NOON + 40, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(delivered=MARKS, read=MARKS, seed=st.integers(0, 10_000))
def test_any_order_of_answers_echoes_and_watermarks_ends_the_same(delivered: float, read: float, seed: int) -> None:
    writer, row = Writer(lambda: CONFIG, random.Random(seed)), ContactRow()
    [first] = writer.handle(row, messenger_request("o-1"), NOON).jobs
    writer.handle(row, messenger_request("o-2"), NOON)  # waits behind the first (one message at a time)
    # The first's answer releases the second's job; everything after it may come in any order.
    [second] = writer.handle(row, outcome(first, "accepted", provider_message_id="m_1"), ANSWERED[0]).jobs
    commands: list[tuple[float, dict[str, Any]]] = [
        (SENT[0] + 2, echo(first, SENT[0], "m_1")),
        (ANSWERED[1], outcome(second, "accepted", provider_message_id="m_2")),
        (SENT[1] + 2, echo(second, SENT[1], "m_2")),
        (delivered + 1, by_recipient("delivered", delivered)),
        (read + 1, by_recipient("read", read)),
    ]
    random.Random(seed).shuffle(commands)
    seen: list[tuple[str, str]] = []
    for now, command in commands:
        effects = writer.handle(row, command, now)
        seen.extend((str(e.aggregate.id), type(e.event).__qualname__) for e in effects.events)
    for job, sent_at in ((first, SENT[0]), (second, SENT[1])):
        got = sorted(kind for of, kind in seen if of == job["message_id"] and kind in ("Message.Delivered",
                                                                                       "Message.Read"))
        expected = sorted(kind for kind, mark in (("Message.Delivered", delivered), ("Message.Read", read))
                          if sent_at <= mark)
        assert got == expected
