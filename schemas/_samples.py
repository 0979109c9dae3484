"""Deterministic sample data for any Avro schema: golden records and compatibility probes use it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["SAMPLE_TIME", "sample"]

SAMPLE_TIME = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def sample(schema: Any, *, nulls: bool = False, name: str = "value") -> Any:
    """A value that fits the (expanded) schema; `nulls` picks null branches and first symbols instead."""
    if isinstance(schema, list):
        return _union(schema, nulls, name)
    if isinstance(schema, str):
        return _primitive(schema, name)
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: sample(f["type"], nulls=nulls, name=f["name"]) for f in schema["fields"]}
    if kind == "enum":
        # Two probes that between them use the first and the last symbol.
        return schema["symbols"][0 if nulls else -1]
    if kind == "array":
        return [sample(schema["items"], nulls=nulls, name=name)]
    if kind == "map":
        return {"key": sample(schema["values"], nulls=nulls, name=name)}
    if kind == "fixed":
        return bytes(schema["size"])
    if schema.get("logicalType", "").startswith("timestamp-"):
        return SAMPLE_TIME
    return _primitive(kind, name)


def _union(branches: list[Any], nulls: bool, name: str) -> Any:
    if nulls and "null" in branches:
        return None
    chosen = next((b for b in branches if b != "null"), "null")
    return sample(chosen, nulls=nulls, name=name)


def _primitive(kind: str, name: str) -> Any:
    values: dict[str, Any] = {
        "null": None,
        "boolean": True,
        "int": 7,
        "long": 1_700_000_000_007,
        "float": 1.5,
        "double": 2.25,
        "string": f"{name}-1",
        "bytes": name.encode(),
    }
    return values[kind]
