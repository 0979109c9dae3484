"""Readers generated per schema id that decode only the fields a projection reads and skip the rest of the body."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Selection", "compile_reader", "from_millis", "selection"]

# Field name -> None (the whole value) or the selection inside a record (e.g. the envelope's fields).
Selection = Mapping[str, "Selection | None"]
Reader = Callable[[bytes], dict[str, Any]]

_DOUBLE, _FLOAT = struct.Struct("<d"), struct.Struct("<f")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_millis(millis: int) -> datetime:
    """A timestamp-millis value as the codec decodes it (fastavro's own arithmetic, so equal to the last bit)."""
    return _EPOCH + timedelta(microseconds=millis * 1000)


class Corrupt(ValueError):
    """The body does not parse as the writer's schema (a bad union branch, bytes left over or missing)."""


def selection(paths: Iterable[str]) -> Selection:
    """{"envelope": {"aggregate_id": None}, "channel": None} from "envelope.aggregate_id", "channel"."""
    tree: dict[str, Any] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        if rest:
            sub = tree.setdefault(head, {})
            if sub is not None:  # a whole field already wanted wins over one of its parts
                sub.update(selection([rest]))
        else:
            tree[head] = None
    return tree


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint of more than one byte (the generated code reads one-byte values inline)."""
    byte = data[pos]
    value, shift = byte & 0x7F, 7
    while byte & 0x80:
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        shift += 7
    return (value >> 1) ^ -(value & 1), pos + 1


class _Source:
    """The lines of one generated reader, with fresh local names and the constants it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {"_long": _long, "_DOUBLE": _DOUBLE, "_FLOAT": _FLOAT, "Corrupt": Corrupt}
        self._count = 0

    def name(self, stem: str = "v") -> str:
        self._count += 1
        return f"{stem}{self._count}"

    def constant(self, value: Any) -> str:
        name = self.name("_k")
        self.constants[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    return str(schema["type"]) if isinstance(schema, dict) else str(schema)


def _read_long(src: _Source, depth: int, target: str) -> None:
    src.emit(depth, "b = data[pos]")
    src.emit(depth, "if b < 128:")
    src.emit(depth + 1, f"{target} = (b >> 1) ^ -(b & 1)")
    src.emit(depth + 1, "pos += 1")
    src.emit(depth, "else:")
    src.emit(depth + 1, f"{target}, pos = _long(data, pos)")


def _read(src: _Source, schema: Any, depth: int, target: str, wanted: Selection | None = None) -> None:
    """Code that reads a value of `schema` at `pos` into `target` (timestamps stay the wire's long)."""
    kind = _kind(schema)
    if isinstance(schema, dict) and schema.get("logicalType") not in (None, "timestamp-millis"):
        raise NotImplementedError(f"logical type {schema['logicalType']}")
    if kind == "null":
        src.emit(depth, f"{target} = None")
    elif kind == "boolean":
        src.emit(depth, f"{target} = data[pos] != 0")
        src.emit(depth, "pos += 1")
    elif kind in ("int", "long"):
        _read_long(src, depth, target)
    elif kind in ("float", "double"):
        packed, size = ("_FLOAT", 4) if kind == "float" else ("_DOUBLE", 8)
        src.emit(depth, f"{target} = {packed}.unpack_from(data, pos)[0]")
        src.emit(depth, f"pos += {size}")
    elif kind in ("string", "bytes", "fixed"):
        _read_sized(src, schema, kind, depth, target)
    elif kind == "enum":
        index = src.name()
        _read_long(src, depth, index)
        src.emit(depth, f"if {index} < 0:")
        src.emit(depth + 1, "raise Corrupt('a negative enum index')")
        src.emit(depth, f"{target} = {src.constant(tuple(schema['symbols']))}[{index}]")
    elif kind == "union":
        _union(src, schema, depth, target, _read)
    elif kind == "record":
        _record(src, schema, depth, target, wanted)
    elif kind in ("array", "map"):
        _blocks(src, schema, kind, depth, target, read=True)
    else:
        raise NotImplementedError(f"type {kind}")


def _read_sized(src: _Source, schema: Any, kind: str, depth: int, target: str) -> None:
    size = src.name()
    if kind == "fixed":
        src.emit(depth, f"{size} = {int(schema['size'])}")
    else:
        _read_long(src, depth, size)
    src.emit(depth, f"end = pos + {size}")
    src.emit(depth, "if end > length:")
    src.emit(depth + 1, "raise Corrupt('the body ends inside a value')")
    value = "data[pos:end].decode()" if kind == "string" else "bytes(data[pos:end])"
    src.emit(depth, f"{target} = {value}")
    src.emit(depth, "pos = end")


def _skip(src: _Source, schema: Any, depth: int, target: str = "", wanted: Selection | None = None) -> None:
    """Code that moves `pos` past a value of `schema` without building it."""
    kind = _kind(schema)
    if kind == "null":
        src.emit(depth, "pass")
    elif kind == "boolean":
        src.emit(depth, "pos += 1")
    elif kind in ("int", "long", "enum"):
        src.emit(depth, "while data[pos] & 128:")
        src.emit(depth + 1, "pos += 1")
        src.emit(depth, "pos += 1")
    elif kind in ("float", "double"):
        src.emit(depth, f"pos += {4 if kind == 'float' else 8}")
    elif kind == "fixed":
        src.emit(depth, f"pos += {int(schema['size'])}")
    elif kind in ("string", "bytes"):
        size = src.name()
        _read_long(src, depth, size)
        src.emit(depth, f"pos += {size}")
    elif kind == "union":
        _union(src, schema, depth, "", _skip)
    elif kind == "record":
        for field in schema["fields"]:
            _skip(src, field["type"], depth)
    elif kind in ("array", "map"):
        _blocks(src, schema, kind, depth, "", read=False)
    else:
        raise NotImplementedError(f"type {kind}")


def _union(src: _Source, schema: list[Any], depth: int, target: str, branch: Callable[..., None]) -> None:
    index = src.name()
    _read_long(src, depth, index)
    for number, option in enumerate(schema):
        src.emit(depth, f"{'if' if number == 0 else 'elif'} {index} == {number}:")
        branch(src, option, depth + 1, target)
    src.emit(depth, "else:")
    src.emit(depth + 1, f"raise Corrupt('union branch ' + str({index}) + ' does not exist')")


def _record(src: _Source, schema: Mapping[str, Any], depth: int, target: str, wanted: Selection | None) -> None:
    """A dict of the record's fields (only those in `wanted`, when given), in the schema's order."""
    values: list[tuple[str, str]] = []
    for field in schema["fields"]:
        name = field["name"]
        if wanted is not None and name not in wanted:
            _skip(src, field["type"], depth)
            continue
        local = src.name()
        _read(src, field["type"], depth, local, None if wanted is None else wanted[name])
        values.append((name, local))
    src.emit(depth, f"{target} = {{{', '.join(f'{name!r}: {local}' for name, local in values)}}}")


def _blocks(src: _Source, schema: Mapping[str, Any], kind: str, depth: int, target: str, *, read: bool) -> None:
    """Arrays and maps: blocks of items, a negative count followed by the block's size in bytes, 0 at the end."""
    count, item, key = src.name(), src.name(), src.name()
    if read:
        src.emit(depth, f"{target} = {'[]' if kind == 'array' else '{}'}")
    src.emit(depth, "while True:")
    _read_long(src, depth + 1, count)
    src.emit(depth + 1, f"if {count} == 0:")
    src.emit(depth + 2, "break")
    src.emit(depth + 1, f"if {count} < 0:")
    src.emit(depth + 2, f"{count} = -{count}")
    _skip(src, "long", depth + 2)
    src.emit(depth + 1, f"for _ in range({count}):")
    inner = schema["items"] if kind == "array" else schema["values"]
    if kind == "map":
        (_read_sized if read else _skip_sized)(src, "string", "string", depth + 2, key)
    if read:
        _read(src, inner, depth + 2, item)
        src.emit(depth + 2, f"{target}.append({item})" if kind == "array" else f"{target}[{key}] = {item}")
    else:
        _skip(src, inner, depth + 2)


def _skip_sized(src: _Source, schema: Any, kind: str, depth: int, target: str) -> None:
    _skip(src, schema, depth)


def compile_reader(schema: Mapping[str, Any], wanted: Selection, header: int) -> Reader:
    """A function reading a record body that starts at byte `header`: a dict of the wanted fields only.

    Raises Corrupt, IndexError or UnicodeDecodeError on a body that is not the schema's. NotImplementedError
    for types it does not generate (then the caller decodes in full)."""
    src = _Source()
    src.emit(0, "def read(data):")
    src.emit(1, f"pos, length = {header}, len(data)")
    _record(src, schema, 1, "payload", wanted)
    src.emit(1, "if pos != length:")
    src.emit(2, "raise Corrupt(str(length - pos) + ' bytes left over')")
    src.emit(1, "return payload")
    namespace = dict(src.constants)
    exec(compile("\n".join(src.lines), f"<reader {schema.get('name')}>", "exec"), namespace)
    reader: Reader = namespace["read"]
    return reader
