"""Reward functions in TRL's signature, built from environments and judges (stdlib only)."""

from rewards.batch import RewardError, ScoredBatch, completion_text
from rewards.components import (
    COMPONENTS,
    Reward,
    behaviour,
    build_rewards,
    calibration,
    clarify,
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
    "ScoredBatch",
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
