"""Events on the wire: Confluent framing (magic byte 0, 4-byte big-endian schema id) around Avro binary."""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from fastavro import schemaless_reader, schemaless_writer

from schemas._envelope import envelope_problems
from schemas._projected import Corrupt, compile_reader, selection
from schemas._registry import Registry, SchemaVersion, default_registry
from schemas._topics import EVENT_TOPICS
from schemas._validate import Invalid, conform

__all__ = [
    "Codec",
    "CodecError",
    "DecodedEvent",
    "ProjectedDecoder",
    "SchemaViolation",
    "UnknownEvent",
    "WireFormatError",
    "decode",
    "default_codec",
    "encode",
]

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


class CodecError(ValueError):
    """An event could not be encoded or a record could not be decoded."""


class SchemaViolation(CodecError):
    """An event does not match its schema; `field` is the dotted path of the first offending field."""

    def __init__(self, event_type: str, version: int, field: str, problem: str) -> None:
        super().__init__(f"{event_type} v{version}: field '{field}' {problem}")
        self.event_type = event_type
        self.version = version
        self.field = field
        self.problem = problem


class WireFormatError(CodecError):
    """A record is not in our wire format or its Avro body is corrupt."""


@dataclass(frozen=True)
class DecodedEvent:
    """A decoded event; `payload` has the current schema's shape even if it was written with an older one."""

    event_type: str
    schema_id: int
    version: int
    current_version: int
    payload: dict[str, Any]

    @property
    def upcast(self) -> bool:
        """True when the record was written with an older version than the current one."""
        return self.version < self.current_version


@dataclass(frozen=True)
class UnknownEvent:
    """A record whose schema id this code does not know (a newer type or version); kept byte for byte."""

    schema_id: int
    raw: bytes = field(repr=False)

    @property
    def reason(self) -> str:
        """Why it was not decoded, for logs and dead-letter headers."""
        return f"schema id {self.schema_id} is not in this registry (written by newer code?)"


@dataclass(frozen=True)
class _Plan:
    """How to read one schema id: its writer, the current version to upcast to (None: it is current)."""

    writer: SchemaVersion
    current: SchemaVersion
    event_type: str
    reader: Any


