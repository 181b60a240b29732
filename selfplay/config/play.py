"""The ``selfplay:`` section of a run config: self-play's sizes, reward and collapse rules.

The loop that reads it is ``selfplay.play``; the Challenger's reward ``selfplay.challenger``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selfplay.config.strict import ADDED_LATER

MODES = ("shared", "separate")


CHALLENGER_REWARDS = ("uncertainty", "learnability")


@dataclass
class CollapseConfig:
    """When a Challenger step counts as collapsed."""

    valid_floor: float = 0.1
    """Collapsed when fewer than this share of proposals are tasks at all (new or repeated)."""
    distinct_floor: float = 0.25
    """Collapsed when distinct tasks / proposals that are tasks falls below this (all alike)."""
    duplicate_ceiling: float = 0.75
    """Collapsed when at least this share of proposals repeat a task (of the batch or window)."""
    solved_ceiling: float = 0.95
    """Collapsed when at least this share of valid tasks is never solved, or always solved."""

    def __post_init__(self) -> None:
        for name in ("valid_floor", "distinct_floor", "duplicate_ceiling", "solved_ceiling"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"selfplay.collapse.{name} must be in [0, 1], got {getattr(self, name)}"
                )


@dataclass
class SelfPlayConfig:
    """Self-play: a model Challenger proposes the tasks (see ``selfplay.play``)."""

    enabled: bool = False
    """Train by self-play instead of on the ProgramChallenger's curriculum."""
    mode: str = "shared"
    """"shared": one model in both roles (role-conditioned prompts); "separate": a second
    model trained as Challenger."""
    challenger_model: str = ""
    """Separate mode: the Challenger's starting model (default: the Solver's base model)."""
    iterations: int = 4
    """Challenger phase + Solver phase, this many times."""
    challenger_steps: int = 4
    """GRPO steps per Challenger phase."""
    solver_steps: int = 8
    """GRPO steps per Solver phase."""
    prompts_per_step: int = 4
    """Challenger prompts per step, each naming an environment drawn by ``envs.*.weight``."""
    proposals_per_prompt: int = 8
    """Proposals per prompt: the Challenger's GRPO group."""
    attempts: int = 8
    """Solver attempts that rate each distinct proposed task."""
    reward: str = "uncertainty"
    """The Challenger's reward for a solve rate p: "uncertainty" or "learnability"."""
    repetition_weight: float = 0.5
    """Weight of the repetition penalty."""
    invalid_penalty: float = 1.0
    """Reward of a rejected proposal is minus this."""
    frontier_weight: float = field(default=0.0, metadata={ADDED_LATER: True})
    """Weight of the climb bonus: a task at or above its environment's frontier level that the
    Solver solves at least once earns this on top (``selfplay.challenger.Frontier``); 0: off."""
    frontier_at: float = field(default=0.5, metadata={ADDED_LATER: True})
    """A level whose solve-rate estimate reaches this is mastered: the frontier is above it."""
    frontier_ema: float = field(default=0.1, metadata={ADDED_LATER: True})
    """Rate of each level's solve-rate estimate (an EMA over the rated tasks at that level)."""
    near_duplicate: float = 0.8
    """Proposal similarity at or above which two tasks are near-duplicates."""
    window: int = 128
    """Recent accepted tasks that duplicates and repetition are checked against."""
    keep_band: list[float] = field(default_factory=lambda: [0.1, 0.9])
    """Solve rates of proposed tasks the Solver trains on, [low, high] inclusive."""
    replay_rate: float = 0.25
    """Share of Solver tasks replayed from earlier iterations."""
    max_proposal_tokens: int = 32
    """Completion budget of a proposal."""
    challenger_grpo: dict[str, Any] = field(default_factory=dict)
    """GRPOConfig options for the Challenger phase, over the run's ``grpo:``."""
    collapse: CollapseConfig = field(default_factory=CollapseConfig)
    """When a Challenger step counts as collapsed."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"selfplay.mode must be one of {MODES}, got {self.mode!r}")
        if self.reward not in CHALLENGER_REWARDS:
            raise ValueError(
                f"selfplay.reward must be one of {CHALLENGER_REWARDS}, got {self.reward!r}"
            )
        for name in ("iterations", "challenger_steps", "prompts_per_step", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"selfplay.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("proposals_per_prompt", "attempts"):
            if getattr(self, name) < 2:
                raise ValueError(f"selfplay.{name} must be at least 2, got {getattr(self, name)}")
        if self.solver_steps < 0:
            raise ValueError(f"selfplay.solver_steps must be 0 or more, got {self.solver_steps}")
        if self.max_proposal_tokens < 1:
            raise ValueError(
                f"selfplay.max_proposal_tokens must be at least 1, got {self.max_proposal_tokens}"
            )
        for name in ("repetition_weight", "invalid_penalty"):  # a penalty, never a bonus
            if getattr(self, name) < 0:
                raise ValueError(f"selfplay.{name} must be 0 or more, got {getattr(self, name)}")
        if self.frontier_weight < 0:  # a bonus, never a penalty
            raise ValueError(
                f"selfplay.frontier_weight must be 0 or more, got {self.frontier_weight}"
            )
        if not 0.0 < self.frontier_at < 1.0:
            raise ValueError(
                f"selfplay.frontier_at must be strictly between 0 and 1, got {self.frontier_at}"
            )
        if not 0.0 < self.frontier_ema <= 1.0:
            raise ValueError(f"selfplay.frontier_ema must be in (0, 1], got {self.frontier_ema}")
        low_high = self.keep_band
        if len(low_high) != 2 or not 0.0 <= low_high[0] <= low_high[1] <= 1.0:
            raise ValueError(
                f"selfplay.keep_band must be [low, high] within [0, 1], got {low_high}"
            )
        for name in ("replay_rate", "near_duplicate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"selfplay.{name} must be in [0, 1], got {getattr(self, name)}")
