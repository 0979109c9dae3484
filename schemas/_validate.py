"""Checking an event dict against its (expanded) Avro schema, naming the first field that does not fit."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

__all__ = ["Invalid", "conform"]

_INT = (-(2**31), 2**31 - 1)
_LONG = (-(2**63), 2**63 - 1)


class Invalid(Exception):
    """A datum does not fit its schema at `path` (dotted, with [i] for items and ['k'] for map values)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '<record>'}: {problem}")
        self.path = path
        self.problem = problem


def conform(value: Any, schema: Any, path: str = "") -> Any:
    """The value as it will be written (record defaults filled in); raises Invalid where it does not fit."""
    if isinstance(schema, list):
        return _union(value, schema, path)
    if isinstance(schema, str):
        return _primitive(value, schema, None, path)
    kind = schema["type"]
    if kind == "record":
        return _record(value, schema, path)
    if kind == "enum":
        return _enum(value, schema, path)
    if kind == "array":
        return _array(value, schema, path)
    if kind == "map":
        return _map(value, schema, path)
    if kind == "fixed":
        return _fixed(value, schema, path)
    return _primitive(value, kind, schema.get("logicalType"), path)


def _is_int_in(bounds: tuple[int, int]) -> Callable[[Any], bool]:
    # bool is an int in Python but a separate Avro type; letting it through would write True as 1.
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and bounds[0] <= v <= bounds[1]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_PRIMITIVES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "null": (lambda v: v is None, "null"),
    "boolean": (lambda v: isinstance(v, bool), "a bool"),
    "int": (_is_int_in(_INT), "an int within 32 bits"),
    "long": (_is_int_in(_LONG), "an int within 64 bits"),
    "float": (_is_number, "a number"),
    "double": (_is_number, "a number"),
    "string": (lambda v: isinstance(v, str), "a str"),
    "bytes": (lambda v: isinstance(v, bytes), "bytes"),
}


def _primitive(value: Any, kind: str, logical: str | None, path: str) -> Any:
    if logical in ("timestamp-millis", "timestamp-micros"):
        # Only aware datetimes: a naive one would be silently taken as UTC, and ints would not round-trip.
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise Invalid(path, f"expected a timezone-aware datetime, got {_describe(value)}")
        return value
    check, expected = _PRIMITIVES[kind]
    if not check(value):
        raise Invalid(path, f"expected {expected}, got {_describe(value)}")
    return value


def _union(value: Any, branches: list[Any], path: str) -> Any:
    if value is None:
        if "null" in branches:
            return None
        raise Invalid(path, "must not be null")
    others = [b for b in branches if b != "null"]
    if len(others) == 1:
        return conform(value, others[0], path)  # descend, so the error names the innermost field
    for branch in others:
        try:
            return conform(value, branch, path)
        except Invalid:
            continue
    raise Invalid(path, f"{_describe(value)} matches none of {[_type_name(b) for b in branches]}")


def _record(value: Any, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise Invalid(path, f"expected a mapping for record {schema['name']}, got {_describe(value)}")
    fields = schema["fields"]
    unexpected = sorted(set(value) - {f["name"] for f in fields})
    if unexpected:
        raise Invalid(_join(path, unexpected[0]), f"is not a field of {schema['name']}")
    out = {}
    for f in fields:
        name, here = f["name"], _join(path, f["name"])
        if name in value:
            out[name] = conform(value[name], f["type"], here)
        elif "default" in f:
            out[name] = copy.deepcopy(f["default"])
        else:
            raise Invalid(here, f"is missing; {schema['name']} requires it")
    return out


def _enum(value: Any, schema: Mapping[str, Any], path: str) -> str:
    if not isinstance(value, str) or value not in schema["symbols"]:
        raise Invalid(path, f"{_describe(value)} is not one of {schema['name']} {schema['symbols']}")
    return value


def _array(value: Any, schema: Mapping[str, Any], path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise Invalid(path, f"expected a list, got {_describe(value)}")
    return [conform(item, schema["items"], f"{path}[{i}]") for i, item in enumerate(value)]


def _map(value: Any, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise Invalid(path, f"expected a mapping, got {_describe(value)}")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise Invalid(path, f"map keys must be str, got {_describe(key)}")
        out[key] = conform(item, schema["values"], f"{path}[{key!r}]")
    return out


def _fixed(value: Any, schema: Mapping[str, Any], path: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != schema["size"]:
        raise Invalid(path, f"expected {schema['size']} bytes, got {_describe(value)}")
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema.get("name") or schema.get("logicalType") or schema["type"])


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
