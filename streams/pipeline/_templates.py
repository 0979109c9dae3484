"""The single writer of Template events: provider reviews, recategorisations, ratings and edits, and versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aggregates import (
    ApprovalStatus,
    Channel,
    DomainError,
    ParameterFormat,
    Template,
    TemplateCategory,
    TemplateQuality,
    normalize_locale,
)
from schemas import EVENT_TOPICS
from streams.pipeline._commands import COMMAND_VERSION, CommandError, parse_record

__all__ = [
    "TEMPLATE_COMMANDS_TOPIC",
    "TEMPLATE_COMMAND_KINDS",
    "TemplateEffects",
    "TemplateRow",
    "TemplateTopics",
    "TemplateWriter",
    "check_template_command",
]

TEMPLATE_COMMANDS_TOPIC: Final = "sb.commands.template"
# What reaches the template writer (sb.commands.template, key: the Template aggregate id):
#   template_update   -- the provider reviewed (update "status"), recategorised (update "category"), rated the
#                        quality of (update "quality") or has an edit of (update "components") one language of a
#                        template; normalised from its webhook
#   template_version  -- new content for one locale (the template admin's command; registers the template first)
TEMPLATE_COMMAND_KINDS: Final = frozenset({"template_update", "template_version"})
_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "template_update": ("command_id", "aggregate_id", "tenant", "channel", "name", "update"),
    "template_version": ("command_id", "aggregate_id", "tenant", "channel", "name", "category", "locale", "body"),
}
_UPDATES: Final = frozenset({"status", "category", "quality", "components"})


@dataclass(frozen=True)
class TemplateTopics:
    """The template writer's topics under one prefix."""

    prefix: str = ""

    @property
    def commands(self) -> str:
        return self.prefix + TEMPLATE_COMMANDS_TOPIC

    @property
    def events(self) -> str:
        return self.prefix + EVENT_TOPICS["template"].name


@dataclass
class TemplateRow:
    """Everything the writer keeps for one template: one table row, rewritten per command."""

    template: Template | None = None
    # "status:<locale>", "category", "quality:<locale>" or "components:<locale>" -> provider time of the newest update
    # applied: an older one is stale
    latest: dict[str, datetime] = field(default_factory=dict)
    applied_offset: int = -1  # source offset last applied: a record at or below it is a redelivery
    applied_cluster: str = ""  # the cluster of that offset (_guard.py)


@dataclass
class TemplateEffects:
    """What one command produced: the template's new events (in order) and dead letters."""

    template: Template | None = None
    events: list[Any] = field(default_factory=list)  # the template's new aggregate events
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


class _Refused(Exception):
    """The command cannot be applied; it becomes a dead letter with this reason and changes nothing."""


def check_template_command(value: Any) -> dict[str, Any]:
    """The command (a dict, or a record's raw JSON bytes) as a dict, or CommandError naming what is wrong with it."""
    value = parse_record(value)
    if not isinstance(value, dict):
        raise CommandError(f"a command must be a JSON object, not {type(value).__name__}")
    kind = value.get("kind")
    if kind not in TEMPLATE_COMMAND_KINDS:
        raise CommandError(f"unknown template command kind {kind!r} (expected one of "
                           f"{', '.join(sorted(TEMPLATE_COMMAND_KINDS))})")
    if value.get("v", COMMAND_VERSION) != COMMAND_VERSION:
        raise CommandError(f"command version {value.get('v')!r} is not supported (this worker reads {COMMAND_VERSION})")
    missing = [name for name in _REQUIRED[kind] if value.get(name) is None]
    if missing:
        raise CommandError(f"{kind} command lacks {', '.join(missing)}")
    return value


