"""The Template aggregate: content versions per locale, their provider approval, and the template's category."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from uuid import UUID

from aggregates._base import DomainError, SwitchboardAggregate, derived_id
from aggregates._values import (
    ApprovalStatus,
    Channel,
    ParameterFormat,
    TemplateCategory,
    TemplateQuality,
    normalize_locale,
)

__all__ = ["SENDABLE", "Template", "TemplateVersion", "template_parameters"]

# Statuses in which the provider lets the version be sent.
SENDABLE = frozenset({ApprovalStatus.APPROVED, ApprovalStatus.REINSTATED})

_NAME = re.compile(r"[a-z0-9_]{1,512}")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
_NAMED_PARAMETER = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class TemplateVersion:
    """One published version of one locale's content, with the parameters it expects and its review status."""

    locale: str
    version: int
    body: str
    header: str | None
    footer: str | None
    parameters: tuple[str, ...]
    status: ApprovalStatus = ApprovalStatus.PENDING
    status_reason: str | None = None

    @property
    def sendable(self) -> bool:
        """Whether the provider currently allows sending this version."""
        return self.status in SENDABLE


def template_parameters(body: str, parameter_format: ParameterFormat) -> tuple[str, ...]:
    """The parameters a body expects: "1".."n" (positional, no gaps) or names in order of first use."""
    names = list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(body)))
    if parameter_format is ParameterFormat.POSITIONAL:
        if not all(n.isdigit() for n in names):
            raise DomainError(f"positional templates use {{{{1}}}}, {{{{2}}}}...; found {names}")
        numbers = sorted(int(n) for n in names)
        if numbers != list(range(1, len(numbers) + 1)):
            raise DomainError(f"positional parameters must be 1..n without gaps; found {numbers}")
        return tuple(str(n) for n in numbers)
    bad = [n for n in names if not _NAMED_PARAMETER.fullmatch(n)]
    if bad:
        raise DomainError(f"named parameters must be lowercase identifiers; found {bad}")
    return tuple(names)


