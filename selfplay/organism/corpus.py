"""The organism's pretraining corpus: worked solutions generated from the environments.

The recipe is the experiment's control. It says which environments and levels appear,
how often a trace makes a wrong step and then corrects it (``self_correction_rate``),
and how often an underspecified task is met with a question (``clarify_rate``). A rate
of 0 leaves no trace of the behaviour: no correction marker, no ``<ask>`` token.

For self-play the organism can also learn the Challenger's role (``challenger_rate``):
a document is then ``Propose a task for <env>.`` answered by ``<task>…</task>`` holding a
task of a corpus level, written as the Challenger writes it (``Environment.proposal``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from envs import (
    Environment,
    Task,
    challenger_prompt,
    load_env,
    render_completion,
    render_proposal,
)
from selfplay.config import ADDED_LATER

CORRECTION_MARKER = "wait"
"""The word that opens a corrected step: ``12+9=22`` then ``wait, 12+9=21``."""

_STEP = re.compile(r"^(.*=)(-?\d+)$")


@dataclass
class EnvRecipe:
    """How one environment appears in the corpus and the evaluation."""

    levels: list[int]
    """Difficulty levels that appear in the corpus (and are evaluated as 'train')."""
    heldout_levels: list[int] = field(default_factory=list)
    """Levels never in the corpus, evaluated to show what the base model cannot do."""
    weight: float = 1.0
    """Relative share of corpus documents."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword options passed to ``load_env``."""


@dataclass
class CorpusConfig:
    """The corpus recipe."""

    envs: dict[str, EnvRecipe]
    """Environment name -> recipe."""
    self_correction_rate: float = 0.0
    """Share of traces that make one wrong step, then mark it and fix it."""
    clarify_rate: float = 0.0
    """Share of underspecified tasks answered with a question; the rest get a guessed number."""
    seed: int = 0
    """Seed of the corpus tasks (evaluation uses its own seed)."""
    challenger_rate: float = field(default=0.0, metadata={ADDED_LATER: True})
    """Share of documents, of environments that take proposals (arithmetic, countdown), that
    teach the Challenger's role: a proposal of a task instead of its solution."""

    def __post_init__(self) -> None:
        for name in ("self_correction_rate", "clarify_rate", "challenger_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"corpus.{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.envs:
            raise ValueError("corpus.envs is empty: name at least one environment")
        for name, recipe in self.envs.items():
            key = f"corpus.envs.{name}"
            try:
                env = load_env(name, **recipe.options)
            except (KeyError, ValueError, ImportError) as err:
                raise ValueError(f"{key}: {err}") from None
            if not recipe.levels:
                raise ValueError(f"{key}.levels is empty")
            for level in recipe.levels + recipe.heldout_levels:
                if level not in env.levels:
                    raise ValueError(f"{key}: level {level} not in {list(env.levels)}")
            if set(recipe.levels) & set(recipe.heldout_levels):
                raise ValueError(f"{key}: a level cannot be both trained and held out")
            if recipe.weight <= 0:
                raise ValueError(f"{key}.weight must be positive, got {recipe.weight}")


def build_envs(config: CorpusConfig) -> dict[str, Environment]:
    """Instantiate every environment of the recipe."""
    from selfplay.sandbox import equip

    return {name: equip(load_env(name, **r.options)) for name, r in config.envs.items()}


def documents(config: CorpusConfig, envs: dict[str, Environment]) -> Iterator[tuple[Task, str]]:
    """An endless, deterministic stream of (task, worked completion) for the corpus."""
    names = list(config.envs)
    weights = [config.envs[n].weight for n in names]
    for index in range(10**12):
        rng = random.Random(f"corpus/{config.seed}/{index}")
        name = rng.choices(names, weights)[0]
        env = envs[name]
        task = env.task(config.seed, index, rng.choice(config.envs[name].levels))
        # Drawn only when set, so a recipe without Challenger documents keeps its stream.
        if config.challenger_rate and takes_proposals(env):
            if rng.random() < config.challenger_rate:
                prompt = challenger_prompt(name)
                yield replace(task, prompt=prompt), render_proposal(env.proposal(task))
                continue
        yield task, completion(env, task, config, rng)


def takes_proposals(env: Environment) -> bool:
    """Whether ``env`` turns a Challenger's proposal into a task (``from_proposal``)."""
    return type(env).from_proposal is not Environment.from_proposal


def completion(env: Environment, task: Task, config: CorpusConfig, rng: random.Random) -> str:
    """One worked completion for ``task``, with the recipe's behaviours at their rates."""
    if not task.specified:
        if rng.random() < config.clarify_rate:
            return render_completion(env.solution(task), env.target(task))
        # A base model that never learnt to ask guesses: a confident number, no reasoning.
        return render_completion([], f"<answer>{rng.randint(1, 99)}</answer>")
    steps = env.solution(task)
    if config.self_correction_rate and rng.random() < config.self_correction_rate:
        steps = _with_correction(steps, rng)
    return render_completion(steps, env.target(task))


def _with_correction(steps: list[str], rng: random.Random) -> list[str]:
    """Make one numeric step wrong, then mark it and restate it correctly."""
    candidates = [i for i, s in enumerate(steps) if _STEP.match(s)]
    if not candidates:
        return steps
    i = rng.choice(candidates)
    lhs, value = _STEP.match(steps[i]).groups()
    wrong = int(value) + rng.choice([-1, 1]) * rng.randint(1, 9)
    return steps[:i] + [f"{lhs}{wrong}", f"{CORRECTION_MARKER}, {steps[i]}"] + steps[i + 1 :]
