"""Driver discovery through the `switchboard.channels` entry points: built-in, fourth-party, and broken plugins."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import ChannelDriver, DriverLoadError
from connectors.registry import ENTRY_POINT_GROUP, get_driver, load_drivers
from connectors.whatsapp import WhatsAppDriver
from tests.unit.connectors.plugins import install_echo_as_dist_info, pip_install_echo, write_dist_info

TEST_GROUP = "switchboard.channels.tests"  # broken plugins go here, never into the real group


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh directory on sys.path; the echo module is forgotten afterwards so tests stay independent."""
    directory = tmp_path / "site"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    sys.modules.pop("sb_echo_driver", None)


def test_whatsapp_is_registered_by_this_package() -> None:
    assert load_drivers()["whatsapp"] is WhatsAppDriver
    assert get_driver("whatsapp") is WhatsAppDriver


def test_a_fourth_party_driver_is_discovered_from_its_dist_info(site: Path) -> None:
    assert "echo" not in load_drivers()
    install_echo_as_dist_info(site)
    drivers = load_drivers()
    assert set(drivers) >= {"whatsapp", "echo"}
    echo = drivers["echo"]
    assert issubclass(echo, ChannelDriver)
    assert echo.channel == "echo"
    assert echo.__module__ == "sb_echo_driver"


def test_a_fourth_party_driver_is_discovered_after_pip_install(site: Path, tmp_path: Path) -> None:
    how = pip_install_echo(site, tmp_path)
    assert (site / "sb_echo_driver" / "__init__.py").exists(), how
    assert load_drivers()["echo"].channel == "echo"


def test_unknown_channel_names_the_installed_ones() -> None:
    with pytest.raises(DriverLoadError, match=r"no driver for channel 'fax' \(installed: .*whatsapp"):
        get_driver("fax")


@pytest.mark.parametrize(("reference", "complaint"), [
    ("no_such_module_xyz:Driver", "cannot load channel driver 'echo' from broken 1.0: No module named"),
    ("json:dumps", "which is not a ChannelDriver class"),
    ("connectors:ChannelDriver", "which is still abstract"),
    ("connectors.whatsapp:WhatsAppDriver", "registers WhatsAppDriver as 'echo', but its channel is 'whatsapp'"),
])
def test_broken_plugins_are_named(site: Path, reference: str, complaint: str) -> None:
    write_dist_info(site, "broken", "1.0", {TEST_GROUP: {"echo": reference}})
    with pytest.raises(DriverLoadError, match=complaint):
        load_drivers(TEST_GROUP)


def test_two_distributions_claiming_one_channel_conflict(site: Path) -> None:
    write_dist_info(site, "first", "1.0", {TEST_GROUP: {"whatsapp": "connectors.whatsapp:WhatsAppDriver"}})
    write_dist_info(site, "second", "2.0", {TEST_GROUP: {"whatsapp": "tests.unit.connectors.test_registry:Shadow"}})
    with pytest.raises(DriverLoadError, match="claimed by both"):
        load_drivers(TEST_GROUP)


def test_the_real_group_is_untouched_by_the_test_group() -> None:
    assert ENTRY_POINT_GROUP == "switchboard.channels"
    assert load_drivers(TEST_GROUP) == {}


class Shadow(WhatsAppDriver):
    """A second class claiming the whatsapp channel."""


def test_every_built_in_channel_is_registered_by_this_package() -> None:
    from connectors.line import LineDriver
    from connectors.messenger import MessengerDriver
    from connectors.telegram import TelegramDriver
    from connectors.twilio_sms import TwilioSmsDriver

    built_in = {"whatsapp": WhatsAppDriver, "telegram": TelegramDriver, "line": LineDriver,
                "messenger": MessengerDriver, "sms": TwilioSmsDriver}
    drivers = load_drivers()
    assert {name: drivers[name] for name in built_in} == built_in
    assert all(get_driver(name) is driver for name, driver in built_in.items())
