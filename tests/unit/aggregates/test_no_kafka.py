"""The domain model stays broker-free: no module of aggregates/ (or of schemas/, which it uses) imports Kafka."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import aggregates
import schemas

FORBIDDEN = {"kafka", "aiokafka", "faust", "confluent_kafka", "mode", "switchboard", "streams"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(
    "path",
    sorted([*Path(aggregates.__file__).parent.glob("*.py"), *Path(schemas.__file__).parent.glob("*.py")]),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_no_module_imports_kafka(path: Path) -> None:
    assert _imported_roots(path) & FORBIDDEN == set()


def test_importing_the_domain_loads_no_kafka_client() -> None:
    """Catches indirect imports too, e.g. through a dependency."""
    probe = "import json, sys, aggregates, schemas; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    project = Path(aggregates.__file__).parent.parent
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=project)
    assert FORBIDDEN & set(json.loads(loaded.stdout)) == set()
