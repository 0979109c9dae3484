"""`switchboard postgres start|stop|status|install|backup|restore`: the project's local PostgreSQL and its backups."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from switchboard.localkafka import project_root
from switchboard.localpg import DSN_ENV, PORT_ENV, ensure_installed, local_postgres, server_bindir
from switchboard.localpg._backup import backup, default_backup_file, restore

__all__ = ["add_command"]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    postgres = commands.add_parser("postgres", help="start, stop or inspect the project's local PostgreSQL "
                                                    "(the read models' sink for BI tools)")
    postgres.add_argument("action", choices=["start", "stop", "status", "install", "backup", "restore"],
                          help="install: Debian's postgresql package, as root, if it is missing; backup: pg_dump "
                               "the read models (to --file); restore: pg_restore --file into the database")
    postgres.add_argument("--name", default="dev", help="server name; its files live in var/postgres/NAME")
    postgres.add_argument("--port", type=int, help=f"TCP port on 127.0.0.1 (default {PORT_ENV} or 15432)")
    postgres.add_argument("--dsn", help=f"backup and restore: the database (default {DSN_ENV}, else the local one)")
    postgres.add_argument("--file", type=Path, help="backup: where to write the dump (default "
                                                    "var/postgres/backups/switchboard-<UTC time>.dump); "
                                                    "restore: the dump to restore (required)")
    postgres.set_defaults(handler=_postgres)


def _postgres(args: argparse.Namespace) -> int:
    if args.action == "install":
        print(f"PostgreSQL's server programs: {ensure_installed()}")
        return 0
    if args.action in ("backup", "restore"):
        return _backup(args) if args.action == "backup" else _restore(args)
    if args.action != "status" and os.environ.get(DSN_ENV):
        print(f"{DSN_ENV} is set: using that server, starting and stopping nothing.")
        return 0
    server = local_postgres(args.name, args.port)
    if args.action == "start":
        server.start()
        print(f"{_version()} ready at {server.dsn()} (data in {server.data}, log {server.log_file})")
    elif args.action == "stop":
        server.stop()
        print("PostgreSQL stopped")
    else:
        state = "running" if server.is_running() else "stopped"
        print(f"PostgreSQL at {server.dsn()} (data in {server.data}): {state}")
    return 0


def _version() -> str:
    done = subprocess.run([str(server_bindir() / "postgres"), "--version"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip().replace("postgres (PostgreSQL)", "PostgreSQL") or "PostgreSQL"


def _dsn(args: argparse.Namespace) -> str:
    return str(args.dsn or os.environ.get(DSN_ENV) or local_postgres(args.name, args.port).dsn())


def _backup(args: argparse.Namespace) -> int:
    target = args.file or default_backup_file(project_root() / "var" / "postgres" / "backups")
    written = backup(_dsn(args), target)
    print(f"backup written to {written} ({written.stat().st_size:,} bytes)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    if args.file is None:
        print("switchboard postgres restore needs --file DUMP (a file written by `switchboard postgres backup`)")
        return 2
    restore(args.file, _dsn(args))
    print(f"restored {args.file}; `switchboard project NAME --store postgres` resumes from the positions it holds")
    return 0
