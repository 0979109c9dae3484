"""Golden records: every published version's stored bytes still decode, old ones upcast, none rewritten."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from schemas import DEFAULT_ROOT, Codec, DecodedEvent, Registry, default_registry
from schemas.golden import GoldenCase, check_case, golden_cases, write_missing

CASES = golden_cases(default_registry())


@pytest.mark.parametrize("case", CASES, ids=[f"{c.schema.event_type}-v{c.schema.version}" for c in CASES])
def test_golden_record_decodes_with_the_current_code(case: GoldenCase) -> None:
    assert check_case(case, Codec(default_registry())) == []


def test_golden_records_pin_the_schema_ids() -> None:
    for case in CASES:
        assert struct.unpack(">bI", case.binary.read_bytes()[:5]) == (0, case.schema.schema_id)


def test_message_failed_v1_is_upcast_to_v2_on_read() -> None:
    [v1] = [c for c in CASES if (c.schema.event_type, c.schema.version) == ("MessageFailed", 1)]
    decoded = Codec(default_registry()).decode(v1.binary.read_bytes())
    assert isinstance(decoded, DecodedEvent)
    assert (decoded.version, decoded.current_version) == (1, 2)
    written = v1.written()
    assert "retry_after_ms" not in written
    assert decoded.payload == written | {"retry_after_ms": None}


def test_every_published_version_has_golden_files() -> None:
    assert {p.parent.name for p in (DEFAULT_ROOT / "golden").glob("*/*.bin")} == {c.schema.subject for c in CASES}
    assert all(c.binary.exists() and c.datum.exists() for c in CASES)


def test_writing_golden_files_never_rewrites_existing_ones(schema_root: Path) -> None:
    registry = Registry.load(schema_root)
    cases = golden_cases(registry, schema_root)
    before = {c.binary: c.binary.read_bytes() for c in cases}
    missing = cases[0]
    missing.binary.unlink()
    missing.datum.unlink()
    assert sorted(write_missing(registry, schema_root)) == sorted([missing.binary, missing.datum])
    assert {c.binary: c.binary.read_bytes() for c in cases} == before
