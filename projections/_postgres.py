"""The PostgreSQL sink: a projection's rows, typed BI tables and source offsets, committed in one transaction."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from projections._postgres_typed import TYPED_TABLES, TypedTable
from projections._store import ProjectionStore
from switchboard.errors import SwitchboardError

__all__ = ["PostgresStore", "PostgresVersions", "ProjectionStoreBusy", "Tables"]

_LOCK_CLASS = 0x5342  # the first key of every advisory lock we take ("SB"), the second is hashtext(table)
_SERVING = sql.Identifier("projection_serving")
_cursors = itertools.count()
_CACHED_ROWS = 20_000
_STAGE_ROWS, _STAGE_TYPED = "sb_stage_rows", "sb_stage_typed"  # temporary tables, one pair per session


class ProjectionStoreBusy(SwitchboardError):
    """Another process writes this projection version."""


@dataclass(frozen=True)
class Tables:
    """The names of one projection version's tables: <base>_v<N>_rows, _positions and the typed one."""

    projection: str
    version: int

    @property
    def base(self) -> str:
        base = self.projection.replace("-", "_")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", base):
            raise ValueError(f"{self.projection!r} cannot name PostgreSQL tables")
        return base

    @property
    def rows(self) -> str:
        return f"{self.base}_v{self.version}_rows"

    @property
    def positions(self) -> str:
        return f"{self.base}_v{self.version}_positions"

    def typed(self, table: TypedTable) -> str:
        return f"{table.name}_v{self.version}"


class PostgresStore(ProjectionStore):
    """One projection version in PostgreSQL; one writer at a time (an advisory lock held while it is open).

    Reads between two commits run in the transaction the next commit ends, so a batch's lookups, row upserts,
    typed rows and positions are one transaction: a crash anywhere in a batch leaves the previous commit.
    """

    def __init__(self, dsn: str, projection: str, version: int, *, read_only: bool = False,
                 lock_timeout: float = 15.0) -> None:
        """`read_only` reads one snapshot, taken at the first read, however the writer goes on meanwhile."""
        self.tables = Tables(projection, version)
        self._typed = TYPED_TABLES.get(projection)
        self._read_only = read_only
        # Rows read or written lately, as JSON text (None: no row). Sound because this store is the only writer
        # of its version (the advisory lock), or reads a snapshot; it saves most lookups' round trips.
        self._cache: OrderedDict[str, str | None] = OrderedDict()
        role = "reader" if read_only else "writer"
        self._connection = psycopg.connect(dsn, application_name=f"switchboard {self.tables.rows} {role}")
        if read_only:  # never committed: the first read's snapshot lasts until close
            self._connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._connection.read_only = True
            return
        try:
            self._lock(lock_timeout)
            create_tables(self._connection, self.tables, self._typed)
            _create_staging(self._connection, self.tables, self._typed)
            self._connection.commit()
        except BaseException:
            self._connection.close()
            raise

    def get(self, key: str) -> Any | None:
        if key in self._cache:
            self._cache.move_to_end(key)
            text = self._cache[key]
        else:
            query = sql.SQL("SELECT value::text FROM {} WHERE key = %s").format(sql.Identifier(self.tables.rows))
            found = self._connection.execute(query, (key,)).fetchone()
            text = None if found is None else found[0]
            self._remember(key, text)
        return None if text is None else json.loads(text)  # a new object each time, as from the table

    batched_reads = True

    def get_many(self, keys: Iterable[str]) -> dict[str, Any | None]:
        wanted = list(dict.fromkeys(keys))
        missing = [key for key in wanted if key not in self._cache]
        if missing:  # one round trip for all of them, instead of one each (a replay waited on those)
            query = sql.SQL("SELECT key, value::text FROM {} WHERE key = ANY(%s::text[])").format(
                sql.Identifier(self.tables.rows))
            found: dict[str, str | None] = dict.fromkeys(missing)
            found.update(self._connection.execute(query, (missing,)).fetchall())
            for key, text in found.items():
                self._remember(key, text)
        return {key: self.get(key) for key in wanted}  # from the cache now, each a new object

    def positions(self) -> dict[int, int]:
        query = sql.SQL("SELECT partition, next_offset FROM {}").format(sql.Identifier(self.tables.positions))
        return {int(partition): int(offset) for partition, offset in self._connection.execute(query)}

    def commit(self, rows: Mapping[str, Any], positions: Mapping[int, int]) -> None:
        if self._read_only:
            raise TypeError(f"{self.tables.rows} was opened read-only")
        try:
            with self._connection.cursor() as cursor:
                self._write_rows(cursor, rows)
                if self._typed is not None:
                    _write_typed(cursor, self._typed, self.tables.typed(self._typed), rows)
                if positions:
                    cursor.execute(sql.SQL(
                        "INSERT INTO {} (partition, next_offset) SELECT * FROM unnest(%s::int[], %s::bigint[]) "
                        "ON CONFLICT (partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                    ).format(sql.Identifier(self.tables.positions)), (list(positions), list(positions.values())))
            self._connection.commit()
        except BaseException:
            with contextlib.suppress(psycopg.Error):  # a dead connection has nothing left to roll back
                self._connection.rollback()
            raise
        for key, value in rows.items():  # only once committed: the cache never shows what a rollback undid
            self._remember(key, None if value is None else _dumps(value))

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        # A server-side cursor: a large projection streams instead of arriving in one result.
        where, params = (sql.SQL("WHERE key LIKE %s"), (_like_prefix(prefix),)) if prefix else (sql.SQL(""), ())
        query = sql.SQL("SELECT key, value FROM {} {} ORDER BY key").format(sql.Identifier(self.tables.rows), where)
        with self._connection.cursor(name=f"items_{next(_cursors)}") as cursor:
            cursor.itersize = 2000
            cursor.execute(query, params)
            yield from cursor  # rows of (key, value)

    def close(self) -> None:
        self._connection.close()  # ends the session: the advisory lock goes with it

    def _remember(self, key: str, text: str | None) -> None:
        self._cache[key] = text
        self._cache.move_to_end(key)
        if len(self._cache) > _CACHED_ROWS:
            self._cache.popitem(last=False)

    def _lock(self, timeout: float) -> None:
        self._connection.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(timeout * 1000)}ms")))
        try:
            self._connection.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, self.tables.rows))
        except psycopg.errors.LockNotAvailable:
            raise ProjectionStoreBusy(f"another process has been writing {self.tables.rows} for over {timeout:g}s "
                                      "(a running `switchboard project`?); stop it first") from None
        self._connection.execute("RESET lock_timeout")

    def _write_rows(self, cursor: psycopg.Cursor[Any], rows: Mapping[str, Any]) -> None:
        kept = [(key, _dumps(value)) for key, value in rows.items() if value is not None]
        _upsert(cursor, self.tables.rows, _STAGE_ROWS, ["key", "value"], kept)
        deleted = [key for key, value in rows.items() if value is None]
        if deleted:
            cursor.execute(sql.SQL("DELETE FROM {} WHERE key = ANY(%s::text[])").format(
                sql.Identifier(self.tables.rows)), (deleted,))