class Template(SwitchboardAggregate):
    """A message template: per locale an append-only list of versions, each reviewed by the provider."""

    AGGREGATE_TYPE = "Template"

    class Registered(SwitchboardAggregate.Created):
        """The template was registered."""

        tenant_id: str
        name: str
        category: TemplateCategory
        parameter_format: ParameterFormat
        channel: Channel

    class VersionPublished(SwitchboardAggregate.Event):
        """A new version of a locale's content."""

        locale: str
        version: int
        body: str
        header: str | None
        footer: str | None
        parameters: tuple[str, ...]

        def apply(self, aggregate: Template) -> None:
            """Append the version to its locale."""
            new = TemplateVersion(self.locale, self.version, self.body, self.header, self.footer, self.parameters)
            existing = aggregate.versions.get(self.locale, ())
            aggregate.versions = {**aggregate.versions, self.locale: (*existing, new)}

    class ApprovalStatusChanged(SwitchboardAggregate.Event):
        """The provider's review status of a version changed."""

        locale: str
        version: int
        status: ApprovalStatus
        reason: str | None

        def apply(self, aggregate: Template) -> None:
            """Replace that version with its new status."""
            versions = list(aggregate.versions[self.locale])
            old = versions[self.version - 1]
            versions[self.version - 1] = replace(old, status=self.status, status_reason=self.reason)
            aggregate.versions = {**aggregate.versions, self.locale: tuple(versions)}

    class CategoryChanged(SwitchboardAggregate.Event):
        """The provider (re)categorised the template."""

        previous_category: TemplateCategory
        new_category: TemplateCategory
        locale: str | None

        def apply(self, aggregate: Template) -> None:
            """Take the new category."""
            aggregate.category = self.new_category

    class QualityChanged(SwitchboardAggregate.Event):
        """The provider rated the template's quality anew (for one translation, or the template as a whole)."""

        new_quality: TemplateQuality
        previous_quality: TemplateQuality | None
        locale: str | None

        def apply(self, aggregate: Template) -> None:
            """Keep the rating of that translation ("" for the template as a whole)."""
            aggregate.quality = {**aggregate.quality, self.locale or "": self.new_quality}

    def __init__(
        self,
        tenant_id: str,
        name: str,
        category: TemplateCategory,
        parameter_format: ParameterFormat,
        channel: Channel,
    ) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.category = category
        self.parameter_format = parameter_format
        self.channel = channel
        # Replaced, never mutated in place: snapshots share them with live aggregates.
        self.versions: Mapping[str, tuple[TemplateVersion, ...]] = {}
        self.quality: Mapping[str, TemplateQuality] = {}  # locale ("" for the whole template) -> rating

    @staticmethod
    def create_id(tenant_id: str, channel: Channel, name: str) -> UUID:
        """One template per tenant, channel and name."""
        return derived_id("template", tenant_id, channel.value, name)

    @classmethod
    def register(
        cls,
        *,
        tenant_id: str,
        name: str,
        category: TemplateCategory,
        parameter_format: ParameterFormat = ParameterFormat.POSITIONAL,
        channel: Channel = Channel.WHATSAPP,
    ) -> Template:
        """A new template; names follow the provider's rule: lowercase letters, digits and underscores."""
        if not _NAME.fullmatch(name):
            raise DomainError(f"template name {name!r} must be 1-512 lowercase letters, digits or underscores")
        return cls._create(
            cls.Registered,
            tenant_id=tenant_id,
            name=name,
            category=category,
            parameter_format=parameter_format,
            channel=channel,
        )

    def publish_version(
        self, locale: str, body: str, *, header: str | None = None, footer: str | None = None
    ) -> TemplateVersion:
        """Adds the next version for a locale, pending review; placeholders are allowed in the body only."""
        locale = normalize_locale(locale)
        if not body:
            raise DomainError("a template version needs a body")
        for part, text in (("header", header), ("footer", footer)):
            if text and _PLACEHOLDER.search(text):
                raise DomainError(f"{part} placeholders are not supported; put parameters in the body")
        self.trigger_event(
            self.VersionPublished,
            locale=locale,
            version=len(self.versions.get(locale, ())) + 1,
            body=body,
            header=header,
            footer=footer,
            parameters=template_parameters(body, self.parameter_format),
        )
        return self.versions[locale][-1]

    def set_approval_status(
        self, locale: str, version: int, status: ApprovalStatus, reason: str | None = None
    ) -> bool:
        """Records the provider's review status of a version; False (no event) if it is unchanged."""
        current = self.template_version(locale, version)
        if (current.status, current.status_reason) == (status, reason):
            return False
        self.trigger_event(
            self.ApprovalStatusChanged, locale=current.locale, version=version, status=status, reason=reason
        )
        return True

    def change_category(self, new_category: TemplateCategory, locale: str | None = None) -> bool:
        """Records a (re)categorisation by the provider; False (no event) if the category is unchanged."""
        if new_category == self.category:
            return False
        self.trigger_event(
            self.CategoryChanged,
            previous_category=self.category,
            new_category=new_category,
            locale=None if locale is None else normalize_locale(locale),
        )
        return True

    def rate_quality(self, new_quality: TemplateQuality, locale: str | None = None,
                     previous_quality: TemplateQuality | None = None) -> bool:
        """Records the provider's quality rating; False (no event) if it is the rating already recorded."""
        where = None if locale is None else normalize_locale(locale)
        if self.quality.get(where or "") == new_quality:
            return False
        self.trigger_event(self.QualityChanged, new_quality=new_quality, previous_quality=previous_quality,
                           locale=where)
        return True

    def template_version(self, locale: str, version: int) -> TemplateVersion:
        """One version of a locale; raises DomainError if it was never published."""
        versions = self.versions.get(normalize_locale(locale), ())
        if not 1 <= version <= len(versions):
            raise DomainError(f"template {self.name} has no version {version} for {locale}")
        return versions[version - 1]

    def sendable_version(self, locale: str) -> TemplateVersion | None:
        """The newest version of a locale that the provider lets us send, if any."""
        versions = self.versions.get(normalize_locale(locale), ())
        return next((v for v in reversed(versions) if v.sendable), None)

    def expected_parameters(self, locale: str, version: int) -> tuple[str, ...]:
        """The parameters a version expects, in order."""
        return self.template_version(locale, version).parameters
