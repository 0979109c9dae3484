"""A real PostgreSQL server from Debian's packages, run by the project on loopback for the read models' sink."""

from __future__ import annotations

import os

import psycopg

from switchboard.localkafka import project_root
from switchboard.localpg._binaries import (
    PACKAGE,
    InstallPlan,
    Machine,
    PostgresSetupError,
    ensure_installed,
    install_plan,
    server_bindir,
)
from switchboard.localpg._server import DATABASE, HOST, SUPERUSER, LocalPostgres, probe, server_home

__all__ = [
    "DATABASE",
    "DEFAULT_PORT",
    "DSN_ENV",
    "HOST",
    "PACKAGE",
    "PORT_ENV",
    "SUPERUSER",
    "InstallPlan",
    "LocalPostgres",
    "Machine",
    "PostgresSetupError",
    "check_reachable",
    "default_dsn",
    "ensure_installed",
    "install_plan",
    "local_postgres",
    "server_bindir",
]

DSN_ENV = "SWITCHBOARD_POSTGRES_DSN"
PORT_ENV = "SWITCHBOARD_POSTGRES_PORT"
DEFAULT_PORT = 15432  # the tests use 25432: both below the ephemeral range 32768-60999


def local_postgres(name: str = "dev", port: int | None = None) -> LocalPostgres:
    """The project's local server called `name`, with its files under var/postgres/NAME (see server_home)."""
    chosen = port if port is not None else int(os.environ.get(PORT_ENV, str(DEFAULT_PORT)))
    return LocalPostgres(server_home(project_root() / "var" / "postgres" / name), chosen)


def default_dsn() -> str:
    """SWITCHBOARD_POSTGRES_DSN if set, else the local server's (`switchboard postgres start`)."""
    return os.environ.get(DSN_ENV) or local_postgres().dsn()


def check_reachable(dsn: str) -> None:
    """Raises PostgresSetupError, saying what to do, unless `SELECT 1` answers at `dsn`."""
    try:
        probe(dsn)
    except psycopg.OperationalError as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PostgresSetupError(
            f"no PostgreSQL answers at {_without_password(dsn)} ({detail}). Start the project's own with "
            f"`switchboard postgres start`, or give --postgres-dsn / {DSN_ENV}."
        ) from error


def _without_password(dsn: str) -> str:
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the given DSN"
    info.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **{k: str(v) for k, v in info.items() if v is not None})
