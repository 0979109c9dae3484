"""Weighted splits: whatever the weights and the message id, the chosen arm is a declared one and stable."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from switchboard.config import PipelineConfig, Route, RouteArm, choose_route, load
from switchboard.localkafka import project_root

_SHIPPED = load(project_root() / "pipeline.toml")


@st.composite
def weights(draw: st.DrawFn) -> list[int]:
    """1 to 6 non-negative integers summing to 100 (cut points on 0..100), at least one of them positive."""
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=0, max_size=5)))
    bounds = [0, *cuts, 100]
    return [upper - lower for lower, upper in itertools.pairwise(bounds)]


def _config(split: list[int]) -> PipelineConfig:
    arms = tuple(RouteArm(channel="whatsapp", senders=("wa-main",), weight=weight, template=f"arm-{index}")
                 for index, weight in enumerate(split))
    route = Route(name="split", tenant="acme", when=None, arms=arms, fallback=("sms",), retry="default",
                  deadline_seconds=None)
    return replace(_SHIPPED, routes=(route,))


@given(split=weights(), message_id=st.text(min_size=1, max_size=64))
def test_the_chosen_arm_is_declared_weighted_and_stable(split: list[int], message_id: str) -> None:
    config = _config(split)
    decision = choose_route(config, {"tenant": "acme"}, message_id)
    assert decision is not None
    assert 0 <= decision.arm < len(split)
    assert split[decision.arm] > 0
    assert decision.template == f"arm-{decision.arm}"
    assert choose_route(config, {"tenant": "acme"}, message_id) == decision
