"""Per-tenant signing secrets of status callbacks, from the environment or a secrets directory (never the log)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connectors._privacy import Secret

__all__ = ["ENV_PREFIX", "CallbackSecrets", "secret_env_var"]

log = logging.getLogger(__name__)

ENV_PREFIX = "SWITCHBOARD_CALLBACK_SECRET_"
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def secret_env_var(tenant_id: str) -> str:
    """SWITCHBOARD_CALLBACK_SECRET_ + the tenant id in upper case, every other character as '_'."""
    return ENV_PREFIX + _NOT_ALNUM.sub("_", tenant_id.upper())


@dataclass(frozen=True)
class CallbackSecrets:
    """Finds a tenant's signing secret: the environment variable first, then `<secrets_dir>/callbacks/<tenant_id>`.

    The Tenant aggregate keeps only hashes, so the plain secret lives with the deployment. Both sources are read on
    every lookup, so a rotated secret is used from the next event on without a restart.
    """

    secrets_dir: Path | None = None
    environ: Mapping[str, str] | None = field(default=None, repr=False)

    def lookup(self, tenant_id: str) -> Secret | None:
        """The tenant's secret, or None when neither source holds a non-blank one."""
        return self._from_environment(tenant_id) or self._from_file(tenant_id)

    def _from_environment(self, tenant_id: str) -> Secret | None:
        env = os.environ if self.environ is None else self.environ
        value = env.get(secret_env_var(tenant_id), "").strip()
        return Secret(value) if value else None

    def _from_file(self, tenant_id: str) -> Secret | None:
        if self.secrets_dir is None or not _plain_file_name(tenant_id):
            return None
        path = self.secrets_dir / "callbacks" / tenant_id
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            log.warning("callback secret file %s cannot be read: %s", path, type(error).__name__)
            return None
        return Secret(value) if value else None


def _plain_file_name(tenant_id: str) -> bool:
    """Only a single ordinary path component: a tenant id must never reach a file outside the directory."""
    return bool(tenant_id) and tenant_id not in (".", "..") and not any(c in tenant_id for c in "/\\\0")
