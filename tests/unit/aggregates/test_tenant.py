"""The Tenant aggregate: API client secrets stored as scrypt hashes, tiers and callback URLs."""

from __future__ import annotations

import pytest

import aggregates._tenant as _tenant_module
from aggregates import CallbackKind, DomainError, RateLimitTier, Tenant, hash_secret, verify_secret


def _tenant() -> Tenant:
    return Tenant.register(slug="acme", name="Acme Ltd")


def test_the_tenant_id_is_derived_from_the_slug_and_owns_its_events() -> None:
    tenant = _tenant()
    assert tenant.id == _tenant().id
    assert tenant.tenant_id == str(tenant.id)
    with pytest.raises(DomainError, match="slug"):
        Tenant.register(slug="Acme!", name="Acme")


def test_api_client_secrets_are_kept_only_as_scrypt_hashes() -> None:
    tenant = _tenant()
    client_id, secret = tenant.add_api_client("backend")
    stored = tenant.api_clients[client_id].secret_hash
    assert stored.startswith("scrypt$16384$8$1$")
    assert secret not in stored
    assert tenant.verify_api_client(client_id, secret)
    assert not tenant.verify_api_client(client_id, secret + "x")
    assert not tenant.verify_api_client("sbc_unknown", secret)


def test_revoked_clients_cannot_authenticate_and_revoking_twice_is_a_no_op() -> None:
    tenant = _tenant()
    client_id, secret = tenant.add_api_client("backend", secret="s" * 32)
    assert tenant.revoke_api_client(client_id)
    assert not tenant.revoke_api_client(client_id)
    assert not tenant.verify_api_client(client_id, secret)
    with pytest.raises(DomainError, match="no API client"):
        tenant.revoke_api_client("sbc_nobody")
    with pytest.raises(DomainError, match="at least 24"):
        tenant.add_api_client("short", secret="hunter2")


def test_unknown_and_revoked_clients_still_cost_a_hash_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: response time must not reveal which client ids exist."""
    tenant = _tenant()
    client_id, secret = tenant.add_api_client("backend")
    tenant.revoke_api_client(client_id)
    checked: list[str] = []
    monkeypatch.setattr(_tenant_module, "verify_secret", lambda s, h: _record(checked, h))
    assert not tenant.verify_api_client("sbc_unknown", secret)
    assert not tenant.verify_api_client(client_id, secret)
    assert len(checked) == 2
    assert all(h.startswith("scrypt$") for h in checked)


@pytest.mark.parametrize(
    "encoded",
    ["", "bcrypt$x", "scrypt$16384$8$1$!!$!!", "scrypt$1099511627776$8$1$c2FsdA==$a2V5", "scrypt$3$8$1$c2FsdA==$a2V5"],
)
def test_malformed_or_oversized_hashes_never_verify(encoded: str) -> None:
    assert not verify_secret("anything", encoded)


def test_hashes_are_salted() -> None:
    assert hash_secret("same secret") != hash_secret("same secret")


def test_callback_urls_must_be_https_without_credentials() -> None:
    tenant = _tenant()
    assert tenant.set_callback_url(CallbackKind.MESSAGE_STATUS, "https://hooks.acme.example/status")
    assert not tenant.set_callback_url(CallbackKind.MESSAGE_STATUS, "https://hooks.acme.example/status")
    for bad in ("http://hooks.acme.example/", "https://user:pw@hooks.acme.example/", "https:///nohost"):
        with pytest.raises(DomainError, match="https"):
            tenant.set_callback_url(CallbackKind.INBOUND_MESSAGE, bad)
    assert tenant.remove_callback_url(CallbackKind.MESSAGE_STATUS)
    assert not tenant.remove_callback_url(CallbackKind.MESSAGE_STATUS)


def test_rate_limit_tier_changes_record_the_previous_tier() -> None:
    tenant = _tenant()
    assert tenant.rate_limit_tier is RateLimitTier.SANDBOX
    assert not tenant.change_rate_limit_tier(RateLimitTier.SANDBOX)
    assert tenant.change_rate_limit_tier(RateLimitTier.HIGH)
    event = tenant.collect_events()[-1]
    assert isinstance(event, Tenant.RateLimitTierChanged)
    assert (event.previous_tier, event.new_tier) == (RateLimitTier.SANDBOX, RateLimitTier.HIGH)


def _record(checked: list[str], hashed: str) -> bool:
    checked.append(hashed)
    return True
