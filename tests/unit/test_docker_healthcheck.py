"""docker/healthcheck.py, the image's `switchboard-healthcheck`: each check against a real local server, a real
process's open files, or a described consumer group, healthy and unhealthy."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_docker_compose import load_healthcheck

hc = load_healthcheck()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = int(self.path.strip("/") or 200)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(("status", "check", "healthy"), [
    (200, "http", True),
    (503, "http", False),  # /readyz while restoring or rebalancing
    (404, "http", False),
    (405, "answers", True),  # ingestion's POST-only route answering a GET
    (403, "answers", True),  # the receiver's handshake without a token
    (500, "answers", False),
    (503, "answers", False),
])
def test_http_checks(server: str, status: int, check: str, healthy: bool, capsys: pytest.CaptureFixture[str]) -> None:
    assert hc.main([check, f"{server}/{status}"]) == (0 if healthy else 1)
    said = capsys.readouterr()
    assert (f"HTTP {status}" in said.out) if healthy else (f"unhealthy: {server}/{status}: HTTP {status}" in said.err)


def test_nothing_listening_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    assert hc.main(["--timeout", "1", "answers", "http://127.0.0.1:9/"]) == 1
    assert "unhealthy: http://127.0.0.1:9/" in capsys.readouterr().err


def _described(*hosts: str) -> Any:
    async def describe(bootstrap: str, group: str, timeout: float) -> dict[str, object]:
        return {"state": "Stable", "members": [{"client_host": f"/{host}", "client_id": "aiokafka"} for host in hosts]}

    return describe


def test_a_member_of_its_group_is_healthy() -> None:
    said = hc.check_group("switchboard-normaliser", "kafka-1:9092", timeout=1, addresses=["172.18.0.7"],
                          describe=_described("172.18.0.9", "172.18.0.7"))
    assert "member from ['172.18.0.7']" in said


def test_a_container_outside_its_group_is_unhealthy() -> None:
    with pytest.raises(hc.Unhealthy, match=r"this container \['172.18.0.7'\] is not among its members"):
        hc.check_group("switchboard-normaliser", "kafka-1:9092", timeout=1, addresses=["172.18.0.7"],
                       describe=_described("172.18.0.9"))


def test_a_group_that_cannot_be_described_is_unhealthy() -> None:
    async def unreachable(bootstrap: str, group: str, timeout: float) -> dict[str, object]:
        raise ConnectionError("no broker")

    with pytest.raises(hc.Unhealthy, match="cannot describe it at kafka-1:9092: ConnectionError: no broker"):
        hc.check_group("switchboard-callbacks", "kafka-1:9092", timeout=1, addresses=["10.0.0.2"],
                       describe=unreachable)


def test_the_real_group_check_reports_an_unreachable_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert hc.main(["--timeout", "2", "group", "switchboard-normaliser", "--bootstrap", "127.0.0.1:9"]) == 1
    assert "unhealthy: group switchboard-normaliser: cannot describe it at 127.0.0.1:9" in capsys.readouterr().err


def test_own_addresses_of_this_host() -> None:
    assert hc.own_addresses("localhost") >= {"127.0.0.1"}
    assert hc.own_addresses("no-such-host.invalid") == set()


def test_an_open_store_is_healthy(tmp_path: Path) -> None:
    """RocksDB holds its LOCK file open while the store is open: read from this process's own /proc entry."""
    from rocksdict import Rdict

    store = Rdict(str(tmp_path / "followups"))
    try:
        files = hc.open_files(os.getpid())
        assert "store open" in hc.check_store(str(tmp_path), files)
        with pytest.raises(hc.Unhealthy, match="no store under"):
            hc.check_store(str(tmp_path / "elsewhere"), files)
    finally:
        store.close()
    with pytest.raises(hc.Unhealthy, match="no store under"):
        hc.check_store(str(tmp_path), hc.open_files(os.getpid()))


def test_a_directory_that_only_shares_a_prefix_is_not_the_store() -> None:
    with pytest.raises(hc.Unhealthy):
        hc.check_store("/var/lib/switchboard/state", ["/var/lib/switchboard/state-old/followups/LOCK"])
    assert hc.check_store("/var/lib/switchboard/state/", ["/var/lib/switchboard/state/followups/LOCK"])


def test_unlistable_process_files_are_unhealthy(tmp_path: Path) -> None:
    with pytest.raises(hc.Unhealthy, match="cannot list"):
        hc.open_files(1, proc=tmp_path)


def test_unknown_checks_are_usage_errors() -> None:
    with pytest.raises(SystemExit):
        hc.main(["members", "x"])
