"""Who may call the ingestion endpoint: client ids, their tenant and where their secret is read from."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from connectors._privacy import MissingSecret, Secret, SecretSource
from switchboard.errors import SwitchboardError

__all__ = ["CLIENTS_ENV", "ClientsError", "IngestClient", "IngestClients", "SecretReader", "load_clients"]

CLIENTS_ENV: Final = "SWITCHBOARD_INGEST_CLIENTS"  # the clients JSON itself, when no file is given


class ClientsError(SwitchboardError):
    """The clients file or variable is unreadable, malformed, or carries a secret value."""


class SecretReader(Protocol):
    """Anything that yields the current secret: an environment variable, a file."""

    def get(self) -> Secret: ...


@dataclass(frozen=True)
class _FileSecret:
    """A secret in a file (a mounted secret), read on every call so a rotation needs no restart."""

    path: Path

    def get(self) -> Secret:
        try:
            return Secret(self.path.read_text(encoding="utf-8").strip())
        except OSError as error:
            raise MissingSecret(f"secret file {self.path} cannot be read: {error.strerror}") from None


@dataclass(frozen=True)
class IngestClient:
    """One integrator: its id, the only tenant it may write for, and its signing secret's source."""

    client_id: str
    tenant: str
    secret: SecretReader = field(repr=False)
    # The scrypt hash of the client's API key (`switchboard api key`), for `switchboard api`; never the key.
    api_key_hash: str | None = field(default=None, repr=False)


class IngestClients:
    """The known clients by id."""

    def __init__(self, clients: Mapping[str, IngestClient]) -> None:
        self._clients = dict(clients)

    @classmethod
    def of(cls, clients: Mapping[str, tuple[str, str]], key_hashes: Mapping[str, str] | None = None) -> IngestClients:
        """Fixed secrets, for tests and examples: {client_id: (tenant, secret)}, API key hashes by client id."""
        hashes = key_hashes or {}
        return cls({cid: IngestClient(cid, tenant, SecretSource.of(secret, cid), hashes.get(cid))
                    for cid, (tenant, secret) in clients.items()})

    def get(self, client_id: str) -> IngestClient | None:
        """The client, or None when the id is unknown."""
        return self._clients.get(client_id)

    def __len__(self) -> int:
        return len(self._clients)

    def __iter__(self) -> Iterator[IngestClient]:
        return iter(self._clients.values())

    def check_secrets(self) -> None:
        """Reads every secret once, so a missing one stops the server at start rather than at a request."""
        for client in self._clients.values():
            try:
                client.secret.get()
            except MissingSecret as error:
                raise ClientsError(f"client {client.client_id!r}: {error}") from None


def load_clients(path: Path | None = None, environ: Mapping[str, str] | None = None) -> IngestClients:
    """From a JSON file, a secrets directory, or the SWITCHBOARD_INGEST_CLIENTS variable (in that order)."""
    env = os.environ if environ is None else environ
    if path is not None and path.is_dir():
        return _from_directory(path)
    if path is not None:
        return _from_json(_read(path), path.parent, str(path), env)
    if env.get(CLIENTS_ENV):
        return _from_json(env[CLIENTS_ENV], Path.cwd(), CLIENTS_ENV, env)
    raise ClientsError(f"no ingestion clients: give --clients-file or set {CLIENTS_ENV}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ClientsError(f"{path}: {error.strerror}") from None


def _from_json(text: str, base: Path, where: str, env: Mapping[str, str]) -> IngestClients:
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise ClientsError(f"{where}: not JSON ({error})") from None
    if not isinstance(entries, dict) or not entries:
        raise ClientsError(f"{where}: expected an object {{client_id: {{tenant, secret_env | secret_file}}}}")
    return IngestClients({cid: _entry(cid, entry, base, f"{where}: {cid}", env) for cid, entry in entries.items()})


def _entry(client_id: str, entry: Any, base: Path, where: str, env: Mapping[str, str]) -> IngestClient:
    if not isinstance(entry, dict) or not isinstance(entry.get("tenant"), str) or not entry["tenant"]:
        raise ClientsError(f"{where}: needs a non-empty \"tenant\"")
    if "secret" in entry:
        # Secret values never sit in a file that might be committed: only a reference to where they are.
        raise ClientsError(f"{where}: a secret value is not allowed here; use \"secret_env\" or \"secret_file\"")
    key_hash = entry.get("api_key_hash")
    if key_hash is not None and (not isinstance(key_hash, str) or not key_hash.startswith("scrypt$")):
        raise ClientsError(f"{where}: \"api_key_hash\" must be a scrypt hash (`switchboard api key` prints one)")
    if isinstance(entry.get("secret_env"), str):
        return IngestClient(client_id, entry["tenant"], SecretSource(entry["secret_env"], environ=env), key_hash)
    if isinstance(entry.get("secret_file"), str):
        return IngestClient(client_id, entry["tenant"], _FileSecret(base / entry["secret_file"]), key_hash)
    raise ClientsError(f"{where}: needs \"secret_env\" (a variable name) or \"secret_file\" (a path)")


def _from_directory(root: Path) -> IngestClients:
    """A mounted secrets directory: one folder per client id holding a `tenant` file and a `secret` file."""
    clients = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        tenant = _read(folder / "tenant").strip()
        if not tenant:
            raise ClientsError(f"{folder / 'tenant'} is empty")
        key_hash = (folder / "api_key_hash").read_text(encoding="utf-8").strip() \
            if (folder / "api_key_hash").is_file() else None
        clients[folder.name] = IngestClient(folder.name, tenant, _FileSecret(folder / "secret"), key_hash or None)
    if not clients:
        raise ClientsError(f"{root}: no client folders (each needs a `tenant` and a `secret` file)")
    return IngestClients(clients)
