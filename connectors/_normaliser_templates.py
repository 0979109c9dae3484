"""A provider's template review, recategorisation, quality rating or edit as a `template_update` command."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC
from typing import Any, Final

from aggregates import Template
from connectors._items import TemplateUpdateItem, TemplateUpdateKind
from switchboard.config import ChannelConfig

__all__ = ["template_command"]

# Meta's `reason` on a status update that has none.
_NO_REASON: Final = frozenset({"", "NONE"})


def template_command(item: TemplateUpdateItem, channels: Sequence[ChannelConfig]) -> dict[str, Any] | str:
    """The command, keyed by its `aggregate_id`; or why there is none (a dead letter's reason).

    The provider names the business account, not one of our senders, so the tenant is the one tenant whose
    channels this driver serves; with several, the account does not say which.
    """
    tenants = sorted({channel.tenant for channel in channels})
    if len(tenants) != 1:
        return f"template update of business account {item.business_account_id}: the driver serves tenants " \
               f"{', '.join(tenants)}; cannot tell whose template it is"
    if not item.template_name:
        return "template update without the template's name"
    if item.kind is TemplateUpdateKind.COMPONENTS and not item.body:
        return "template components update without the body text (message_template_element)"
    channel = channels[0].kind
    command: dict[str, Any] = {
        "kind": "template_update", "v": 1, "command_id": _stable_id(item.channel, *item.dedupe_key),
        "aggregate_id": str(Template.create_id(tenants[0], channel, item.template_name)), "tenant": tenants[0],
        "channel": channel.value, "template_id": item.template_id, "name": item.template_name,
        "language": item.language, "business_account_id": item.business_account_id, "update": item.kind.value,
        "at": item.occurred_at.astimezone(UTC).isoformat() if item.occurred_at else None,
    }
    if item.kind is TemplateUpdateKind.STATUS:
        command.update(status=item.status, reason=None if (item.reason or "") in _NO_REASON else item.reason)
    elif item.kind is TemplateUpdateKind.QUALITY:
        command.update(new_quality=item.new_quality, previous_quality=item.previous_quality)
    elif item.kind is TemplateUpdateKind.COMPONENTS:
        command.update(body=item.body, header=item.header, footer=item.footer)
    else:
        command.update(new_category=item.new_category, previous_category=item.previous_category)
    return command


def _stable_id(*parts: str) -> str:
    """sha256 of the parts joined by '|', as the normaliser's other command ids."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
