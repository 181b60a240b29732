"""Reward functions in TRL's signature, built from environments and judges (stdlib only)."""

from rewards.batch import RewardError, ScoredBatch, completion_text
from rewards.components import (
    Reward,
    behaviour,
    calibration,
    clarify,
    correct,
    format_,
    format_reward,
    length,
    random_,
)
from rewards.registry import (
    COMPONENTS,
    ENTRY_POINT_GROUP,
    REWARDS,
    RewardContext,
    build_rewards,
    check_weights,
    registered_rewards,
)

__all__ = [
    "COMPONENTS",
    "ENTRY_POINT_GROUP",
    "REWARDS",
    "RewardContext",
    "Reward",
    "RewardError",
    "ScoredBatch",
    "behaviour",
    "build_rewards",
    "calibration",
    "check_weights",
    "clarify",
    "completion_text",
    "correct",
    "format_",
    "format_reward",
    "length",
    "random_",
    "registered_rewards",
]
