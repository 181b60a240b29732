"""The curriculum and the ProgramChallenger that fills batches from it.

Per environment the curriculum holds a difficulty level and a rolling window of solve
outcomes at that level. When the window is full and the solve rate leaves the target band,
the level moves one step (down when too hard, up when too easy) and the window restarts.
``mode: fixed`` never moves: the control for a curriculum ablation.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from envs import Environment, Task


@dataclass
class CurriculumConfig:
    """How difficulty follows the solver."""

    mode: str = "adaptive"
    """"adaptive" (move levels to keep the solve rate in the band) or "fixed"."""
    band: list[float] = field(default_factory=lambda: [0.3, 0.7])
    """Target solve-rate band [low, high]."""
    window: int = 64
    """Solve outcomes (completions) in the rolling window that decides a move."""

    def __post_init__(self) -> None:
        if self.mode not in ("adaptive", "fixed"):
            raise ValueError(f"curriculum.mode must be 'adaptive' or 'fixed', got {self.mode!r}")
        if len(self.band) != 2 or not 0.0 <= self.band[0] < self.band[1] <= 1.0:
            raise ValueError(f"curriculum.band must be [low, high] within [0, 1], got {self.band}")
        if self.window < 1:
            raise ValueError("curriculum.window must be at least 1")


class Curriculum:
    """Per-environment difficulty levels moved to keep the rolling solve rate in a band."""

    def __init__(
        self, config: CurriculumConfig, levels: dict[str, list[int]], start: dict[str, int]
    ):
        self.config = config
        self.levels = levels
        self.level = dict(start)
        self.recent: dict[str, deque[float]] = {e: deque(maxlen=config.window) for e in levels}
        self.moves = 0

    def update(self, env: str, difficulty: int, score: float) -> None:
        """Record one solve outcome; outcomes at a level other than the current one are ignored."""
        if difficulty != self.level[env]:
            return  # a task set before the last move says nothing about the new level
        window = self.recent[env]
        window.append(score)
        if self.config.mode == "fixed" or len(window) < window.maxlen:
            return
        rate = sum(window) / len(window)
        ladder = self.levels[env]
        i = ladder.index(self.level[env])
        low, high = self.config.band
        if rate > high and i + 1 < len(ladder):
            self.level[env] = ladder[i + 1]
        elif rate < low and i > 0:
            self.level[env] = ladder[i - 1]
        else:
            return
        self.moves += 1
        window.clear()

    def solve_rate(self, env: str) -> float | None:
        """Rolling solve rate at the current level, None before any outcome."""
        window = self.recent[env]
        return sum(window) / len(window) if window else None

    def metrics(self) -> dict[str, float]:
        """``curriculum/<env>/level`` and ``curriculum/<env>/solve_rate``."""
        out: dict[str, float] = {}
        for env, level in self.level.items():
            out[f"curriculum/{env}/level"] = float(level)
            rate = self.solve_rate(env)
            if rate is not None:
                out[f"curriculum/{env}/solve_rate"] = rate
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: levels, windows, move count."""
        return {
            "level": dict(self.level),
            "recent": {e: list(w) for e, w in self.recent.items()},
            "moves": self.moves,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.level = dict(state["level"])
        for env, values in state["recent"].items():
            self.recent[env].clear()
            self.recent[env].extend(values)
        self.moves = state["moves"]


class ProgramChallenger:
    """Sets tasks from the environments: environment by weight, level from the curriculum."""

    role = "challenger"

    def __init__(
        self,
        envs: dict[str, Environment],
        weights: dict[str, float],
        curriculum: Curriculum,
        seed: int = 0,
    ):
        self.envs = envs
        self.names = list(envs)
        self.weights = [weights[n] for n in self.names]
        self.curriculum = curriculum
        self.seed = seed
        self.index = 0
        """Tasks set so far; the next task's index (and so its id) follows from it."""
        self.seconds = 0.0
        """Time spent setting tasks."""

    def propose(self) -> Task:
        """The next task: deterministic given the seed, the index and the curriculum's state."""
        start = time.perf_counter()
        rng = random.Random(f"challenger/{self.seed}/{self.index}")
        name = rng.choices(self.names, self.weights)[0]
        task = self.envs[name].task(self.seed, self.index, self.curriculum.level[name])
        self.index += 1
        self.seconds += time.perf_counter() - start
        return task

    def stream(self) -> Iterator[Task]:
        """An endless stream of tasks, each reflecting the curriculum when it is drawn."""
        while True:
            yield self.propose()