class TemplateWriter:
    """Applies template commands to the stored aggregate through its own methods; pure, no Kafka."""

    def handle(self, row: TemplateRow, command: Mapping[str, Any]) -> TemplateEffects:
        """The events of one command; nothing (no event) when it changes nothing, a dead letter when refused."""
        try:
            _check_id(command)
            if command["kind"] == "template_version":
                self._version(row, command)
            elif command["update"] == "status":
                self._status(row, command)
            elif command["update"] == "category":
                self._category(row, command)
            elif command["update"] == "quality":
                self._quality(row, command)
            elif command["update"] == "components":
                self._components(row, command)
            else:
                raise _Refused(f"unknown template update {command['update']!r} (expected one of {sorted(_UPDATES)})")
        except (_Refused, DomainError, ValueError) as error:  # refused before the aggregate changed
            return TemplateEffects(row.template, dead_letters=[_dead_letter(command, error)])
        template = row.template
        return TemplateEffects(template, list(template.collect_events()) if template is not None else [])

    def _status(self, row: TemplateRow, command: Mapping[str, Any]) -> None:
        """The provider's review of the newest version of the language: the only one it can be reviewing."""
        template, locale = row.template, _locale(command)
        status = ApprovalStatus(str(command.get("status")))
        if template is None:
            raise _Refused(f"template {command['name']!r} was never registered: its {status.value} status "
                           "names no version to record it for")
        versions = template.versions.get(locale, ())
        if not versions:
            raise _Refused(f"template {command['name']!r} has no version for {locale}: its {status.value} status "
                           "names no version to record it for")
        at = _at(command)
        if _stale(row, f"status:{locale}", at):
            return
        template.set_approval_status(locale, len(versions), status, command.get("reason"))
        _seen(row, f"status:{locale}", at)

    def _category(self, row: TemplateRow, command: Mapping[str, Any]) -> None:
        """A recategorisation; a template unknown so far is registered in its previous (else new) category."""
        new = _category_of(command.get("new_category"))
        previous = _category_of(command["previous_category"]) if command.get("previous_category") else None
        locale = normalize_locale(command["language"]) if command.get("language") else None
        at = _at(command)
        if row.template is not None and _stale(row, "category", at):
            return
        template = row.template or Template.register(tenant_id=command["tenant"], name=command["name"],
                                                     category=previous or new, channel=Channel(command["channel"]))
        template.change_category(new, locale)
        row.template = template
        _seen(row, "category", at)

    def _quality(self, row: TemplateRow, command: Mapping[str, Any]) -> None:
        """The provider's quality rating of a template it knows: of one translation, or the whole template."""
        new = TemplateQuality(str(command.get("new_quality")).upper())
        if row.template is None:
            raise _Refused(f"template {command['name']!r} was never registered: its {new.value} quality rating "
                           "names nothing to record it for")
        previous = TemplateQuality(str(command["previous_quality"]).upper()) if command.get("previous_quality") \
            else None
        locale = normalize_locale(command["language"]) if command.get("language") else None
        at = _at(command)
        if _stale(row, f"quality:{locale or ''}", at):
            return
        row.template.rate_quality(new, locale, previous)
        _seen(row, f"quality:{locale or ''}", at)

    def _components(self, row: TemplateRow, command: Mapping[str, Any]) -> None:
        """The provider's copy of an edited translation: a new version pending review, unless it is already ours."""
        template, locale = row.template, _locale(command)
        if template is None:
            raise _Refused(f"template {command['name']!r} was never registered: its edit names no category to "
                           "register it in")
        at = _at(command)
        if _stale(row, f"components:{locale}", at):
            return
        if _publish_if_changed(template, locale, command) and _reviewed_since(row, locale, at):
            _carry_review(template, locale)
        _seen(row, f"components:{locale}", at)

    def _version(self, row: TemplateRow, command: Mapping[str, Any]) -> None:
        """New content for a locale, pending review; the same content as the locale's newest version is no change."""
        template = row.template or Template.register(
            tenant_id=command["tenant"], name=command["name"], category=_category_of(command["category"]),
            parameter_format=ParameterFormat(command.get("parameter_format") or ParameterFormat.POSITIONAL),
            channel=Channel(command["channel"]))
        _publish_if_changed(template, normalize_locale(command["locale"]), command)
        row.template = template


def _publish_if_changed(template: Template, locale: str, command: Mapping[str, Any]) -> bool:
    """Publishes the command's body, header and footer unless the locale's newest version has them already."""
    content = (command.get("body") or "", command.get("header"), command.get("footer"))
    newest = template.versions.get(locale, ())[-1:]
    if newest and (newest[0].body, newest[0].header, newest[0].footer) == content:
        return False
    template.publish_version(locale, content[0], header=content[1], footer=content[2])
    return True


def _reviewed_since(row: TemplateRow, locale: str, at: datetime | None) -> bool:
    """Whether a review of the locale at or after an edit was applied already: webhooks arrive in any order."""
    reviewed = row.latest.get(f"status:{locale}")
    return at is not None and reviewed is not None and reviewed >= at


def _carry_review(template: Template, locale: str) -> None:
    """The review that overtook an edit was of the edit: it moves to the version just published for it."""
    *_, reviewed, edited = template.versions[locale]
    template.set_approval_status(locale, edited.version, reviewed.status, reviewed.status_reason)


def _check_id(command: Mapping[str, Any]) -> None:
    expected = Template.create_id(command["tenant"], Channel(command["channel"]), command["name"])
    if str(expected) != command["aggregate_id"]:
        raise _Refused("aggregate_id is not Template.create_id(tenant, channel, name)")


def _locale(command: Mapping[str, Any]) -> str:
    if not command.get("language"):
        raise _Refused(f"a {command['update']} update needs the template's language")
    return normalize_locale(command["language"])


def _category_of(value: Any) -> TemplateCategory:
    """The provider's category (MARKETING, UTILITY, AUTHENTICATION) as ours; ValueError for any other."""
    return TemplateCategory(str(value).lower())


def _at(command: Mapping[str, Any]) -> datetime | None:
    value = command.get("at")
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stale(row: TemplateRow, key: str, at: datetime | None) -> bool:
    """Whether a newer update of the same kind was applied already (webhooks arrive in any order)."""
    seen = row.latest.get(key)
    return at is not None and seen is not None and at < seen


def _seen(row: TemplateRow, key: str, at: datetime | None) -> None:
    if at is not None:
        row.latest[key] = max(at, row.latest.get(key, at))


def _dead_letter(command: Mapping[str, Any], error: Exception) -> dict[str, Any]:
    reason = str(error) if isinstance(error, _Refused | DomainError) else f"{type(error).__name__}: {error}"
    return {"stage": "templates", "reason": reason, "command_id": command.get("command_id"),
            "aggregate_id": command.get("aggregate_id"), "template_id": command.get("template_id"),
            "name": command.get("name"), "kind": command.get("kind"), "update": command.get("update")}
