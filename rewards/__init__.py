"""Reward functions in TRL's signature, built from environments and judges (stdlib only)."""

from rewards.components import (
    COMPONENTS,
    Reward,
    RewardError,
    behaviour,
    build_rewards,
    calibration,
    clarify,
    completion_text,
    correct,
    format_,
    format_reward,
    length,
    random_,
)

__all__ = [
    "COMPONENTS",
    "Reward",
    "RewardError",
    "behaviour",
    "build_rewards",
    "calibration",
    "clarify",
    "completion_text",
    "correct",
    "format_",
    "format_reward",
    "length",
    "random_",
]