class Codec:
    """Encodes with the current schema of a type and decodes any published version, upcasting to current."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._plans: dict[int, _Plan | None] = {}
        # (event type, pinned version) -> the schema, its header bytes and its parsed form, looked up once.
        self._writers: dict[tuple[str, int | None], tuple[SchemaVersion, bytes, Any]] = {}

    def encode(self, event: Mapping[str, Any], event_type: str, *, version: int | None = None,
               validate: bool = True) -> bytes:
        """Wire bytes for an event; `version` pins an older schema (e.g. while consumers roll out).

        `validate=False` is for events this code built itself (`aggregates.to_record`): the same bytes without the
        field-by-field check and its error naming the field, which guards what arrives from outside; fastavro
        still refuses a value of the wrong type."""
        schema, header, parsed = self._writers.get((event_type, version)) or self._writer_of(event_type, version)
        datum = self._conform(event, schema) if validate else event
        out = io.BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, parsed, datum)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # only without validation
            raise SchemaViolation(schema.event_type, schema.version, "<record>", f"does not fit: {exc!r}") from exc
        return out.getvalue()

    def _writer_of(self, event_type: str, version: int | None) -> tuple[SchemaVersion, bytes, Any]:
        schema = self._writer(event_type, version)
        writer = self._writers[(event_type, version)] = (schema, _HEADER.pack(MAGIC_BYTE, schema.schema_id),
                                                         schema.parsed)
        return writer

    def decode(self, data: bytes) -> DecodedEvent | UnknownEvent:
        """The event in a record; an UnknownEvent for schema ids we do not know. Raises WireFormatError."""
        schema_id = _read_header(data)
        plan = self._plan(schema_id)
        if plan is None:
            return UnknownEvent(schema_id, bytes(data))
        payload = _read_body(data, plan)
        return DecodedEvent(plan.event_type, schema_id, plan.writer.version, plan.current.version, payload)

    def decode_payload(self, data: bytes) -> tuple[str, dict[str, Any]] | None:
        """Only the event type and payload, as `decode` reads them (None: an unknown schema id); for replays,
        which decode every event of a topic and need nothing else."""
        plan = self._plan(_read_header(data))
        return None if plan is None else (plan.event_type, _read_body(data, plan))

    def projected(self, fields: Iterable[str]) -> ProjectedDecoder:
        """A `decode_payload` for replays that read only `fields` ("envelope.aggregate_id", "channel"...)."""
        return ProjectedDecoder(self, fields)

    def _plan(self, schema_id: int) -> _Plan | None:
        """The writer and reader of a schema id, worked out once (the registry does not change under a codec)."""
        if schema_id in self._plans:
            return self._plans[schema_id]
        writer = self.registry.by_id(schema_id)
        plan = None
        if writer is not None:
            current = self.registry.latest(writer.subject)
            plan = _Plan(writer, current, writer.event_type, None if current is writer else current.parsed)
        self._plans[schema_id] = plan
        return plan

    def _writer(self, event_type: str, version: int | None) -> SchemaVersion:
        if version is None:
            return self.registry.latest(event_type)
        return self.registry.version(event_type, version)

    def _conform(self, event: Mapping[str, Any], schema: SchemaVersion) -> dict[str, Any]:
        try:
            datum = cast(dict[str, Any], conform(event, schema.expanded))
        except Invalid as exc:
            raise SchemaViolation(schema.event_type, schema.version, exc.path, exc.problem) from None
        aggregate_type = EVENT_TOPICS[schema.family].aggregate_type
        problems = envelope_problems(datum["envelope"], aggregate_type)
        if problems:
            name, problem = problems[0]
            raise SchemaViolation(schema.event_type, schema.version, f"envelope.{name}", problem)
        return datum


class ProjectedDecoder:
    """Like `Codec.decode_payload`, but the payload holds only the declared fields the event's schema has, and
    timestamps (timestamp-millis) stay the wire's milliseconds since the epoch (see `from_millis`).

    Each schema id gets a reader generated once that builds those fields and skips the others' bytes; a record
    written with an older version (an upcast) is decoded in full by the codec instead, timestamps as datetimes."""

    def __init__(self, codec: Codec, fields: Iterable[str]) -> None:
        self._codec, self._wanted = codec, selection(fields)
        # By the record's first five bytes (magic byte and schema id): no header to unpack on the way.
        self._readers: dict[bytes, tuple[str, Callable[[bytes], dict[str, Any]]] | None] = {}

    def __call__(self, data: bytes) -> tuple[str, dict[str, Any]] | None:
        header = data[:_HEADER.size]
        reader = self._readers[header] if header in self._readers else self._reader(data)
        if reader is None:
            return None
        event_type, read = reader
        try:
            return event_type, read(data)
        except (Corrupt, IndexError, UnicodeDecodeError, struct.error) as exc:
            raise WireFormatError(f"schema id {_read_header(data)}: corrupt Avro body ({exc!r})") from exc

    def _reader(self, data: bytes) -> tuple[str, Callable[[bytes], dict[str, Any]]] | None:
        plan = self._codec._plan(_read_header(data))  # raises WireFormatError on a bad header
        reader: tuple[str, Callable[[bytes], dict[str, Any]]] | None = None
        if plan is not None:
            reader = (plan.event_type, self._compiled(plan))
        self._readers[data[:_HEADER.size]] = reader
        return reader

    def _compiled(self, plan: _Plan) -> Callable[[bytes], dict[str, Any]]:
        if plan.reader is not None:  # an older version: Avro schema resolution fills the newer fields
            return functools.partial(_read_body, plan=plan)
        try:
            return compile_reader(plan.writer.expanded, self._wanted, _HEADER.size)
        except NotImplementedError:  # a type the generator does not cover: fastavro reads it all
            return functools.partial(_read_body, plan=plan)


@functools.cache
def default_codec() -> Codec:
    """A codec over the registry committed with this package."""
    return Codec(default_registry())


def encode(event: Mapping[str, Any], event_type: str, *, version: int | None = None, validate: bool = True) -> bytes:
    """Wire bytes for an event of this type, using the committed registry; raises SchemaViolation (see
    Codec.encode for `validate`)."""
    return default_codec().encode(event, event_type, version=version, validate=validate)


def decode(data: bytes) -> DecodedEvent | UnknownEvent:
    """The event in a record, using the committed registry; see Codec.decode."""
    return default_codec().decode(data)


def _read_header(data: bytes) -> int:
    if len(data) < _HEADER.size:
        raise WireFormatError(f"record of {len(data)} bytes is shorter than the {_HEADER.size}-byte header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise WireFormatError(f"record starts with byte {magic}, not the magic byte {MAGIC_BYTE}")
    return int(schema_id)


def _read_body(data: bytes, plan: _Plan) -> dict[str, Any]:
    stream = io.BytesIO(data)
    stream.seek(_HEADER.size)
    # Avro schema resolution does the upcast (plan.reader): fields added since the writer get their defaults.
    try:
        payload = schemaless_reader(stream, plan.writer.parsed, plan.reader)
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError... on corrupt bodies
        raise WireFormatError(f"{plan.writer.subject} v{plan.writer.version}: corrupt Avro body ({exc!r})") from exc
    if stream.tell() != len(data):
        writer = plan.writer
        raise WireFormatError(f"{writer.subject} v{writer.version}: {len(data) - stream.tell()} bytes left over")
    return cast(dict[str, Any], payload)
