"""The curriculum and the ProgramChallenger that fills batches from it.

Per environment the curriculum holds a difficulty level and a rolling window of solve
outcomes at that level. What one outcome is follows ``window_unit``: each completion's score
(``completions``, the default) or the mean score of one task's completions in the step
(``tasks``; the recorder feeds a task's group whole through ``update_task``). Four modes:

- ``adaptive``: when the window is full and its solve rate leaves the target band, that is
  a strike (above or below) and the window restarts; after ``patience`` strikes in a row on
  the same side the level moves one step (down when too hard, up when too easy). A full
  window in the band, or out of it where the ladder ends, clears the count and the window
  keeps rolling. ``patience: 1`` is the original rule: move on the first full window out.
- ``learnability``: a running estimate p of the solve rate of every level (an exponential
  moving average, weight ``ema`` per outcome, at whatever level the task was set) and tasks
  set at the level whose p(1-p) is highest: Absolute Zero's learnability reward, R-Zero's
  uncertainty, at its largest where the solver solves half. A task goes to a neighbour of
  that level instead with chance ``explore``, so the neighbours' estimates stay current.
  An unvisited level is optimistic, p = 0.5, the most learnable there is, but bounded by
  the levels around it already visited (no easier than a harder one, no harder than an
  easier one), so a level is tried only after the one before it looks too easy: the ladder
  is explored in order from the start level, never by a jump to the hardest. A level's
  estimate starts from that prior at its first outcome. Ties go to the level nearest the
  start level, then the lower. The window holds every outcome (the mix's solve rate).
- ``fixed`` and ``uniform``, two controls for a curriculum ablation, never move: ``fixed``
  sets every task at the start level, ``uniform`` draws each task's level uniformly from
  the ladder.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from envs import Environment, Task

MODES = ("adaptive", "fixed", "uniform", "learnability")
WINDOW_UNITS = ("completions", "tasks")
PRIOR = 0.5
"""Learnability: an unvisited level's solve rate before its neighbours bound it (p(1-p) is
largest there, so an unvisited level is tried before a visited one that scores less)."""


@dataclass
class CurriculumConfig:
    """How difficulty follows the solver."""

    mode: str = "adaptive"
    """"adaptive" (move levels to keep the solve rate in the band), "learnability" (set tasks
    at the level whose estimated p(1-p) is highest), "fixed" (hold the start level) or
    "uniform" (each task's level drawn uniformly from the ladder)."""
    band: list[float] = field(default_factory=lambda: [0.3, 0.7])
    """Target solve-rate band [low, high] (adaptive)."""
    window: int = 64
    """Solve outcomes in the rolling window that decides a move, counted in ``window_unit``."""
    window_unit: str = "completions"
    """What one outcome is: "completions" (each completion's score) or "tasks" (the mean score
    of a task's completions in the step, so ``window: 16`` is 16 tasks)."""
    patience: int = 1
    """Adaptive: full windows in a row out of the band on the same side before the level
    moves (each strike restarts the window; a window in the band clears the count)."""
    ema: float = 0.1
    """Learnability: the weight of each new outcome in its level's solve-rate estimate (per
    ``window_unit``: with "completions" a smaller weight reads as many tasks)."""
    explore: float = 0.1
    """Learnability: the chance that a task is set at a neighbour of the most learnable level."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            allowed = ", ".join(repr(m) for m in MODES)
            raise ValueError(f"curriculum.mode must be one of {allowed}, got {self.mode!r}")
        if len(self.band) != 2 or not 0.0 <= self.band[0] < self.band[1] <= 1.0:
            raise ValueError(f"curriculum.band must be [low, high] within [0, 1], got {self.band}")
        if self.window < 1:
            raise ValueError(f"curriculum.window must be at least 1, got {self.window}")
        if self.window_unit not in WINDOW_UNITS:
            allowed = ", ".join(repr(u) for u in WINDOW_UNITS)
            raise ValueError(
                f"curriculum.window_unit must be one of {allowed}, got {self.window_unit!r}"
            )
        if self.patience < 1:
            raise ValueError(f"curriculum.patience must be at least 1, got {self.patience}")
        if not 0.0 < self.ema <= 1.0:
            raise ValueError(f"curriculum.ema must be in (0, 1], got {self.ema}")
        if not 0.0 <= self.explore < 1.0:
            raise ValueError(f"curriculum.explore must be in [0, 1), got {self.explore}")


class Curriculum:
    """Per-environment difficulty levels that follow the solver (see the module docstring).

    ``level`` is the level tasks are set at: in learnability mode the most learnable level
    (a task goes to a neighbour with chance ``explore``). In ``uniform`` mode ``level`` keeps
    the start level (so ``state_dict`` has the same keys and meaning in every mode) but no
    task is set from it: ``level_for`` draws each task's level from the ladder, the window
    holds outcomes at every level, and the reported level is the ladder's mean, the expected
    level of a task.
    """

    def __init__(
        self, config: CurriculumConfig, levels: dict[str, list[int]], start: dict[str, int]
    ):
        self.config = config
        self.levels = levels
        self.start = dict(start)
        self.level = dict(start)
        self.recent: dict[str, deque[float]] = {e: deque(maxlen=config.window) for e in levels}
        self.moves = 0
        self.strikes: dict[str, int] = {e: 0 for e in levels}
        """Adaptive: full windows in a row out of the band, counted up (too easy) or down."""
        self.estimate: dict[str, dict[int, float]] = {e: {} for e in levels}
        """Learnability: the running solve-rate estimate of each level visited so far."""

    def level_for(self, env: str, rng: random.Random) -> int:
        """The next ``env`` task's level: the current one, or one drawn with ``rng`` (uniform:
        from the ladder; learnability: a neighbour with chance ``explore``).

        Only uniform and learnability modes draw from ``rng``, so adaptive and fixed runs set
        the same tasks as before this method existed.
        """
        if self.config.mode == "uniform":
            return rng.choice(self.levels[env])
        if self.config.mode == "learnability" and rng.random() < self.config.explore:
            ladder = self.levels[env]
            i = ladder.index(self.level[env])
            neighbours = ladder[max(i - 1, 0) : i] + ladder[i + 1 : i + 2]
            return rng.choice(neighbours or ladder)  # a ladder of one level has none
        return self.level[env]

    def update(self, env: str, difficulty: int, score: float) -> None:
        """Record one completion's solve outcome (``window_unit: tasks``: as a task of one).

        Adaptive and fixed modes ignore outcomes at a level other than the current one; uniform
        mode keeps outcomes at every level (its window is the mix's solve rate) and, like fixed
        mode, never moves; learnability mode feeds each outcome to its own level's estimate.
        """
        self._outcome(env, difficulty, score)

    def update_task(self, env: str, difficulty: int, scores: Sequence[float]) -> None:
        """Record one task's completions: each score in turn, or (``window_unit: tasks``) their
        mean as one outcome."""
        if not scores:
            raise ValueError(f"curriculum: a {env} task at level {difficulty} with no scores")
        if self.config.window_unit == "tasks":
            self._outcome(env, difficulty, sum(scores) / len(scores))
            return
        for score in scores:
            self._outcome(env, difficulty, score)

    def _outcome(self, env: str, difficulty: int, value: float) -> None:
        """One outcome (a completion's score or a task's mean) into the window and the mode."""
        mode = self.config.mode
        if mode == "learnability":
            self._learn(env, difficulty, value)
            return
        if difficulty != self.level[env] and mode != "uniform":
            return  # a task set before the last move says nothing about the new level
        window = self.recent[env]
        window.append(value)
        if mode == "adaptive" and len(window) == window.maxlen:
            self._judge(env)

    def _judge(self, env: str) -> None:
        """Adaptive, on a full window: a strike if out of the band where the ladder goes on;
        the level moves after ``patience`` strikes in a row on one side."""
        window = self.recent[env]
        rate = sum(window) / len(window)
        ladder = self.levels[env]
        i = ladder.index(self.level[env])
        low, high = self.config.band
        side = 1 if rate > high and i + 1 < len(ladder) else -1 if rate < low and i > 0 else 0
        if side == 0:
            self.strikes[env] = 0
            return
        strikes = self.strikes[env]
        self.strikes[env] = strikes + side if strikes * side > 0 else side
        window.clear()  # the next strike is judged on fresh outcomes
        if abs(self.strikes[env]) < self.config.patience:
            return
        self.level[env] = ladder[i + side]
        self.strikes[env] = 0
        self.moves += 1

    def _learn(self, env: str, difficulty: int, value: float) -> None:
        """Learnability: move ``difficulty``'s estimate toward ``value``; set tasks at the level
        with the highest p(1-p) (ties: nearest the start level, then the lower)."""
        ladder = self.levels[env]
        if difficulty not in ladder:
            raise ValueError(f"curriculum: {env} level {difficulty} is not on its ladder {ladder}")
        self.recent[env].append(value)
        estimate = self.estimate[env]
        before = estimate.get(difficulty, self._prior(env, difficulty))
        estimate[difficulty] = before + self.config.ema * (value - before)
        start = ladder.index(self.start[env])

        def rank(i: int) -> tuple[float, int, int]:
            p = estimate.get(ladder[i], self._prior(env, ladder[i]))
            return p * (1 - p), -abs(i - start), -i

        best = ladder[max(range(len(ladder)), key=rank)]
        if best != self.level[env]:
            self.level[env] = best
            self.moves += 1

    def _prior(self, env: str, level: int) -> float:
        """An unvisited level's solve rate: ``PRIOR``, but no harder than the nearest visited
        level below it and no easier than the nearest visited level above it."""
        ladder, estimate = self.levels[env], self.estimate[env]
        i = ladder.index(level)
        below = [estimate[x] for x in ladder[:i] if x in estimate]
        above = [estimate[x] for x in ladder[i + 1 :] if x in estimate]
        p = min(PRIOR, below[-1]) if below else PRIOR
        return max(p, above[0]) if above else p

    def solve_rate(self, env: str) -> float | None:
        """Rolling solve rate at the current level (uniform, learnability: over every level
        set), None before any."""
        window = self.recent[env]
        return sum(window) / len(window) if window else None

    def metrics(self) -> dict[str, float]:
        """``curriculum/<env>/level`` (uniform: the ladder's mean) and ``.../solve_rate``;
        learnability adds ``.../estimate/<level>`` for each level visited."""
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
            for at, p in sorted(self.estimate[env].items()):
                out[f"curriculum/{env}/estimate/{at}"] = p
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: levels, windows, move count, strikes, estimates (their
        levels as strings, so the state survives JSON unchanged)."""
        return {
            "level": dict(self.level),
            "recent": {e: list(w) for e, w in self.recent.items()},
            "moves": self.moves,
            "strikes": dict(self.strikes),
            "estimate": {e: {str(k): p for k, p in v.items()} for e, v in self.estimate.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; a state saved before strikes and estimates
        existed loads with none."""
        self.level = dict(state["level"])
        for env, values in state["recent"].items():
            self.recent[env].clear()
            self.recent[env].extend(values)
        self.moves = state["moves"]
        self.strikes = {e: 0 for e in self.levels} | state.get("strikes", {})
        self.estimate = {e: {} for e in self.levels}
        for env, values in state.get("estimate", {}).items():
            self.estimate[env] = {int(k): p for k, p in values.items()}


class ProgramChallenger:
    """Sets tasks from the environments: environment by weight, level from the curriculum;
    or, given a ``pool`` (a run config's ``tasks``), a task of the pool, each with equal chance
    (the curriculum is still told the outcomes, but sets nothing)."""

    role = "challenger"

    def __init__(
        self,
        envs: dict[str, Environment],
        weights: dict[str, float],
        curriculum: Curriculum,
        seed: int = 0,
        pool: list[Task] | None = None,
    ):
        self.envs = envs
        self.pool = pool
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
        if self.pool:
            task = self.pool[rng.randrange(len(self.pool))]
        else:
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
