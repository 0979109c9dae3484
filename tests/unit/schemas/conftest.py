"""Fixtures for schema tests: a private copy of the schema tree that a test may change freely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from schemas import DEFAULT_ROOT


@pytest.fixture
def schema_root(tmp_path: Path) -> Path:
    """A copy of schemas/avro, registry.json and golden/ under tmp_path."""
    root = tmp_path / "schemas"
    root.mkdir()
    shutil.copytree(DEFAULT_ROOT / "avro", root / "avro")
    shutil.copytree(DEFAULT_ROOT / "golden", root / "golden")
    shutil.copy(DEFAULT_ROOT / "registry.json", root / "registry.json")
    return root
