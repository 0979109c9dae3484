"""The file-backed schema registry: every published schema version and its stable id, indexed in registry.json."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro.schema import expand_schema, parse_schema

__all__ = [
    "DEFAULT_ROOT",
    "Registry",
    "RegistryEntry",
    "RegistryError",
    "SchemaFile",
    "SchemaVersion",
    "UnknownEventType",
    "default_registry",
    "full_name",
    "read_index",
    "schema_digest",
    "schema_files",
    "write_index",
]

DEFAULT_ROOT = Path(__file__).resolve().parent
INDEX_FILE = "registry.json"
_VERSION_FILE = re.compile(r"v([1-9][0-9]*)\.avsc")


class RegistryError(Exception):
    """The registry index and the schema files disagree; the message lists every problem found."""


class UnknownEventType(KeyError):
    """No schema is published for this event type."""

    def __str__(self) -> str:
        return f"no schema is published for event type {self.args[0]!r}"


@dataclass(frozen=True, eq=False)
class SchemaVersion:
    """One published version of one subject, with its registry id and its parsed (fastavro) form."""

    schema_id: int
    subject: str
    version: int
    raw: Mapping[str, Any] = field(repr=False)
    parsed: Any = field(repr=False, compare=False)
    expanded: Any = field(repr=False, compare=False)

    @property
    def event_type(self) -> str:
        """The short record name, e.g. MessageFailed."""
        return self.subject.rsplit(".", 1)[1]

    @property
    def family(self) -> str:
        """The event family from the namespace switchboard.<family>: business, message, contact, ..."""
        return self.subject.split(".")[1]


@dataclass(frozen=True)
class RegistryEntry:
    """A row of registry.json: which id a (subject, version) has and the digest it was published with."""

    schema_id: int
    subject: str
    version: int
    sha256: str


@dataclass(frozen=True)
class SchemaFile:
    """A .avsc file on disk at avro/<subject>/v<version>.avsc, published or not."""

    subject: str
    version: int
    path: Path

    def load(self) -> dict[str, Any]:
        """The schema's JSON."""
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return data


def full_name(raw: Mapping[str, Any]) -> str:
    """A named schema's full name: namespace plus name, unless the name is already dotted."""
    name = str(raw["name"])
    return name if "." in name or not raw.get("namespace") else f"{raw['namespace']}.{name}"


