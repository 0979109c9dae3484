"""Backups of the PostgreSQL read models: pg_dump and pg_restore of the server's own version, with clear errors."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from switchboard.localpg._binaries import PostgresSetupError, server_bindir

__all__ = ["backup", "default_backup_file", "restore"]


def default_backup_file(folder: Path, now: datetime | None = None) -> Path:
    """`folder/switchboard-<UTC time>.dump`: names that sort by time, as the runbook's retention expects."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"switchboard-{stamp}.dump"


def backup(dsn: str, target: Path) -> Path:
    """Dumps the database at `dsn` into `target` (pg_dump's custom format), written beside it and then renamed,
    so a dump cut short by a crash never passes for a whole one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    _run("pg_dump", "--format=custom", "--no-owner", f"--file={partial}", f"--dbname={dsn}")
    partial.replace(target)
    return target


def restore(dump: Path, dsn: str) -> None:
    """Restores `dump` into the database at `dsn`, replacing the tables it holds, in one transaction: a restore
    that fails leaves the database as it was."""
    if not dump.is_file():
        raise PostgresSetupError(f"no backup at {dump}")
    _run("pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
         f"--dbname={dsn}", str(dump))


def _run(program: str, *arguments: str) -> None:
    done = subprocess.run([str(server_bindir() / program), *arguments], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise PostgresSetupError(f"{program} failed (exit {done.returncode}):\n{tail}")
