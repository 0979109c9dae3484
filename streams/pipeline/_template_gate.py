"""Which templates the provider lets us send: the Template events folded, asked before each template send."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

from aggregates import Channel, DomainError, ReplayError, Template, fold, from_record, normalize_locale
from schemas import DecodedEvent

__all__ = ["TemplateGate"]

_log = logging.getLogger(__name__)


class TemplateGate:
    """The Template aggregates as of the events applied, and the one question the dispatcher asks of them.

    A template is refused only when we know better than to send it: the provider reviewed every version of the
    language and allows none (paused, disabled, rejected, or still pending). A template or language no event
    names is not ours to judge (declared in `pipeline.toml` only, or made in the provider's own tools): it goes,
    and the provider's answer decides, as it always did.
    """

    def __init__(self) -> None:
        self._templates: dict[UUID, Template] = {}
        self._announce = False  # reviews are logged as they come once the history is read (`caught_up`)

    def __len__(self) -> int:
        return len(self._templates)

    @classmethod
    def fold(cls, events: Iterable[DecodedEvent]) -> TemplateGate:
        """A gate built from template events in log order."""
        gate = cls()
        for event in events:
            gate.apply(event)
        return gate

    def apply(self, event: DecodedEvent) -> bool:
        """Applies one template event; False for a redelivery, another aggregate type's event, or a gap."""
        envelope = event.payload["envelope"]
        if envelope["aggregate_type"] != Template.AGGREGATE_TYPE:
            return False
        aggregate_id = UUID(envelope["aggregate_id"])
        known = self._templates.get(aggregate_id)
        before = known.version if known is not None else 0
        try:
            template = fold(Template, [from_record(event.event_type, event.payload)], start=known)
        except ReplayError as error:  # the log lost an event: keep what was known, the provider still decides
            _log.warning("template gate: %s", error)
            return False
        self._templates[aggregate_id] = template
        if self._announce and template.version > before and event.event_type == "TemplateApprovalStatusChanged":
            self._announce_review(template, event.payload["locale"])
        return template.version > before

    def caught_up(self) -> None:
        """The history is read: says which languages are refused now, then logs each review as it comes."""
        self._announce = True
        refused = self.refused()
        if refused:
            _log.warning("template gate: %d template(s) known; not sendable now (their messages fall back): %s",
                         len(self), ", ".join(refused))
        else:
            _log.info("template gate: %d template(s) known; every reviewed language sendable", len(self))

    def forget(self) -> None:
        """Forgets every template: a gate no longer followed could go on refusing what the provider allows again."""
        self._templates.clear()
        self._announce = False

    def refused(self) -> list[str]:
        """Every '<name> (<locale>)' the gate refuses now."""
        return [f"{template.name} ({locale})" for template in self._templates.values()
                for locale, versions in sorted(template.versions.items())
                if versions and template.sendable_version(locale) is None]

    def refusal(self, tenant: str, channel: Channel, name: str, locale: str) -> str | None:
        """Why this template must not be sent in this language now, or None when it may (or is not known)."""
        template = self._templates.get(Template.create_id(tenant, channel, name)) if self._templates else None
        if template is None:
            return None
        try:
            versions = template.versions.get(normalize_locale(locale), ())
        except DomainError:  # not a language the aggregate could hold
            return None
        if not versions or template.sendable_version(locale) is not None:
            return None
        newest = versions[-1]
        why = f" ({newest.status_reason})" if newest.status_reason else ""
        return (f"template {name!r} ({newest.locale}) is {newest.status.value}{why} at the provider: none of its "
                f"{len(versions)} version(s) may be sent")

    @staticmethod
    def _announce_review(template: Template, locale: str) -> None:
        if template.sendable_version(locale) is None:
            _log.warning("template gate: %s (%s) may not be sent now: its messages fall back without a request",
                         template.name, locale)
        else:
            _log.info("template gate: %s (%s) may be sent", template.name, locale)
