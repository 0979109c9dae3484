"""The project's own PostgreSQL server: initdb once, started and stopped with pg_ctl, ready when SELECT 1 answers."""

from __future__ import annotations

import hashlib
import os
import pwd
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from switchboard.localpg._binaries import PostgresSetupError, server_bindir

__all__ = ["DATABASE", "HOST", "SUPERUSER", "LocalPostgres", "probe", "server_home", "unreachable_folder"]

HOST = "127.0.0.1"
SUPERUSER = "switchboard"
DATABASE = "switchboard"
SERVER_ACCOUNT = "postgres"  # Debian's package creates it; PostgreSQL refuses to run as root
FALLBACK_ROOT = Path("/var/tmp/switchboard-postgres")
STARTUP_TIMEOUT = 60.0
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with its terminating NUL


class LocalPostgres:
    """A server whose files live under `directory` (data/, run/ for the unix socket, postgres.log)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def sockets(self) -> Path:
        return self.directory / "run"

    @property
    def log_file(self) -> Path:
        return self.directory / "postgres.log"

    def dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def start(self) -> None:
        """Creates the cluster on first use, starts it, waits for a real query and creates the database."""
        if self.is_running():
            self.wait_ready()
            return
        bindir = server_bindir()
        account = _server_account()
        self._check_port_free()
        self._prepare(account)
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bindir, account)
        self._write_settings(account)
        command = [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_file), "-w", "-t",
                   str(int(STARTUP_TIMEOUT)), "start"]
        done = _run_as(account, command, self.directory)
        if done.returncode != 0:
            raise PostgresSetupError(f"PostgreSQL did not start on port {self.port}:\n{done.stdout}{done.stderr}"
                                     f"{self.log_tail()}")
        self.wait_ready()

    def stop(self) -> None:
        """A fast shutdown: open transactions are rolled back, committed ones are on disk."""
        if not self.is_running():
            return
        command = [str(server_bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"]
        done = _run_as(_server_account(), command, self.directory)
        if done.returncode != 0 and self.is_running():
            raise PostgresSetupError(f"PostgreSQL did not stop:\n{done.stdout}{done.stderr}")

    def is_running(self) -> bool:
        """The postmaster named in postmaster.pid is alive."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Blocks until `SELECT 1` answers, then makes sure the switchboard database exists."""
        deadline = time.monotonic() + timeout
        last_error = "no attempt yet"
        while time.monotonic() < deadline:
            try:
                probe(self.dsn("postgres"))
                _create_database(self.dsn("postgres"), DATABASE)
                return
            except psycopg.OperationalError as error:
                last_error = str(error).strip()
            if not self.is_running():
                raise PostgresSetupError(f"PostgreSQL exited during start-up.{self.log_tail()}")
            time.sleep(0.2)
        raise PostgresSetupError(f"PostgreSQL did not answer SELECT 1 within {timeout:.0f}s ({last_error})."
                                 f"{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        return f"\n--- last lines of {self.log_file} ---\n" + "\n".join(text[-lines:])

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as test:
            test.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                test.bind((HOST, self.port))
            except OSError:
                raise PostgresSetupError(
                    f"port {self.port} on {HOST} is already in use, so the local PostgreSQL cannot start. Stop "
                    f"whatever holds it (`ss -ltnp 'sport = :{self.port}'` shows it), or choose another port with "
                    "--port or SWITCHBOARD_POSTGRES_PORT."
                ) from None
        socket_path = self.sockets / f".s.PGSQL.{self.port}"
        if len(str(socket_path).encode()) > _SOCKET_PATH_MAX:
            raise PostgresSetupError(f"the unix socket path {socket_path} is longer than {_SOCKET_PATH_MAX} bytes; "
                                     "use a shorter --name or check the project out in a shorter folder")

    def _prepare(self, account: tuple[int, int] | None) -> None:
        for folder in (self.directory, self.sockets):
            folder.mkdir(parents=True, exist_ok=True)
        if account is not None:
            _check_reachable(self.directory, account[0])
            for path in (self.directory, self.sockets, self.log_file):
                if path.exists():
                    os.chown(path, *account)

    def _initdb(self, bindir: Path, account: tuple[int, int] | None) -> None:
        # The C locale sorts keys by bytes, as RocksDB does; trust is for loopback and the socket only.
        command = [str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                   "--no-locale", "--no-instructions"]
        done = _run_as(account, command, self.directory)
        if done.returncode != 0:
            raise PostgresSetupError(f"initdb failed for {self.data}:\n{done.stdout}{done.stderr}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude 'switchboard.conf'  # written by switchboard on every start\n")

    def _write_settings(self, account: tuple[int, int] | None) -> None:
        settings = self.data / "switchboard.conf"
        settings.write_text(server_settings(self.port, self.sockets))
        if account is not None:
            os.chown(settings, *account)


def server_settings(port: int, sockets: Path) -> str:
    """Loopback TCP and a socket inside var/: nothing listens beyond this machine."""
    quoted = str(sockets).replace("'", "''")
    return (f"listen_addresses = '{HOST}'\nport = {port}\nunix_socket_directories = '{quoted}'\n"
            "max_connections = 50\nlog_line_prefix = '%m [%p] %q%u@%d '\n")


def probe(dsn: str, timeout: float = 3.0) -> None:
    """A real connection and `SELECT 1`; raises psycopg.OperationalError otherwise."""
    with psycopg.connect(dsn, connect_timeout=max(1, int(timeout)), autocommit=True) as connection:
        connection.execute("SELECT 1").fetchone()


def _create_database(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def _server_account() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root; None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise PostgresSetupError(
            f"PostgreSQL refuses to run as root, so the project runs it as the `{SERVER_ACCOUNT}` user that Debian's "
            f"package creates, and there is no such user: `apt-get install postgresql` creates it"
        ) from None
    return entry.pw_uid, entry.pw_gid


def server_home(preferred: Path) -> Path:
    """Where a server's files go: `preferred` (under var/), unless root runs the server as `postgres` and that
    account cannot enter one of its folders (a checkout under /root, say): then a folder of its own in /var/tmp."""
    if os.geteuid() != 0:
        return preferred
    try:
        uid = pwd.getpwnam(SERVER_ACCOUNT).pw_uid
    except KeyError:
        return preferred  # start() says what is missing
    if unreachable_folder(preferred, uid) is None:
        return preferred
    digest = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:12]
    return FALLBACK_ROOT / f"{preferred.name}-{digest}"


def unreachable_folder(directory: Path, uid: int) -> Path | None:
    """The first existing folder above `directory` that user `uid` may not enter, if any."""
    for folder in reversed(directory.resolve().parents):
        if not folder.exists():
            break  # what is still missing gets created with the usual o+x
        info = folder.stat()
        if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
            return folder
    return None


def _check_reachable(directory: Path, uid: int) -> None:
    folder = unreachable_folder(directory, uid)
    if folder is not None:
        raise PostgresSetupError(
            f"the `{SERVER_ACCOUNT}` user cannot enter {folder}, so it cannot run a server with data in "
            f"{directory} (PostgreSQL refuses to run as root). Allow it (`chmod o+x {folder}`) or check the "
            "project out elsewhere."
        )


def _run_as(account: tuple[int, int] | None, command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    options: dict[str, Any] = {}
    if account is not None:
        options = {"user": account[0], "group": account[1], "extra_groups": []}
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd,
                          stdin=subprocess.DEVNULL, **options)
