"""Ingestion clients (file, secrets folder, environment), the signature vector and the `switchboard ingest` checks."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from connectors.ingest import CLIENTS_ENV, ClientsError, ingest_signature, load_clients
from switchboard.cli import main


def test_the_signature_is_hmac_sha256_over_version_time_method_path_and_body() -> None:
    body = b'{"type":"OrderPlaced"}'
    independent = hmac.new(b"s3cret", b"v1:1700000000:POST:/v1/events:" + body, hashlib.sha256).hexdigest()
    assert ingest_signature("s3cret", 1700000000, "post", "/v1/events", body) == f"v1={independent}"
    assert independent == "3bad4c678bd614b82a038c5e45c0f63dfe839b4af83dd00d8c1ef63ea7c9b68f"  # openssl dgst -hmac


def write(path: Path, content: object) -> Path:
    path.write_text(json.dumps(content) if not isinstance(content, str) else content, encoding="utf-8")
    return path


def test_a_clients_file_names_the_variable_or_file_holding_each_secret(tmp_path: Path) -> None:
    write(tmp_path / "erp-2.secret", "from-a-file\n")
    path = write(tmp_path / "clients.json", {"erp-1": {"tenant": "acme", "secret_env": "ERP1_SECRET"},
                                             "erp-2": {"tenant": "globex", "secret_file": "erp-2.secret"}})
    clients = load_clients(path, environ={"ERP1_SECRET": "from-the-env"})
    first, second = clients.get("erp-1"), clients.get("erp-2")
    assert first is not None and second is not None  # noqa: PT018 - narrowing for the lines below
    assert (first.tenant, first.secret.get().reveal()) == ("acme", "from-the-env")
    assert (second.tenant, second.secret.get().reveal()) == ("globex", "from-a-file")
    assert clients.get("erp-3") is None
    assert "from-" not in repr(first) + repr(second)


def test_a_rotated_secret_file_is_read_without_a_restart(tmp_path: Path) -> None:
    secret = write(tmp_path / "s", "one")
    clients = load_clients(write(tmp_path / "c.json", {"erp": {"tenant": "acme", "secret_file": str(secret)}}))
    write(secret, "two")
    client = clients.get("erp")
    assert client is not None
    assert client.secret.get().reveal() == "two"


def test_a_secrets_folder_has_one_folder_per_client(tmp_path: Path) -> None:
    (tmp_path / "erp-1").mkdir()
    write(tmp_path / "erp-1" / "tenant", "acme\n")
    write(tmp_path / "erp-1" / "secret", "folder-secret\n")
    client = load_clients(tmp_path).get("erp-1")
    assert client is not None
    assert (client.tenant, client.secret.get().reveal()) == ("acme", "folder-secret")


def test_the_environment_may_carry_the_clients_json() -> None:
    environ = {CLIENTS_ENV: json.dumps({"erp": {"tenant": "acme", "secret_env": "S"}}), "S": "x"}
    client = load_clients(None, environ).get("erp")
    assert client is not None
    assert client.secret.get().reveal() == "x"


@pytest.mark.parametrize(("content", "message"), [
    ({"erp": {"tenant": "acme", "secret": "inline"}}, "a secret value is not allowed"),
    ({"erp": {"secret_env": "S"}}, 'needs a non-empty "tenant"'),
    ({"erp": {"tenant": "acme"}}, 'needs "secret_env"'),
    ({}, "expected an object"),
    ("{", "not JSON"),
])
def test_a_bad_clients_file_is_refused_naming_the_problem(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(ClientsError, match=message):
        load_clients(write(tmp_path / "clients.json", content))


def test_no_clients_at_all_is_an_error() -> None:
    with pytest.raises(ClientsError, match="--clients-file"):
        load_clients(None, environ={})


def test_a_missing_secret_is_found_at_start(tmp_path: Path) -> None:
    clients = load_clients(write(tmp_path / "c.json", {"erp": {"tenant": "acme", "secret_env": "NOT_SET_ANYWHERE"}}),
                           environ={})
    with pytest.raises(ClientsError, match="client 'erp': set NOT_SET_ANYWHERE"):
        clients.check_secrets()


def test_ingest_command_refuses_a_missing_secret_before_touching_kafka(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    monkeypatch.delenv("NOT_SET_ANYWHERE_FILE", raising=False)
    path = write(tmp_path / "c.json", {"erp": {"tenant": "acme", "secret_env": "NOT_SET_ANYWHERE"}})
    assert main(["ingest", "--bootstrap", "127.0.0.1:1", "--clients-file", str(path)]) == 2
    assert "client 'erp': set NOT_SET_ANYWHERE" in capsys.readouterr().err


def test_ingest_command_needs_a_bootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("ERP_SECRET", "x")
    path = write(tmp_path / "c.json", {"erp": {"tenant": "acme", "secret_env": "ERP_SECRET"}})
    assert main(["ingest", "--clients-file", str(path)]) == 2
    assert "give --bootstrap or set KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err


def test_a_client_may_carry_its_api_key_hash_never_the_key(tmp_path: Path) -> None:
    from aggregates._secrets import hash_secret

    hashed = hash_secret("sbk_the-key-of-enough-length")
    path = write(tmp_path / "clients.json", {"erp-1": {"tenant": "acme", "secret_env": "X", "api_key_hash": hashed},
                                             "erp-2": {"tenant": "acme", "secret_env": "Y"}})
    clients = load_clients(path, environ={})
    assert [(c.client_id, c.api_key_hash) for c in clients] == [("erp-1", hashed), ("erp-2", None)]
    (tmp_path / "folder" / "erp-3").mkdir(parents=True)
    write(tmp_path / "folder" / "erp-3" / "tenant", "acme")
    write(tmp_path / "folder" / "erp-3" / "api_key_hash", hashed + "\n")
    assert load_clients(tmp_path / "folder").get("erp-3").api_key_hash == hashed  # type: ignore[union-attr]
    write(path, {"erp-1": {"tenant": "acme", "secret_env": "X", "api_key_hash": "sbk_plain-key"}})
    with pytest.raises(ClientsError, match="api_key_hash"):
        load_clients(path, environ={})
