"""The campaign's template at Meta: published and approved at the start, paused for low quality along the way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aggregates import Channel, Template
from connectors.whatsapp_simulator import WhatsAppSimulator

__all__ = ["CAMPAIGN_TEMPLATE", "TemplatePause", "publish_command"]

CAMPAIGN_TEMPLATE: Final = "weekend_offer"
LANGUAGE: Final = "en"
META_TEMPLATE_ID: Final = 7001  # Meta's id of the template's English translation in the simulator's webhooks
# The body Meta approved (named parameters, as the campaign's requests fill them).
BODY: Final = "{{first_name}}, {{discount}} off this weekend only. Reply STOP to opt out."
PAUSE_AT: Final = 0.6  # Meta pauses it once this share of the expected messages is final
PAUSE_SECONDS: Final = 5.0  # and reinstates it this long after


def publish_command(tenant: str) -> tuple[str, dict[str, Any]]:
    """The template admin's `template_version` for the campaign's template (key: the Template aggregate id)."""
    aggregate_id = str(Template.create_id(tenant, Channel.WHATSAPP, CAMPAIGN_TEMPLATE))
    return aggregate_id, {"kind": "template_version", "v": 1, "command_id": f"demo-publish-{CAMPAIGN_TEMPLATE}",
                          "aggregate_id": aggregate_id, "tenant": tenant, "channel": Channel.WHATSAPP.value,
                          "name": CAMPAIGN_TEMPLATE, "category": "marketing", "parameter_format": "named",
                          "locale": LANGUAGE, "body": BODY}


@dataclass
class TemplatePause:
    """Meta's reviews of the campaign's template, posted by the simulator as webhooks: approved at the start, then
    paused for low quality (the simulator refuses it with 132015, the workers' template gate fails it before the
    request once the pause reaches it: its messages fall back to SMS), then reinstated."""

    simulator: WhatsAppSimulator
    paused_at: float | None = None
    reinstated: bool = False

    def approve(self) -> None:
        self._review("APPROVED")

    def tick(self, now: float, final: int, expected: int) -> str | None:
        """What Meta does now, as the fault's note, or None."""
        if self.paused_at is None and final >= PAUSE_AT * expected:
            self.paused_at = now
            self._review("PAUSED", "LOW_QUALITY")
            return (f"Meta pauses `{CAMPAIGN_TEMPLATE}` for low quality: its messages fall back to SMS (the workers' "
                    "template gate refuses them without a request once the pause reaches it; Meta answers 132015 "
                    "to any sent before)")
        if self.paused_at is not None and not self.reinstated and now - self.paused_at >= PAUSE_SECONDS:
            self.reinstated = True
            self._review("REINSTATED")
            return f"Meta reinstates `{CAMPAIGN_TEMPLATE}` {PAUSE_SECONDS:.0f} s later"
        return None

    def _review(self, event: str, reason: str | None = None) -> None:
        self.simulator.simulate_template_status(META_TEMPLATE_ID, CAMPAIGN_TEMPLATE, LANGUAGE, event, reason=reason)
