"""The one pipeline-declaration builder: every benchmark's and the fault suite's variant loads as a valid declaration
and says what that bench needs (a tier or a rate, an SMS fallback, a retry policy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._declaration import SENDER, Declaration, Retry
from bench.e2e_bench import TIER
from bench.e2e_bench import declaration as e2e_declaration
from bench.faults._stack import declaration as faults_declaration
from bench.pipeline_bench import SENDER_RATE
from bench.pipeline_bench import declaration as pipeline_declaration
from switchboard._config_model import ChannelConfig, ConfigError, PipelineConfig, Sender
from switchboard._config_parse import load_bytes


def _load(text: str) -> PipelineConfig:
    return load_bytes(Path("bench-pipeline.toml"), text.encode())


def _channel(config: PipelineConfig, channel: str) -> ChannelConfig:
    found = config.channel(channel)
    assert found is not None, f"no channel {channel}"
    return found


def _sender(config: PipelineConfig, channel: str) -> Sender:
    return _channel(config, channel).senders[0]


def test_e2e_sends_through_the_simulator_at_the_upgraded_tier() -> None:
    config = _load(e2e_declaration(4, "http://127.0.0.1:9/"))
    whatsapp = _channel(config, "whatsapp")
    assert (whatsapp.driver, dict(whatsapp.settings)) == ("whatsapp", {"base_url": "http://127.0.0.1:9/"})
    sender = _sender(config, "whatsapp")
    assert (sender.address, sender.tier, sender.per_second) == (SENDER, TIER, 1000.0)
    assert config.streams.partitions == 4
    assert [t.id for t in config.tenants] == ["bench"]
    assert config.channel("sms") is None


def test_pipeline_bench_uses_the_in_process_channel_at_a_rate_never_reached() -> None:
    config = _load(pipeline_declaration(6))
    assert _channel(config, "whatsapp").driver == "inprocess"
    sender = _sender(config, "whatsapp")
    assert (sender.tier, sender.per_second, sender.burst) == ("standard", SENDER_RATE, SENDER_RATE)
    assert config.routes[0].fallback == ()


def test_the_fault_suite_falls_back_to_sms_under_its_retry_policy() -> None:
    config = _load(faults_declaration(6, 3, "whatsapp", {"base_url": "http://127.0.0.1:9", "timeout": "3"}, 30, 5))
    assert (config.streams.partitions, config.streams.replication) == (6, 3)
    assert [t.id for t in config.tenants] == ["acme"]
    sender = _sender(config, "whatsapp")
    assert (sender.per_second, sender.burst) == (30, 5)
    route = config.routes[0]
    assert (route.fallback, route.retry) == (("sms",), "faults")
    faults = config.retry_policy("faults")
    assert faults is not None
    assert faults.max_attempts == 4
    assert config.dispatch.reconcile_seconds == 3
    assert _sender(config, "sms").per_second == 5000


def test_the_fault_suite_default_is_the_in_process_driver_with_burst_equal_to_rate() -> None:
    config = _load(faults_declaration(6, -1, "inprocess", {}, 5000, None))
    whatsapp = _channel(config, "whatsapp")
    assert (whatsapp.driver, whatsapp.settings) == ("inprocess", ())
    assert _sender(config, "whatsapp").burst == 5000


def test_settings_are_quoted_as_toml_strings() -> None:
    text = Declaration(1, driver="whatsapp", settings={"base_url": 'http://h/"quoted"\\path'}, tier="standard").text()
    assert dict(_channel(_load(text), "whatsapp").settings) == {"base_url": 'http://h/"quoted"\\path'}


def test_a_route_naming_an_undeclared_retry_policy_is_refused() -> None:
    """The builder does not hide the loader's checks: a variant that names a policy it did not declare fails."""
    with pytest.raises(ConfigError, match="retry"):
        _load(Declaration(1, per_second=10, route_retry="faults").text())


def test_retry_policies_come_out_as_declared() -> None:
    retry = Retry(max_attempts=5, base_seconds=0.5, factor=3.0, cap_seconds=7.5)
    config = _load(Declaration(1, per_second=10, retries={"slow": retry}, route_retry="slow").text())
    policy = config.retry_policy("slow")
    assert policy is not None
    assert (policy.max_attempts, policy.base_seconds, policy.factor, policy.cap_seconds) == (5, 0.5, 3.0, 7.5)