def _write_typed(cursor: psycopg.Cursor[Any], typed: TypedTable, name: str, rows: Mapping[str, Any]) -> None:
    mine = {key: value for key, value in rows.items() if key.startswith(typed.prefix)}
    kinds = [kind for _, kind in typed.columns]
    kept = [tuple(map(_coerce, kinds, typed.values(key, value))) for key, value in mine.items() if value is not None]
    columns = [column for column, _ in typed.columns]
    _upsert(cursor, name, _STAGE_TYPED, columns, kept)
    deleted = [typed.values(key, None)[0] for key, value in mine.items() if value is None]
    if deleted:
        cursor.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::text[])").format(
            sql.Identifier(name), sql.Identifier(columns[0])), (deleted,))


def _upsert(cursor: psycopg.Cursor[Any], table: str, stage: str, columns: list[str], values: list[Any]) -> None:
    """COPY into the session's staging table, then one INSERT ... ON CONFLICT: several times faster than
    parameter arrays, whose escaping in the client costs more than the server's whole upsert."""
    if not values:
        return
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(stage), names)) as copy:
        for value in values:
            copy.write_row(value)
    updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[1:])
    cursor.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO UPDATE SET {}").format(
        sql.Identifier(table), names, names, sql.Identifier(stage), sql.Identifier(columns[0]), updates))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _coerce(kind: str, value: Any) -> Any:
    """A value of the column's type or NULL: a row of unexpected shape still commits (its JSON row is exact)."""
    if value is None or kind == "timestamptz":
        return value
    if kind == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return value if isinstance(value, str) else json.dumps(value)


