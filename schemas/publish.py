"""Publishing new schema versions: check compatibility, give each new (subject, version) the next id, record it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from schemas._registry import (
    DEFAULT_ROOT,
    INDEX_FILE,
    RegistryEntry,
    read_index,
    schema_digest,
    schema_files,
    write_index,
)
from schemas.compat import assert_compatible

__all__ = ["main", "publish"]


def publish(root: Path = DEFAULT_ROOT) -> list[RegistryEntry]:
    """Registers every unpublished .avsc under root; raises CompatibilityError and changes nothing if unsafe."""
    assert_compatible(root)
    entries = read_index(root) if (root / INDEX_FILE).exists() else []
    published = {(e.subject, e.version) for e in entries}
    next_id = max((e.schema_id for e in entries), default=0) + 1
    added = []
    # Lower versions first, so ids grow in the order the schemas could have been published.
    for f in sorted(schema_files(root), key=lambda f: (f.version, f.subject)):
        if (f.subject, f.version) not in published:
            added.append(RegistryEntry(next_id, f.subject, f.version, schema_digest(f.load())))
            next_id += 1
    if added:
        write_index(root, entries + added)
    return added


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m schemas.publish [ROOT]`: after adding avro/<subject>/v<N+1>.avsc; then run schemas.golden --write."""
    args = list(sys.argv[1:] if argv is None else argv)
    added = publish(Path(args[0]) if args else DEFAULT_ROOT)
    for entry in added:
        print(f"published {entry.subject} v{entry.version} as id {entry.schema_id}")
    if not added:
        print("nothing new to publish")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