def schema_digest(raw: Mapping[str, Any]) -> str:
    """sha256 of the schema's canonical JSON; docs and defaults included, so any edit shows."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def schema_files(root: Path) -> list[SchemaFile]:
    """Every avro/<subject>/v<N>.avsc below root, sorted by subject and version."""
    found = []
    for path in (root / "avro").glob("*/*.avsc"):
        match = _VERSION_FILE.fullmatch(path.name)
        if match is None:
            raise RegistryError(f"{path}: schema files must be named v<N>.avsc")
        found.append(SchemaFile(path.parent.name, int(match.group(1)), path))
    return sorted(found, key=lambda f: (f.subject, f.version))


def read_index(root: Path) -> list[RegistryEntry]:
    """The rows of root/registry.json, in id order."""
    data = json.loads((root / INDEX_FILE).read_text(encoding="utf-8"))
    rows = [RegistryEntry(r["id"], r["subject"], r["version"], r["sha256"]) for r in data["schemas"]]
    return sorted(rows, key=lambda r: r.schema_id)


def write_index(root: Path, entries: list[RegistryEntry]) -> None:
    """Writes registry.json with one row per line, so a publish shows as added lines in review."""
    rows = [
        json.dumps({"id": e.schema_id, "subject": e.subject, "version": e.version, "sha256": e.sha256})
        for e in sorted(entries, key=lambda e: e.schema_id)
    ]
    body = ",\n    ".join(rows)
    note = "Ids are assigned once by `python -m schemas.publish` and never change or get reused."
    text = f'{{\n  "note": {json.dumps(note)},\n  "schemas": [\n    {body}\n  ]\n}}\n'
    (root / INDEX_FILE).write_text(text, encoding="utf-8")


class Registry:
    """Published schema versions by id and by subject; the newest version of a subject is what we write."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_id = {v.schema_id: v for v in versions}
        by_subject: dict[str, list[SchemaVersion]] = {}
        for v in sorted(versions, key=lambda v: (v.subject, v.version)):
            by_subject.setdefault(v.subject, []).append(v)
        self._by_subject = {s: tuple(vs) for s, vs in by_subject.items()}
        self._subject_of = {v.event_type: v.subject for v in versions} | {s: s for s in by_subject}

    @classmethod
    def load(cls, root: Path = DEFAULT_ROOT) -> Registry:
        """Loads every version listed in root/registry.json; raises RegistryError if any file disagrees."""
        versions, problems = _load_entries(root)
        problems += _shape_problems(versions)
        if problems:
            raise RegistryError(f"schema registry at {root} is inconsistent:\n  " + "\n  ".join(problems))
        return cls(versions)

    def __iter__(self) -> Iterator[SchemaVersion]:
        return iter(sorted(self._by_id.values(), key=lambda v: v.schema_id))

    @property
    def event_types(self) -> tuple[str, ...]:
        """Short names of every event type with a published schema, sorted."""
        return tuple(sorted(vs[-1].event_type for vs in self._by_subject.values()))

    def by_id(self, schema_id: int) -> SchemaVersion | None:
        """The version registered under this id, or None if it is unknown here (e.g. newer than this code)."""
        return self._by_id.get(schema_id)

    def versions(self, event_type: str) -> tuple[SchemaVersion, ...]:
        """All published versions of an event type (short name or subject), oldest first."""
        try:
            return self._by_subject[self._subject_of[event_type]]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def latest(self, event_type: str) -> SchemaVersion:
        """The current version: the one encode writes and decode upcasts to."""
        return self.versions(event_type)[-1]

    def version(self, event_type: str, version: int) -> SchemaVersion:
        """One specific published version."""
        for candidate in self.versions(event_type):
            if candidate.version == version:
                return candidate
        raise UnknownEventType(f"{event_type} v{version}")


@functools.cache
def default_registry() -> Registry:
    """The registry committed with this package, loaded once per process."""
    return Registry.load(DEFAULT_ROOT)


def _load_entries(root: Path) -> tuple[list[SchemaVersion], list[str]]:
    versions: list[SchemaVersion] = []
    problems: list[str] = []
    for entry in read_index(root):
        path = root / "avro" / entry.subject / f"v{entry.version}.avsc"
        if not path.is_file():
            problems.append(f"id {entry.schema_id}: {path.relative_to(root)} is missing")
            continue
        raw = SchemaFile(entry.subject, entry.version, path).load()
        if schema_digest(raw) != entry.sha256:
            problems.append(
                f"{entry.subject} v{entry.version}: the published schema was edited; "
                "published versions are immutable, add a new version instead"
            )
            continue
        versions.append(_parse(entry, raw))
    return versions, problems


def _parse(entry: RegistryEntry, raw: dict[str, Any]) -> SchemaVersion:
    # A fresh named-types table per schema: each file defines switchboard.Envelope and friends on its own.
    parsed = parse_schema(raw, named_schemas={})
    expanded = expand_schema(raw)
    return SchemaVersion(entry.schema_id, entry.subject, entry.version, raw, parsed, expanded)


def _shape_problems(versions: list[SchemaVersion]) -> list[str]:
    problems = []
    seen_ids: set[int] = set()
    versions_of: dict[str, list[int]] = {}
    short_names: dict[str, str] = {}
    for v in versions:
        if v.schema_id in seen_ids:
            problems.append(f"id {v.schema_id} is used twice")
        seen_ids.add(v.schema_id)
        if full_name(v.raw) != v.subject:
            problems.append(f"{v.subject} v{v.version}: record is named {full_name(v.raw)}, not its subject")
        if short_names.setdefault(v.event_type, v.subject) != v.subject:
            problems.append(f"{v.subject}: short name {v.event_type} is taken by {short_names[v.event_type]}")
        versions_of.setdefault(v.subject, []).append(v.version)
    for subject, numbers in versions_of.items():
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            problems.append(f"{subject}: published versions {sorted(numbers)} are not 1..n without gaps")
    return problems
