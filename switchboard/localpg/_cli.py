"""`switchboard postgres start|stop|status|install`: the project's local PostgreSQL, as `kafka` is for Kafka."""

from __future__ import annotations

import argparse
import os
import subprocess

from switchboard.localpg import DSN_ENV, PORT_ENV, ensure_installed, local_postgres, server_bindir

__all__ = ["add_command"]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    postgres = commands.add_parser("postgres", help="start, stop or inspect the project's local PostgreSQL "
                                                    "(the read models' sink for BI tools)")
    postgres.add_argument("action", choices=["start", "stop", "status", "install"],
                          help="install: Debian's postgresql package, as root, if it is missing")
    postgres.add_argument("--name", default="dev", help="server name; its files live in var/postgres/NAME")
    postgres.add_argument("--port", type=int, help=f"TCP port on 127.0.0.1 (default {PORT_ENV} or 15432)")
    postgres.set_defaults(handler=_postgres)


def _postgres(args: argparse.Namespace) -> int:
    if args.action == "install":
        print(f"PostgreSQL's server programs: {ensure_installed()}")
        return 0
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
