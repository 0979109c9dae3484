"""The local PostgreSQL's install decision, binaries lookup, settings and set-up errors, checked without a server."""

from __future__ import annotations

import os
import pwd
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from switchboard.localpg import (
    InstallPlan,
    LocalPostgres,
    Machine,
    PostgresSetupError,
    ensure_installed,
    install_plan,
    server_bindir,
)
from switchboard.localpg import _binaries as binaries
from switchboard.localpg._binaries import parse_dpkg_versions
from switchboard.localpg._server import server_home, server_settings, unreachable_folder

DEBIAN_SERVER = Path("/usr/lib/postgresql/15/bin")


def test_nothing_is_installed_when_debian_s_server_is_there() -> None:
    assert install_plan(Machine(euid=0, debian=True, server=DEBIAN_SERVER)) == InstallPlan()


def test_root_on_debian_without_the_server_installs_the_package_noninteractively() -> None:
    plan = install_plan(Machine(euid=0, debian=True, server=None))
    assert plan.problem is None
    assert plan.commands == (("apt-get", "update"), ("apt-get", "install", "-y", "--no-install-recommends",
                                                     "postgresql"))


def test_a_user_on_debian_is_told_the_package_to_install() -> None:
    plan = install_plan(Machine(euid=1000, debian=True, server=None))
    assert plan.commands == ()
    assert plan.problem is not None
    assert "apt-get install postgresql" in plan.problem


def test_another_system_is_told_how_to_point_at_a_server() -> None:
    plan = install_plan(Machine(euid=0, debian=False, server=None))
    assert plan.commands == ()
    assert plan.problem is not None
    assert "SWITCHBOARD_PG_BINDIR" in plan.problem


def test_ensure_installed_runs_the_plan_in_order_and_stops_at_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Sequence[str]] = []

    def run(command: Sequence[str]) -> int:
        ran.append(command)
        return 0

    monkeypatch.setattr(binaries, "server_bindir", lambda: DEBIAN_SERVER)
    assert ensure_installed(Machine(0, True, None), run) == DEBIAN_SERVER
    assert [command[:2] for command in ran] == [("apt-get", "update"), ("apt-get", "install")]
    with pytest.raises(PostgresSetupError, match=r"apt-get update.*failed \(exit 100\)"):
        ensure_installed(Machine(0, True, None), lambda command: 100)
    with pytest.raises(PostgresSetupError, match="sudo apt-get install postgresql"):
        ensure_installed(Machine(1000, True, None), lambda command: 0)


def test_only_installed_server_packages_count() -> None:
    listing = ("postgresql-15\tinstalled\npostgresql-13\tconfig-files\npostgresql-15-postgis-3\tinstalled\n"
               "postgresql-16\tinstalled\n")
    assert parse_dpkg_versions(listing) == [16, 15]
    assert parse_dpkg_versions("") == []


def test_missing_server_programs_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_PG_BINDIR", raising=False)
    monkeypatch.setattr(binaries, "find_bindir", lambda: None)
    with pytest.raises(PostgresSetupError, match="apt-get install postgresql"):
        server_bindir()


def test_a_bindir_override_must_hold_the_server_programs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SWITCHBOARD_PG_BINDIR", str(tmp_path))
    with pytest.raises(PostgresSetupError, match="lacks one of initdb, pg_ctl, postgres"):
        server_bindir()


def test_the_server_listens_on_loopback_and_a_socket_inside_var_only() -> None:
    settings = server_settings(25432, Path("/work/it's/var/postgres/test/run"))
    assert "listen_addresses = '127.0.0.1'\n" in settings
    assert "port = 25432\n" in settings
    assert "unix_socket_directories = '/work/it''s/var/postgres/test/run'\n" in settings


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PostgresSetupError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalPostgres(tmp_path, port)._check_port_free()


def test_a_socket_path_too_long_for_unix_sockets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PostgresSetupError, match="longer than 107 bytes"):
        LocalPostgres(tmp_path / ("x" * 100), 1)._check_port_free()


def test_the_dsn_is_loopback_with_the_project_s_superuser(tmp_path: Path) -> None:
    server = LocalPostgres(tmp_path, 15432)
    assert server.dsn() == "postgresql://switchboard@127.0.0.1:15432/switchboard"
    assert not server.is_running()


def test_root_keeps_the_server_out_of_folders_its_account_cannot_enter(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:  # /tmp lets everyone in; pytest's tmp_path may not
        Path(scratch).chmod(0o711)
        locked = Path(scratch) / "home"
        locked.mkdir(mode=0o700)
        wanted = locked / "checkout" / "var" / "postgres" / "test"
        nobody = 65534
        assert unreachable_folder(wanted, nobody) == locked
        monkeypatch.setattr(os, "geteuid", lambda: 0)
        monkeypatch.setattr(pwd, "getpwnam", lambda name: SimpleNamespace(pw_uid=nobody))
        home = server_home(wanted)
        assert home.parent == Path("/var/tmp/switchboard-postgres")
        assert home.name.startswith("test-")
        assert server_home(wanted) == home  # the same checkout finds its server again
        locked.chmod(0o711)
        assert server_home(wanted) == wanted
