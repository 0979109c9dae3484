"""A sender's effective limits: its own rate, and its even share of its tenant's and provider's quotas."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.pipeline._drivers import limits_for
from switchboard.config import load
from tests.unit.config.base import broken

QUOTAS = broken("[rate_limits.tenants.acme]\nper_second = 100\n",
                "[rate_limits.tenants.acme]\nper_second = 90\ndaily = 31\n\n"
                "[rate_limits.providers.meta]\nper_second = 1000\ndaily = 9\n")


def test_each_sender_holds_the_smaller_share_of_the_quotas_it_is_under(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(QUOTAS)
    config = load(path)
    whatsapp, sms = limits_for(config, "whatsapp", "wa-main"), limits_for(config, "sms", "sms-main")
    assert whatsapp is not None
    assert sms is not None
    assert whatsapp.per_second == pytest.approx(30)  # the tenant's 90 over its 3 senders
    assert whatsapp.daily == 4  # meta's 9 over its 2 senders, rounded down, under the tenant's 31 // 3
    assert sms.daily == 10  # only the tenant's quota applies to the gateway
    assert limits_for(config, "whatsapp", "nobody") is None


def test_a_sender_under_no_daily_quota_has_none(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(broken("[rate_limits.tenants.acme]\nper_second = 100\n", ""))
    limits = limits_for(load(path), "whatsapp", "wa-2")
    assert limits is not None
    assert limits.daily is None
