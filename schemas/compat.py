"""Full transitive compatibility: every version of a subject reads data written by every other, both ways."""

from __future__ import annotations

import io
import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import expand_schema, parse_schema

from schemas._registry import DEFAULT_ROOT, INDEX_FILE, SchemaFile, full_name, read_index, schema_digest, schema_files
from schemas._samples import sample

__all__ = ["CompatibilityError", "Problem", "assert_compatible", "check", "main"]

# Avro promotions (writer type -> reader types that can read it); anything else is a breaking type change.
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = {"record", "enum", "fixed"}


@dataclass(frozen=True)
class Problem:
    """One reason a subject's versions are not fully compatible; `field` is a dotted path or None."""

    subject: str
    versions: str
    field: str | None
    problem: str

    def __str__(self) -> str:
        where = f"field '{self.field}' " if self.field else ""
        return f"schema {self.subject} ({self.versions}): {where}{self.problem}"


class CompatibilityError(Exception):
    """The schemas on disk are not fully transitively compatible; the message lists every problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("schemas are not compatible:\n  " + "\n  ".join(map(str, problems)))
        self.problems = list(problems)


@dataclass(frozen=True)
class _Version:
    subject: str
    version: int
    expanded: Any
    parsed: Any

    @property
    def label(self) -> str:
        return f"v{self.version}"


def check(root: Path = DEFAULT_ROOT) -> list[Problem]:
    """Every problem with the schemas under root: published and not-yet-published versions alike."""
    problems = _published_problems(root)
    by_subject: dict[str, list[SchemaFile]] = {}
    for f in schema_files(root):
        by_subject.setdefault(f.subject, []).append(f)
    for subject, files in sorted(by_subject.items()):
        versions, load_problems = _load_subject(subject, files)
        problems += load_problems
        for older, newer in itertools.combinations(versions, 2):
            problems += _pair_problems(older, newer) + _pair_problems(newer, older)
    return problems


def assert_compatible(root: Path = DEFAULT_ROOT) -> None:
    """Raises CompatibilityError unless check(root) finds nothing."""
    problems = check(root)
    if problems:
        raise CompatibilityError(problems)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m schemas.compat [ROOT]`: run before publishing a new .avsc; exits 1 naming schema and field."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(args[0]) if args else DEFAULT_ROOT
    problems = check(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{len(schema_files(root))} schema versions under {root}: fully transitively compatible")
    return 0


def _published_problems(root: Path) -> list[Problem]:
    if not (root / INDEX_FILE).exists():
        return []
    problems = []
    for entry in read_index(root):
        f = SchemaFile(entry.subject, entry.version, root / "avro" / entry.subject / f"v{entry.version}.avsc")
        label = f"v{entry.version}"
        if not f.path.is_file():
            problems.append(Problem(entry.subject, label, None, f"published as id {entry.schema_id} but missing"))
        elif schema_digest(f.load()) != entry.sha256:
            message = "was edited after publishing; published versions are immutable, add a new version"
            problems.append(Problem(entry.subject, label, None, message))
    return problems


def _load_subject(subject: str, files: list[SchemaFile]) -> tuple[list[_Version], list[Problem]]:
    versions, problems = [], []
    if [f.version for f in files] != list(range(1, len(files) + 1)):
        problems.append(Problem(subject, "all", None, f"versions {[f.version for f in files]} are not 1..n"))
    for f in files:
        raw = f.load()
        if full_name(raw) != subject:
            problems.append(Problem(subject, f"v{f.version}", None, f"record is named {full_name(raw)}"))
            continue
        try:
            parsed = parse_schema(raw, named_schemas={})
        except Exception as exc:  # fastavro reports bad defaults and types with assorted exception types
            problems.append(Problem(subject, f"v{f.version}", None, f"is not a valid Avro schema: {exc}"))
            continue
        versions.append(_Version(subject, f.version, expand_schema(raw), parsed))
    return versions, problems


def _pair_problems(writer: _Version, reader: _Version) -> list[Problem]:
    """Why `reader` cannot read data written with `writer`: static rules first, then a real round trip."""
    labels = f"{writer.label} data read with {reader.label}"
    found = _read_problems(writer.expanded, reader.expanded, "", (writer.label, reader.label))
    if found:
        return [Problem(writer.subject, labels, path or None, text) for path, text in found]
    return [Problem(writer.subject, labels, None, text) for text in _round_trip_problems(writer, reader)]


def _round_trip_problems(writer: _Version, reader: _Version) -> list[str]:
    # The static rules mirror the Avro spec; fastavro's resolver is the ground truth they are checked against.
    problems = []
    for nulls in (False, True):
        buffer = io.BytesIO()
        schemaless_writer(buffer, writer.parsed, sample(writer.expanded, nulls=nulls))
        buffer.seek(0)
        try:
            schemaless_reader(buffer, writer.parsed, reader.parsed)
        except Exception as exc:  # any failure to resolve is the finding; fastavro's exception types vary
            problems.append(f"fastavro cannot resolve {writer.label} data with {reader.label}: {exc}")
    return problems


Found = list[tuple[str, str]]


def _read_problems(writer: Any, reader: Any, path: str, labels: tuple[str, str]) -> Found:
    """(path, problem) pairs that stop `reader` from reading `writer` data, per Avro schema resolution."""
    if isinstance(writer, list):
        return [p for branch in writer for p in _read_problems(branch, reader, path, labels)]
    if isinstance(reader, list):
        return _reader_union_problems(writer, reader, path, labels)
    if writer == "null" and reader != "null":
        return [(path, f"may be null in {labels[0]} data but {labels[1]} does not allow null")]
    w_kind, r_kind = _kind(writer), _kind(reader)
    if w_kind != r_kind:
        return [] if r_kind in _PROMOTIONS.get(w_kind, set()) else [_type_change(writer, reader, path, labels)]
    if w_kind in _NAMED and full_name(writer) != full_name(reader):
        return [(path, f"is {full_name(writer)} in {labels[0]} but {full_name(reader)} in {labels[1]}")]
    if _logical(writer) != _logical(reader):
        return [_type_change(writer, reader, path, labels)]
    if w_kind == "record":
        return _record_problems(writer, reader, path, labels)
    if w_kind == "enum":
        return _enum_problems(writer, reader, path, labels)
    if w_kind in ("array", "map"):
        part = "items" if w_kind == "array" else "values"
        return _read_problems(writer[part], reader[part], f"{path}[]", labels)
    if w_kind == "fixed" and writer["size"] != reader["size"]:
        return [(path, f"fixed size changed from {writer['size']} to {reader['size']}")]
    return []


def _reader_union_problems(writer: Any, branches: list[Any], path: str, labels: tuple[str, str]) -> Found:
    attempts = [_read_problems(writer, b, path, labels) for b in branches if _could_read(writer, b)]
    if any(not found for found in attempts):
        return []
    if attempts:
        return attempts[0]  # the closest branch's reasons name the innermost field
    kinds = [_describe(b) for b in branches]
    return [(path, f"has type {_describe(writer)} in {labels[0]}, which none of {labels[1]}'s {kinds} can read")]


def _record_problems(writer: Mapping[str, Any], reader: Mapping[str, Any], path: str, labels: tuple[str, str]) -> Found:
    written = {f["name"]: f for f in writer["fields"]}
    found: Found = []
    for field in reader["fields"]:
        here = f"{path}.{field['name']}" if path else field["name"]
        source = written.get(field["name"]) or _aliased(field, written)
        if source is not None:
            found += _read_problems(source["type"], field["type"], here, labels)
        elif "default" not in field:
            found.append((here, _missing_field(labels)))
    return found


def _enum_problems(writer: Mapping[str, Any], reader: Mapping[str, Any], path: str, labels: tuple[str, str]) -> Found:
    unknown = [s for s in writer["symbols"] if s not in reader["symbols"]]
    if unknown and "default" not in reader:
        return [(path, f"symbols {unknown} of {labels[0]} are unknown to {labels[1]}, which has no default symbol")]
    return []


def _missing_field(labels: tuple[str, str]) -> str:
    writer, reader = labels
    if int(reader[1:]) > int(writer[1:]):
        return f"was added in {reader} without a default, so {reader} cannot read {writer} data"
    return f"was removed in {writer} but has no default in {reader}, so {reader} cannot read {writer} data"


def _type_change(writer: Any, reader: Any, path: str, labels: tuple[str, str]) -> tuple[str, str]:
    w, r = _describe(writer), _describe(reader)
    return path, f"changed type: {w} in {labels[0]} cannot be read as {r} in {labels[1]}"


def _aliased(field: Mapping[str, Any], written: Mapping[str, Any]) -> Any:
    return next((written[a] for a in field.get("aliases", []) if a in written), None)


def _could_read(writer: Any, reader: Any) -> bool:
    w_kind, r_kind = _kind(writer), _kind(reader)
    if w_kind in _NAMED or r_kind in _NAMED:
        return w_kind == r_kind and full_name(writer) == full_name(reader)
    return w_kind == r_kind or r_kind in _PROMOTIONS.get(w_kind, set())


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    return schema if isinstance(schema, str) else str(schema["type"])


def _logical(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    if kind in _NAMED:
        return f"{kind} {full_name(schema)}"
    logical = _logical(schema)
    return f"{kind} ({logical})" if logical else kind


if __name__ == "__main__":
    raise SystemExit(main())
