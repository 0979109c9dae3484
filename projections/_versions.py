"""Versions of a projection on disk: the one serving, and new ones rebuilt beside it, then switched to."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ProjectionVersions"]


class ProjectionVersions:
    """`<root>/<projection>/v<N>/` directories; the file CURRENT names the version that serves."""

    def __init__(self, root: Path, projection: str) -> None:
        self.directory = root / projection

    def current(self) -> int | None:
        marker = self.directory / "CURRENT"
        return int(marker.read_text().strip().lstrip("v")) if marker.exists() else None

    def next(self) -> int:
        known = [int(path.name[1:]) for path in self.directory.glob("v*") if path.name[1:].isdigit()]
        return max(known, default=0) + 1

    def path(self, version: int) -> Path:
        return self.directory / f"v{version}"

    def switch(self, version: int) -> None:
        """Makes `version` the serving one (atomically: a rename over the old marker)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = self.directory / "CURRENT.new"
        staging.write_text(f"v{version}\n")
        staging.replace(self.directory / "CURRENT")
