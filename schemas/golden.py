"""Golden records: one stored encoding per published schema version, written once, decoded by every later build."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from uuid import NAMESPACE_URL, uuid5

from fastavro import json_reader, json_writer

from schemas._envelope import TraceContext, make_envelope
from schemas._registry import DEFAULT_ROOT, Registry, SchemaVersion
from schemas._samples import SAMPLE_TIME, sample
from schemas._topics import EVENT_TOPICS
from schemas.codec import Codec, DecodedEvent

__all__ = ["GoldenCase", "check_case", "golden_cases", "main", "sample_event", "write_missing"]

GOLDEN_TRACE = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "golden-correlation", None)


@dataclass(frozen=True)
class GoldenCase:
    """The stored record of one schema version: Avro binary with header, and the datum as Avro JSON."""

    schema: SchemaVersion
    binary: Path
    datum: Path

    def written(self) -> dict[str, Any]:
        """The datum the binary was written from, read with the schema version it was written with."""
        with self.datum.open(encoding="utf-8") as stream:
            return cast(dict[str, Any], next(iter(json_reader(stream, self.schema.parsed))))

    def upcast(self, current: SchemaVersion) -> dict[str, Any]:
        """The datum as the current version should see it, via the JSON decoder (not the binary one)."""
        with self.datum.open(encoding="utf-8") as stream:
            return cast(dict[str, Any], next(iter(json_reader(stream, self.schema.parsed, current.parsed))))


def golden_cases(registry: Registry, root: Path = DEFAULT_ROOT) -> list[GoldenCase]:
    """One case per published version, whether or not its files exist yet."""
    folder = root / "golden"
    return [
        GoldenCase(v, folder / v.subject / f"v{v.version}.bin", folder / v.subject / f"v{v.version}.json")
        for v in registry
    ]


def sample_event(schema: SchemaVersion) -> dict[str, Any]:
    """A deterministic valid event for a schema version, with a real envelope."""
    event = cast(dict[str, Any], sample(schema.expanded))
    aggregate_type = EVENT_TOPICS[schema.family].aggregate_type or "Order"
    event["envelope"] = make_envelope(
        aggregate_type=aggregate_type,
        aggregate_id=str(uuid5(NAMESPACE_URL, f"urn:switchboard:golden:{schema.subject}")),
        aggregate_version=schema.version,
        occurred_at=SAMPLE_TIME,
        tenant_id="tenant-golden",
        trace=GOLDEN_TRACE,
    )
    return event


def write_missing(registry: Registry, root: Path = DEFAULT_ROOT) -> list[Path]:
    """Writes golden files for versions that have none; existing files are history and stay untouched."""
    codec = Codec(registry)
    written = []
    for case in golden_cases(registry, root):
        if case.binary.exists() or case.datum.exists():
            continue
        event = sample_event(case.schema)
        case.binary.parent.mkdir(parents=True, exist_ok=True)
        case.binary.write_bytes(codec.encode(event, case.schema.event_type, version=case.schema.version))
        with case.datum.open("w", encoding="utf-8") as stream:
            json_writer(stream, case.schema.parsed, [event])
            stream.write("\n")
        written += [case.binary, case.datum]
    return written


def check_case(case: GoldenCase, codec: Codec) -> list[str]:
    """What is wrong with one golden record under the current code; empty when it decodes as it should."""
    label = f"{case.schema.subject} v{case.schema.version}"
    if not (case.binary.exists() and case.datum.exists()):
        return [f"{label}: golden files missing; run python -m schemas.golden --write"]
    data = case.binary.read_bytes()
    decoded = codec.decode(data)
    if not isinstance(decoded, DecodedEvent):
        return [f"{label}: schema id {case.schema.schema_id} no longer known"]
    current = codec.registry.latest(case.schema.subject)
    problems = []
    if (decoded.event_type, decoded.version) != (case.schema.event_type, case.schema.version):
        problems.append(f"{label}: decoded as {decoded.event_type} v{decoded.version}")
    if decoded.payload != case.upcast(current):
        problems.append(f"{label}: decodes to {decoded.payload}, expected {case.upcast(current)}")
    if codec.encode(case.written(), case.schema.event_type, version=case.schema.version) != data:
        problems.append(f"{label}: encoding the stored datum again gives other bytes")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m schemas.golden [--write]`: --write adds files for new versions (never rewrites old ones);
    both forms then check every stored record against the current code and exit 1 on problems."""
    args = list(sys.argv[1:] if argv is None else argv)
    registry = Registry.load(DEFAULT_ROOT)
    if "--write" in args:
        for path in write_missing(registry):
            print(f"wrote {path.relative_to(DEFAULT_ROOT)}")
    codec = Codec(registry)
    problems = [p for case in golden_cases(registry) for p in check_case(case, codec)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
