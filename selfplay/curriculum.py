"""The curriculum and the ProgramChallenger that fills batches from it.

Per environment the curriculum holds a difficulty level and a rolling window of solve
outcomes at that level. When the window is full and the solve rate leaves the target band,
the level moves one step (down when too hard, up when too easy) and the window restarts.
Two controls for a curriculum ablation never move: ``mode: fixed`` sets every task at the
start level, ``mode: uniform`` draws each task's level uniformly from the ladder.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from envs import Environment, Task

MODES = ("adaptive", "fixed", "uniform")


@dataclass
class CurriculumConfig:
    """How difficulty follows the solver."""

    mode: str = "adaptive"
    """"adaptive" (move levels to keep the solve rate in the band), "fixed" (hold the start
    level) or "uniform" (each task's level drawn uniformly from the ladder)."""
    band: list[float] = field(default_factory=lambda: [0.3, 0.7])
    """Target solve-rate band [low, high]."""
    window: int = 64
    """Solve outcomes (completions) in the rolling window that decides a move."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            allowed = ", ".join(repr(m) for m in MODES)
            raise ValueError(f"curriculum.mode must be one of {allowed}, got {self.mode!r}")
        if len(self.band) != 2 or not 0.0 <= self.band[0] < self.band[1] <= 1.0:
            raise ValueError(f"curriculum.band must be [low, high] within [0, 1], got {self.band}")
        if self.window < 1:
            raise ValueError("curriculum.window must be at least 1")


class Curriculum:
    """Per-environment difficulty levels moved to keep the rolling solve rate in a band.

    In ``uniform`` mode ``level`` keeps the start level (so ``state_dict`` has the same keys
    and meaning in every mode) but no task is set from it: ``level_for`` draws each task's
    level from the ladder, the window holds outcomes at every level, and the reported level
    is the ladder's mean, the expected level of a task.
    """

    def __init__(
        self, config: CurriculumConfig, levels: dict[str, list[int]], start: dict[str, int]
    ):
        self.config = config
        self.levels = levels
        self.level = dict(start)
        self.recent: dict[str, deque[float]] = {e: deque(maxlen=config.window) for e in levels}
        self.moves = 0

    def level_for(self, env: str, rng: random.Random) -> int:
        """The next ``env`` task's level: the current one, or (uniform) one drawn with ``rng``.

        Only uniform mode draws from ``rng``, so adaptive and fixed runs set the same tasks
        as before this method existed.
        """
        if self.config.mode == "uniform":
            return rng.choice(self.levels[env])
        return self.level[env]

    def update(self, env: str, difficulty: int, score: float) -> None:
        """Record one solve outcome; outcomes at a level other than the current one are ignored.

        Uniform mode keeps outcomes at every level (its window is the mix's solve rate) and,
        like fixed mode, never moves.
        """
        if difficulty != self.level[env] and self.config.mode != "uniform":
            return  # a task set before the last move says nothing about the new level
        window = self.recent[env]
        window.append(score)
        if self.config.mode != "adaptive" or len(window) < window.maxlen:
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
        """Rolling solve rate at the current level (uniform: over the ladder), None before any."""
        window = self.recent[env]
        return sum(window) / len(window) if window else None

    def metrics(self) -> dict[str, float]:
        """``curriculum/<env>/level`` (uniform: the ladder's mean) and ``.../solve_rate``."""
        out: dict[str, float] = {}
        for env, level in self.level.items():
            if self.config.mode == "uniform":
                ladder = self.levels[env]
                out[f"curriculum/{env}/level"] = sum(ladder) / len(ladder)
            else:
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
        self.drawn: deque[tuple[int, Task]] = deque(maxlen=4096)
        """The latest tasks drawn, with their index: the trainer's data loader reads a batch
        ahead, so a checkpoint must keep the tasks drawn but not yet trained on."""
        self.replay: deque[tuple[int, Task]] = deque()
        """Tasks to hand out again before new ones (a resumed run's untrained tasks)."""

    def propose(self) -> Task:
        """The next task: deterministic given the seed, the index and the curriculum's state."""
        start = time.perf_counter()
        rng = random.Random(f"challenger/{self.seed}/{self.index}")
        name = rng.choices(self.names, self.weights)[0]
        level = self.curriculum.level_for(name, rng)
        task = self.envs[name].task(self.seed, self.index, level)
        self.index += 1
        self.seconds += time.perf_counter() - start
        return task

    def stream(self) -> Iterator[Task]:
        """An endless stream of tasks, each reflecting the curriculum when it is drawn."""
        for _, task in self.numbered():
            yield task

    def numbered(self) -> Iterator[tuple[int, Task]]:
        """``stream`` with each task's draw index: the ``replay`` tasks first, then new ones."""
        while True:
            if self.replay:
                drawn = self.replay.popleft()
            else:
                drawn = (self.index, self.propose())
            self.drawn.append(drawn)
            yield drawn

    def untrained(self, next_draw: int) -> list[tuple[int, Task]]:
        """The tasks drawn from index ``next_draw`` on (those the trainer has not trained on
        yet when ``next_draw`` is the index after the last trained task)."""
        return [(i, t) for i, t in self.drawn if i >= next_draw]
