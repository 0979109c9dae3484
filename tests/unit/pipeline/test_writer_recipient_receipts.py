"""Receipts that name only the recipient (Messenger's delivered and read): by provider message id or watermark."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from aggregates import ReceiptStatus
from streams.pipeline._state import ContactRow
from streams.pipeline._writer import Effects, Writer
from switchboard._config_parse import load_bytes
from switchboard.config import PipelineConfig
from tests.contract.messenger_support import messenger_channel
from tests.unit.pipeline.conftest import PIPELINE, contact_id, outcome, request

NOON = 1_764_072_000.0  # 2025-11-25 12:00 UTC: outside the declaration's quiet hours
PSID = "6789012345678901"
MESSENGER_CHANNEL = messenger_channel(driver="inprocess").encode()
# The default route goes to Messenger first, then WhatsApp; the declaration's other parts are the shared one's.
MESSENGER = PIPELINE.replace(b'name = "default"\ntenant = "acme"\nchannel = "whatsapp"\nfallback = ["sms"]',
                             b'name = "default"\ntenant = "acme"\nchannel = "messenger"\nfallback = ["whatsapp"]') \
    .replace(b"[[templates]]", MESSENGER_CHANNEL + b"\n[[templates]]", 1)


def messenger_config() -> PipelineConfig:
    return load_bytes(Path("test-pipeline.toml"), MESSENGER)


def writer() -> Writer:
    config = messenger_config()
    return Writer(lambda: config, random.Random(7))


def messenger_request(key: str) -> dict[str, Any]:
    command = request(key)
    command["contact"]["addresses"] = {"messenger": PSID, "whatsapp": "+4917000000001"}
    return command


def by_recipient(status: str, at: float, provider_message_id: str | None = None) -> dict[str, Any]:
    """A recipient_receipt as the normaliser makes it: a watermark unless a provider message id is named."""
    watermark = provider_message_id is None
    return {"kind": "recipient_receipt", "command_id": f"rr-{status}-{at}", "contact_id": contact_id(),
            "channel": "messenger", "status": status, "at": at, "watermark": watermark,
            "provider_message_id": f"watermark:{int(at * 1000)}" if watermark else provider_message_id}


def echo(job: dict[str, Any], at: float, mid: str) -> dict[str, Any]:
    """Messenger's echo: the sent receipt, the one that carries our id."""
    return {"kind": "receipt", "command_id": f"echo-{mid}", "contact_id": job["contact_id"],
            "message_id": job["message_id"], "status": "sent", "provider_message_id": mid, "at": at}


def types(effects: Effects) -> list[str]:
    return [type(e.event).__qualname__ for e in effects.events]


def sent(w: Writer, row: ContactRow, key: str, at: float, mid: str) -> dict[str, Any]:
    """A message requested, accepted by Messenger at `at` and echoed: its send job."""
    [job] = w.handle(row, messenger_request(key), at).jobs
    assert job["channel"] == "messenger"
    w.handle(row, outcome(job, "accepted", provider_message_id=mid), at)
    w.handle(row, echo(job, at, mid), at)
    return job


def test_a_read_watermark_reads_every_message_sent_at_or_before_it_and_no_later_one() -> None:
    row, w = ContactRow(), writer()
    first = sent(w, row, "o-1", NOON, "m_1")
    second = sent(w, row, "o-2", NOON + 10, "m_2")
    read = w.handle(row, by_recipient("read", NOON + 5), NOON + 20)
    assert types(read) == ["Message.Read"]
    assert (str(read.events[0].aggregate.id), read.events[0].event.provider_message_id) == (
        first["message_id"], "m_1")
    assert not row.messages[second["message_id"]].message.reached(ReceiptStatus.DELIVERED)


def test_a_delivery_naming_its_mid_delivers_that_message_only() -> None:
    row, w = ContactRow(), writer()
    sent(w, row, "o-1", NOON, "m_1")
    second = sent(w, row, "o-2", NOON + 1, "m_2")
    delivered = w.handle(row, by_recipient("delivered", NOON + 2, provider_message_id="m_2"), NOON + 2)
    assert types(delivered) == ["Message.Delivered"]
    assert str(delivered.events[0].aggregate.id) == second["message_id"]
    assert w.handle(row, by_recipient("delivered", NOON + 3, provider_message_id="m_unknown"), NOON + 3).events == []


def test_a_watermark_that_overtook_the_echo_applies_when_the_echo_comes() -> None:
    row, w = ContactRow(), writer()
    [job] = w.handle(row, messenger_request("o-1"), NOON).jobs
    # Meta sent it at NOON + 1; our record of the answer is stamped NOON + 4, after the user had it at NOON + 3.
    assert w.handle(row, by_recipient("delivered", NOON + 3), NOON + 3).events == []
    accepted = w.handle(row, outcome(job, "accepted", provider_message_id="m_1"), NOON + 4)
    assert types(accepted) == ["Message.AcceptedByProvider"]  # by our clock it went after the watermark
    assert types(w.handle(row, echo(job, NOON + 1, "m_1"), NOON + 5)) == ["Message.Sent", "Message.Delivered"]


def test_a_watermark_that_overtook_the_answer_applies_at_the_acceptance() -> None:
    row, w = ContactRow(), writer()
    [job] = w.handle(row, messenger_request("o-1"), NOON).jobs
    w.handle(row, by_recipient("read", NOON + 3), NOON + 3)
    accepted = w.handle(row, outcome(job, "accepted", provider_message_id="m_1"), NOON + 2)
    assert types(accepted) == ["Message.AcceptedByProvider", "Message.Read"]


def test_a_watermark_is_per_channel_and_a_repeated_one_changes_nothing() -> None:
    row, w = ContactRow(), writer()
    job = sent(w, row, "o-1", NOON, "m_1")
    other = {**by_recipient("read", NOON + 5), "channel": "whatsapp"}
    assert w.handle(row, other, NOON + 5).events == []
    assert types(w.handle(row, by_recipient("delivered", NOON + 5), NOON + 5)) == ["Message.Delivered"]
    assert w.handle(row, by_recipient("delivered", NOON + 6), NOON + 6).events == []
    assert row.watermarks == {"messenger/delivered": NOON + 6, "whatsapp/read": NOON + 5}
    assert job["message_id"] in row.messages


def test_a_row_pickled_before_watermarks_reads_as_having_none() -> None:
    row = ContactRow()
    del row.watermarks  # as a row written before the field existed unpickles: the class default stands in
    assert row.watermarks is None
    w = writer()
    sent(w, row, "o-1", NOON, "m_1")
    assert types(w.handle(row, by_recipient("read", NOON + 1), NOON + 1)) == ["Message.Read"]
