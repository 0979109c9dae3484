"""The Contact aggregate: consent per channel and category, preferences, quiet hours and the 24-hour window."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from aggregates import (
    Channel,
    ConsentCategory,
    Contact,
    DomainError,
    FrequencyCap,
    MessageCategory,
    Preferences,
    QuietHours,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WA, SMS = Channel.WHATSAPP, Channel.SMS
MARKETING, UTILITY = ConsentCategory.MARKETING, ConsentCategory.UTILITY
OSLO_NIGHT = QuietHours(22 * 60, 7 * 60, "Europe/Oslo")


def _contact() -> Contact:
    return Contact.register(tenant_id="t1", external_ref="crm-7", addresses={WA: "4790000000", SMS: "+4790000000"})


def test_registering_the_same_contact_twice_gives_the_same_id() -> None:
    assert _contact().id == _contact().id
    with pytest.raises(DomainError, match="at least one non-empty address"):
        Contact.register(tenant_id="t1", external_ref="crm-8", addresses={})


def test_consent_is_per_channel_and_category_and_absent_by_default() -> None:
    contact = _contact()
    assert not contact.has_consent(WA, MARKETING)
    assert contact.grant_consent(WA, MARKETING, "web_form", evidence="form-991")
    assert contact.has_consent(WA, MARKETING)
    assert not contact.has_consent(SMS, MARKETING)
    assert not contact.has_consent(WA, UTILITY)


def test_repeated_consent_decisions_are_no_ops() -> None:
    contact = _contact()
    assert not contact.revoke_consent(WA, MARKETING, "inbound_stop")  # nothing to revoke
    contact.grant_consent(WA, MARKETING, "web_form")
    assert not contact.grant_consent(WA, MARKETING, "web_form")
    assert contact.revoke_consent(WA, MARKETING, "inbound_stop")
    assert not contact.has_consent(WA, MARKETING)
    assert contact.consents[(WA, MARKETING)].source == "inbound_stop"
    assert len(contact.collect_events()) == 3


def test_preferences_are_replaced_whole_and_checked() -> None:
    contact = _contact()
    prefs = Preferences("pt-BR", WA, OSLO_NIGHT, (FrequencyCap(MessageCategory.MARKETING, 2, 7 * 86400),))
    assert contact.set_preferences(prefs)
    assert contact.preferences.language == "pt_BR"
    assert not contact.set_preferences(replace(prefs, language="pt_BR"))  # same after normalising
    assert contact.set_preferences(replace(contact.preferences, quiet_hours=None))
    assert contact.preferences.frequency_caps == prefs.frequency_caps


@pytest.mark.parametrize(
    ("prefs", "error"),
    [
        (Preferences(quiet_hours=QuietHours(60, 60, "Europe/Oslo")), "same minute"),
        (Preferences(quiet_hours=QuietHours(60, 1440, "Europe/Oslo")), "within the day"),
        (Preferences(quiet_hours=QuietHours(60, 120, "Mars/Olympus_Mons")), "not an IANA time zone"),
        (Preferences(language="english"), "not a locale"),
        (Preferences(frequency_caps=(FrequencyCap(MessageCategory.MARKETING, 0, 60),)), "max_messages"),
        (Preferences(frequency_caps=(FrequencyCap(MessageCategory.UTILITY, 1, 60),) * 2), "one frequency cap"),
    ],
)
def test_bad_preferences_are_refused(prefs: Preferences, error: str) -> None:
    with pytest.raises(DomainError, match=error):
        _contact().set_preferences(prefs)


def test_quiet_hours_wrap_midnight_in_the_contacts_time_zone() -> None:
    contact = _contact()
    contact.set_preferences(Preferences(quiet_hours=OSLO_NIGHT))
    assert contact.in_quiet_hours(datetime(2026, 1, 10, 21, 30, tzinfo=UTC))  # 22:30 in Oslo (UTC+1)
    assert contact.in_quiet_hours(datetime(2026, 1, 10, 5, 59, tzinfo=UTC))  # 06:59 in Oslo
    assert not contact.in_quiet_hours(datetime(2026, 1, 10, 6, 0, tzinfo=UTC))  # 07:00 in Oslo
    assert not contact.in_quiet_hours(datetime(2026, 1, 10, 20, 59, tzinfo=UTC))


def test_quiet_hours_end_at_local_wall_time_across_a_dst_change_and_not_before_they_begin() -> None:
    # Oslo moves to summer time at 02:00 on 29 March 2026: the night is an hour shorter in UTC.
    end = OSLO_NIGHT.ends_after(datetime(2026, 3, 28, 22, 0, tzinfo=UTC))  # 23:00 in Oslo, UTC+1
    assert end == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)  # 07:00 in Oslo, UTC+2
    assert OSLO_NIGHT.ends_after(datetime(2026, 3, 29, 12, 0, tzinfo=UTC)) == datetime(2026, 3, 29, 12, 0, tzinfo=UTC)


def test_the_customer_service_window_is_24_hours_after_the_last_inbound_message() -> None:
    contact = _contact()
    assert not contact.window_open(T0)
    assert contact.record_inbound(WA, "wamid.in.1", "4790000000", T0, "Where is my order?")
    assert contact.window_open(T0 + timedelta(hours=23, minutes=59))
    assert not contact.window_open(T0 + timedelta(hours=24))
    assert not contact.window_open(T0, SMS)
    assert contact.window_closes_at() == T0 + timedelta(hours=24)


def test_an_older_inbound_message_does_not_shrink_the_window_and_redeliveries_are_ignored() -> None:
    contact = _contact()
    contact.record_inbound(WA, "wamid.in.2", "4790000000", T0)
    assert contact.record_inbound(WA, "wamid.in.1", "4790000000", T0 - timedelta(hours=3))
    assert contact.last_inbound_at[WA] == T0
    assert not contact.record_inbound(WA, "wamid.in.2", "4790000000", T0)
    assert len(contact.collect_events()) == 3
