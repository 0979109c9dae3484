"""Finding PostgreSQL's server programs from Debian's packages, and deciding whether to install them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from switchboard.errors import SwitchboardError

__all__ = ["PACKAGE", "InstallPlan", "Machine", "PostgresSetupError", "ensure_installed", "install_plan",
           "server_bindir"]

PACKAGE = "postgresql"  # Debian's package for the supported server version (postgresql-15 on bookworm)
BINDIR_ENV = "SWITCHBOARD_PG_BINDIR"
_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_DEBIAN_ROOT = Path("/usr/lib/postgresql")


class PostgresSetupError(SwitchboardError):
    """The local PostgreSQL could not be found, installed, started or reached."""


def server_bindir() -> Path:
    """The folder with initdb, pg_ctl and postgres: $SWITCHBOARD_PG_BINDIR, else Debian's newest installed server."""
    override = os.environ.get(BINDIR_ENV)
    if override:
        if not _has_programs(Path(override)):
            raise PostgresSetupError(f"{BINDIR_ENV}={override} lacks one of {', '.join(_PROGRAMS)}")
        return Path(override)
    found = find_bindir()
    if found is None:
        raise PostgresSetupError(
            "PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found: the projections' PostgreSQL "
            f"sink runs a local server from Debian's package. Install it with `apt-get install {PACKAGE}` "
            f"(`switchboard postgres install` does it when run as root, and so does bin/test), "
            f"or point {BINDIR_ENV} at a PostgreSQL 13+ bin directory."
        )
    return found


def find_bindir() -> Path | None:
    """Debian's server of the newest installed postgresql-N package; elsewhere, what pg_config names."""
    for version in debian_server_versions():
        candidate = _DEBIAN_ROOT / str(version) / "bin"
        if _has_programs(candidate):
            return candidate
    if Path("/etc/debian_version").exists():
        return None  # on Debian only the packaged server counts: stray symlinks may outlive a removed package
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    candidate = Path(done.stdout.strip())
    return candidate if done.returncode == 0 and _has_programs(candidate) else None


def debian_server_versions() -> list[int]:
    """Major versions of the installed postgresql-N packages (as `dpkg -s postgresql-15` would say), newest first."""
    if shutil.which("dpkg-query") is None:
        return []
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Status}\n", "postgresql-[0-9]*"],
                          capture_output=True, text=True, check=False)  # exit 1 when none matches: no versions
    return parse_dpkg_versions(done.stdout)


def parse_dpkg_versions(listing: str) -> list[int]:
    versions = []
    for line in listing.splitlines():
        name, _, status = line.partition("\t")
        found = re.fullmatch(r"postgresql-(\d+)", name.strip())
        if found and status.strip() == "installed":
            versions.append(int(found.group(1)))
    return sorted(versions, reverse=True)


@dataclass(frozen=True)
class Machine:
    """What the install decision depends on."""

    euid: int
    debian: bool  # /etc/debian_version and apt-get exist
    server: Path | None  # the server programs found, if any

    @staticmethod
    def this() -> Machine:
        debian = Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None
        override = os.environ.get(BINDIR_ENV)
        return Machine(os.geteuid(), debian, Path(override) if override else find_bindir())


@dataclass(frozen=True)
class InstallPlan:
    """The commands that install the server (none when it is there), or why none can."""

    commands: tuple[tuple[str, ...], ...] = ()
    problem: str | None = None


def install_plan(machine: Machine) -> InstallPlan:
    """Installs Debian's package only as root on Debian, and only when no packaged server is there."""
    if machine.server is not None:
        return InstallPlan()
    if not machine.debian:
        return InstallPlan(problem="PostgreSQL's server is not installed and this is not a Debian machine: install "
                                   f"PostgreSQL 13 or newer and point {BINDIR_ENV} at its bin directory")
    if machine.euid != 0:
        return InstallPlan(problem=f"PostgreSQL's server is not installed: run `sudo apt-get install {PACKAGE}`")
    return InstallPlan(commands=(("apt-get", "update"),
                                 ("apt-get", "install", "-y", "--no-install-recommends", PACKAGE)))


Runner = Callable[[Sequence[str]], int]


def ensure_installed(machine: Machine | None = None, run: Runner | None = None) -> Path:
    """The server's bin directory, installing Debian's package first when the plan says so."""
    plan = install_plan(machine or Machine.this())
    if plan.problem is not None:
        raise PostgresSetupError(plan.problem)
    for command in plan.commands:
        code = (run or _run)(command)
        if code != 0:
            raise PostgresSetupError(f"`{' '.join(command)}` failed (exit {code}): see its output above")
    return server_bindir()


def _run(command: Sequence[str]) -> int:
    # noninteractive: a fresh CI machine has no terminal for debconf's questions
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(list(command), env=env, check=False).returncode


def _has_programs(folder: Path) -> bool:
    return all((folder / program).is_file() for program in _PROGRAMS)
