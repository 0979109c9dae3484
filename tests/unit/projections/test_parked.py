"""Dead letters and refused webhooks read as what was parked, summed up by stage and reason, numbers masked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from projections._parked import DEAD_LETTERS, REJECTS, parked, render_list, render_summary, summarise
from switchboard.log_reads import LogRecord

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def record(value: bytes | None, offset: int = 0, headers: dict[str, bytes] | None = None,
           topic: str = "p.sb.deadletters") -> LogRecord:
    return LogRecord(topic, 1, offset, T0 + timedelta(minutes=offset), "key-1", value, headers or {})


def letter(offset: int = 0, **fields: object) -> LogRecord:
    return record(json.dumps(fields).encode(), offset)


def test_a_pipeline_dead_letter_says_its_stage_reason_time_and_what_it_names() -> None:
    item = parked(letter(3, stage="triggers", reason="unknown trigger: 'x'", at=T0.timestamp(),
                         contact_id="c-1", worker="w1", event={"phone": "+4917012345678"}), DEAD_LETTERS)
    assert (item.stage, item.reason, item.at, item.position) == ("triggers", "unknown trigger: 'x'", T0,
                                                                 "p.sb.deadletters-1@3")
    assert item.details == {"contact_id": "c-1", "worker": "w1"}  # the event itself stays on the topic


def test_a_status_callback_letter_is_named_by_its_kind_and_a_number_in_a_reason_field_is_masked() -> None:
    item = parked(letter(stage=None, kind="status-callback", reason="gave up after 8 attempts", cause="exhausted",
                         attempts=8, target_url="https://crm.example.com/hook?to=+4917012345678"), DEAD_LETTERS)
    assert (item.stage, item.at) == ("status-callback", T0)  # no `at` of its own: the record's timestamp
    assert "+4917012345678" not in json.dumps(item.details)
    assert item.details["attempts"] == 8


def test_unreadable_and_reasonless_letters_are_shown_not_dropped() -> None:
    assert parked(record(b"\x00not json"), DEAD_LETTERS).reason == "not a JSON object: unreadable dead letter"
    assert parked(letter(stage="writer"), DEAD_LETTERS).reason == "(no reason given)"


def test_a_refused_webhook_is_the_receivers_with_its_channel_status_and_time() -> None:
    headers = {"channel": b"whatsapp", "reason": b"signature_invalid", "status": b"403",
               "received_at": str(int((T0 + timedelta(seconds=5)).timestamp() * 1000)).encode(),
               "detail": b"X-Hub-Signature-256 does not match the body", "content-sha256": b"ab" * 32}
    item = parked(record(b'{"entry": []}', headers=headers, topic="p.sb.rejects"), REJECTS)
    assert (item.topic, item.stage, item.reason, item.at) == (REJECTS, "receiver (whatsapp)", "signature_invalid",
                                                              T0 + timedelta(seconds=5))
    assert item.details["status"] == "403"


def test_the_summary_counts_per_stage_and_reason_most_first_and_says_what_it_left_out() -> None:
    items = [parked(letter(n, stage="writer", reason="template 'promo' has no text"), DEAD_LETTERS) for n in range(3)]
    locked = "account errors reported by the provider: 131031 (stop_account)"
    items += [parked(letter(9, stage="normaliser", reason=locked), DEAD_LETTERS)]
    rows = summarise(items)
    assert [(row.stage, row.count, row.first, row.last) for row in rows] == [
        ("writer", 3, T0, T0 + timedelta(minutes=2)), ("normaliser", 1, T0 + timedelta(minutes=9),
                                                       T0 + timedelta(minutes=9))]
    text = render_summary(rows, read=4, top=1)
    assert text.splitlines()[0] == "4 parked, 2 reasons:"
    assert "template 'promo' has no text" in text
    assert "1 more reasons (1 records): --top 2 shows them all" in text
    assert render_summary([], read=7, top=5) == "nothing parked (7 records read)"


def test_the_list_is_oldest_first_and_json_lines_round_trip() -> None:
    items = [parked(letter(n, stage="dispatch", reason=f"r{n}", message_id=f"m{n}"), DEAD_LETTERS) for n in (2, 1)]
    assert [line.split()[3] for line in render_list(items).splitlines()] == ["dispatch", "dispatch"]
    assert render_list(items).splitlines()[0].startswith("2026-11-26 09:01:00  p.sb.deadletters-1@1")
    decoded = [json.loads(line) for line in render_list(items, as_json=True).splitlines()]
    assert [(d["reason"], d["details"]["message_id"], d["at"]) for d in decoded] == [
        ("r1", "m1", "2026-11-26T09:01:00+00:00"), ("r2", "m2", "2026-11-26T09:02:00+00:00")]
