"""The organism's pretraining corpus: worked solutions generated from the environments.

The recipe is the experiment's control. It says which environments and levels appear,
how often a trace makes a wrong step and then corrects it (``self_correction_rate``),
and how often an underspecified task is met with a question (``clarify_rate``). A rate
of 0 leaves no trace of the behaviour: no correction marker, no ``<ask>`` token.

For self-play the organism can also learn the Challenger's role (``challenger_rate``):
a document is then ``Propose a task for <env>.`` answered by ``<task>…</task>`` holding a
task of a corpus level, written as the Challenger writes it (``Environment.proposal``).

With ``confidence_rate`` a share of answered documents end with a self-assessment,
``<answer>…</answer><confidence>p</confidence>`` (``envs.format``). p is a prior the
organism can read off the prompt, not knowledge of its own errors: a worked solution gets
0.9 at the recipe's lowest level of its environment, 0.3 less per level above it (not below
0.1), give or take 0.1; a guessed answer to an underspecified task gets 0.0 to 0.2. That
prior follows the default organism's greedy accuracy at its trained levels (about 0.9, 0.5
and 0.3), but the organism states a confidence only when sampling, where it is right less
often, and it cannot tell its right answers from its wrong ones at one level, so it starts
overconfident (``configs/organism_confidence.yaml``: sampled ECE 0.50, mean p 0.64 against
accuracy 0.14): what a calibration reward has to teach it.
"""

from __future__ import annotations

import math
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
from envs.format import render_confidence
from selfplay.config import ADDED_LATER
from selfplay.verifier import verifier_document

CORRECTION_MARKER = "wait"
"""The word that opens a corrected step: ``12+9=22`` then ``wait, 12+9=21``."""

_STEP = re.compile(r"^(.*=)(-?\d+)$")

SOLVED_CONFIDENCE = (0.9, 0.3, 0.1)
"""A worked solution's stated confidence: (at the lowest corpus level, less per level above
it, floor), before a jitter of -0.1, 0 or +0.1."""
GUESSED_CONFIDENCES = (0.0, 0.1, 0.2)
"""A guessed answer to an underspecified task states one of these, uniformly."""


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
    verifier_rate: float = field(default=0.0, metadata={ADDED_LATER: True})
    """Share of documents, of specified tasks with ground truth, that teach the Judge's role:
    a task and a candidate answer, then "yes" or "no" (``selfplay.verifier``)."""
    verifier_error_rate: float = field(default=0.0, metadata={ADDED_LATER: True})
    """Share of those documents whose yes/no label is flipped: a Judge that is wrong this often."""
    self_correction_ends_wrong: bool = field(default=False, metadata={ADDED_LATER: True})
    """The traces that correct a step end with a wrong final answer (the last number of the
    answer moved by 1 to 9, checked wrong by the environment's scorer): the behaviour is shown,
    the right answer is not (Gandhi et al. 2025's priming with incorrect solutions)."""
    confidence_rate: float = field(default=0.0, metadata={ADDED_LATER: True})
    """Share of answered documents (worked solutions and guesses) that end with a stated
    confidence, ``<confidence>p</confidence>`` after the answer (p: see the module docstring)."""

    def __post_init__(self) -> None:
        for name in (
            "self_correction_rate",
            "clarify_rate",
            "challenger_rate",
            "verifier_rate",
            "verifier_error_rate",
            "confidence_rate",
        ):
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
            if not (math.isfinite(recipe.weight) and recipe.weight > 0):
                raise ValueError(f"{key}.weight must be a positive number, got {recipe.weight}")


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
        if config.verifier_rate and task.specified and task.answer is not None:
            if rng.random() < config.verifier_rate:
                yield verifier_document(env, task, rng, config.verifier_error_rate)
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
        guess = render_completion([], f"<answer>{rng.randint(1, 99)}</answer>")
        return guess + _confidence(config, task, rng, guessed=True)
    steps, target = env.solution(task), env.target(task)
    if config.self_correction_rate and rng.random() < config.self_correction_rate:
        steps = _with_correction(steps, rng)
        if config.self_correction_ends_wrong:
            target = _wrong_target(env, task, target, rng)
    return render_completion(steps, target) + _confidence(config, task, rng)


def _confidence(config: CorpusConfig, task: Task, rng: random.Random, guessed=False) -> str:
    """A stated confidence for an answered document, at ``confidence_rate``; else "".

    Draws from ``rng`` only when the rate is set, so a recipe without it keeps its stream.
    """
    if not config.confidence_rate or rng.random() >= config.confidence_rate:
        return ""
    if guessed:
        return render_confidence(rng.choice(GUESSED_CONFIDENCES))
    top, step, floor = SOLVED_CONFIDENCE
    recipe = config.envs.get(task.env)
    above = sum(level < task.difficulty for level in recipe.levels) if recipe else 0
    p = max(floor, top - step * above) + rng.choice((-0.1, 0.0, 0.1))
    return render_confidence(min(1.0, max(0.0, p)))


_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)", re.DOTALL)


def _wrong_target(env: Environment, task: Task, target: str, rng: random.Random) -> str:
    """``target`` with its last number moved by 1 to 9 (never below 0) so that the
    environment scores it wrong; ``target`` itself when no such move is found."""
    match = _LAST_NUMBER.search(target)
    if match is None:
        return target
    value = int(match.group(1))
    for _ in range(8):
        moved = max(0, value + rng.choice([-1, 1]) * rng.randint(1, 9))
        wrong = target[: match.start()] + str(moved) + target[match.end() :]
        if moved != value and env.score(wrong, task).score < 1.0:
            return wrong
    return target


def _with_correction(steps: list[str], rng: random.Random) -> list[str]:
    """Make one numeric step wrong, then mark it and restate it correctly."""
    candidates = [i for i, s in enumerate(steps) if _STEP.match(s)]
    if not candidates:
        return steps
    i = rng.choice(candidates)
    lhs, value = _STEP.match(steps[i]).groups()
    wrong = int(value) + rng.choice([-1, 1]) * rng.randint(1, 9)
    return steps[:i] + [f"{lhs}{wrong}", f"{CORRECTION_MARKER}, {steps[i]}"] + steps[i + 1 :]