def create_tables(connection: psycopg.Connection[Any], tables: Tables, typed: TypedTable | None) -> None:
    """The version's tables, if missing: keys sort bytewise (COLLATE "C"), as RocksDB keeps them."""
    # One DDL writer at a time until the transaction ends: CREATE ... IF NOT EXISTS races with itself.
    connection.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_CLASS,))
    connection.execute(sql.SQL(
        'CREATE TABLE IF NOT EXISTS {} (key text COLLATE "C" PRIMARY KEY, value jsonb NOT NULL)',
    ).format(sql.Identifier(tables.rows)))
    connection.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (partition integer PRIMARY KEY, next_offset bigint NOT NULL)",
    ).format(sql.Identifier(tables.positions)))
    if typed is None:
        return
    name = tables.typed(typed)
    columns = [sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(kind)) for column, kind in typed.columns]
    connection.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
        sql.Identifier(name), sql.SQL(", ").join(columns), sql.Identifier(typed.columns[0][0])))
    for index in typed.indexes:
        connection.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{name}_{'_'.join(index)}"), sql.Identifier(name),
            sql.SQL(", ").join(map(sql.Identifier, index))))


def _create_staging(connection: psycopg.Connection[Any], tables: Tables, typed: TypedTable | None) -> None:
    """This session's staging tables, emptied by every commit and rollback."""
    connection.execute(sql.SQL('CREATE TEMP TABLE {} (key text COLLATE "C", value jsonb) ON COMMIT DELETE ROWS')
                       .format(sql.Identifier(_STAGE_ROWS)))
    if typed is not None:
        connection.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DELETE ROWS").format(
            sql.Identifier(_STAGE_TYPED), sql.Identifier(tables.typed(typed))))


def _like_prefix(prefix: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", prefix) + "%"


class PostgresVersions:
    """Versions of a projection in one database; the table projection_serving names the serving one, and the
    views <base>_rows (and message_status) always show it, so BI queries need no version number."""

    def __init__(self, dsn: str, projection: str) -> None:
        self.dsn = dsn
        self.projection = projection
        self._typed = TYPED_TABLES.get(projection)

    def current(self) -> int | None:
        with self._connect() as connection:
            found = connection.execute(sql.SQL("SELECT version FROM {} WHERE projection = %s").format(_SERVING),
                                       (self.projection,)).fetchone()
        return None if found is None else int(found[0])

    def next(self) -> int:
        pattern = f"^{Tables(self.projection, 0).base}_v([0-9]+)_rows$"
        with self._connect() as connection:
            found = connection.execute(
                "SELECT max(substring(tablename from %s)::int) FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename ~ %s", (pattern, pattern)).fetchone()
        return max(found[0] if found and found[0] is not None else 0, self.current() or 0) + 1

    def open(self, version: int, read_only: bool = False) -> PostgresStore:
        return PostgresStore(self.dsn, self.projection, version, read_only=read_only)

    def where(self, version: int) -> str:
        return f"PostgreSQL table {Tables(self.projection, version).rows}"

    def switch(self, version: int) -> None:
        """Makes `version` serve: the marker and the views change in one transaction."""
        tables = Tables(self.projection, version)
        views = [(f"{tables.base}_rows", tables.rows)]
        if self._typed is not None:
            views.append((self._typed.name, tables.typed(self._typed)))
        with self._connect() as connection:
            if self._serves(connection, version, [view for view, _ in views]):
                return
            create_tables(connection, tables, self._typed)
            # Replacing a view waits for the queries reading it; a reader that never ends must not hang us.
            connection.execute("SET LOCAL lock_timeout = '30s'")
            try:
                for view, table in views:  # dropped and created: a new version may have new columns
                    connection.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(view)))
                    connection.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                        sql.Identifier(view), sql.Identifier(table)))
            except psycopg.errors.LockNotAvailable:
                raise ProjectionStoreBusy(f"sessions kept reading {', '.join(view for view, _ in views)} for 30 s "
                                          f"(an open transaction?), so v{version} cannot serve yet; retry") from None
            connection.execute(sql.SQL(
                "INSERT INTO {} (projection, version) VALUES (%s, %s) ON CONFLICT (projection) "
                "DO UPDATE SET version = EXCLUDED.version, switched_at = now()").format(_SERVING),
                (self.projection, version))

    def _serves(self, connection: psycopg.Connection[Any], version: int, views: list[str]) -> bool:
        found = connection.execute(sql.SQL("SELECT version FROM {} WHERE projection = %s").format(_SERVING),
                                   (self.projection,)).fetchone()
        exists = all(connection.execute("SELECT to_regclass(%s)", (view,)).fetchone() != (None,) for view in views)
        return found is not None and found[0] == version and exists

    @contextlib.contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.dsn, application_name="switchboard versions") as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_CLASS,))  # as create_tables
            connection.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (projection text PRIMARY KEY, version integer NOT NULL, "
                "switched_at timestamptz NOT NULL DEFAULT now())").format(_SERVING))
            yield connection  # leaving the block commits (or rolls back on an exception)
