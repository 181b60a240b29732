"""The reward registry: built-in components by explicit import, third parties by entry point.

A run config weights components by name (``rewards.weights``). A third-party package adds
one by registering a *factory* in its ``pyproject.toml``::

    [project.entry-points."selfplay.rewards"]
    brevity = "my_package.rewards:brevity"

``brevity(context: RewardContext) -> Reward`` returns a reward function in TRL's signature
whose ``__name__`` is the entry-point name; ``context.judge`` is the run's judge (a
component that reads verdicts calls ``context.judge`` or, better, the batch's ``scored``
column). Every registered component gets the contract checks of ``rewards.contract`` for free
(``tests/test_reward_contract.py`` runs them over the registry). A name registered twice is
an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from rewards.batch import SharedBatch
from rewards.components import (
    Reward,
    Tagger,
    behaviour,
    calibration,
    clarify,
    correct,
    format_,
    length,
    random_,
)

if TYPE_CHECKING:  # rewards needs only the protocol's shape, not the selfplay package
    from selfplay.judges import Judge

ENTRY_POINT_GROUP = "selfplay.rewards"


@dataclass(frozen=True)
class RewardContext:
    """What a reward factory may use to build its component."""

    judge: Judge
    """The run's judge (its verdicts of the batch are in the ``scored`` column too)."""
    length_limit: int = 400
    """``rewards.length_limit``: reasoning characters the ``length`` component allows."""


Factory = Callable[[RewardContext], Reward]
"""A reward factory: ``factory(context) -> Reward``."""

REWARDS: dict[str, Factory] = {
    "correct": lambda c: correct(c.judge),
    "format": lambda c: format_(),
    "clarify": lambda c: clarify(c.judge),
    "length": lambda c: length(c.length_limit),
    "random": lambda c: random_(),
    "calibration": lambda c: calibration(c.judge),
}
"""The built-in components, in the order ``build_rewards`` returns them."""

COMPONENTS = tuple(REWARDS)
"""The built-in components' names."""


def registered_rewards() -> dict[str, Factory]:
    """Built-in components plus those registered through the ``selfplay.rewards`` entry points."""
    found = dict(REWARDS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            raise ValueError(
                f"reward {ep.name!r} is registered twice (entry point {ep.value!r} clashes "
                "with another component of that name)"
            )
        factory = ep.load()
        if not callable(factory):
            raise TypeError(f"entry point {ep.name!r} = {ep.value!r} is not a reward factory")
        found[ep.name] = factory
    return found


def check_weights(weights: dict[str, float], known: tuple[str, ...], key: str = "rewards") -> None:
    """A ValueError naming ``key`` for an unknown component, a weight that is not a finite
    number, or weights that are all zero."""
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(
            f"{key}.weights: unknown component {unknown[0]!r} (known: {', '.join(known)})"
        )
    for name, weight in weights.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
        ):
            raise ValueError(
                f"{key}.weights: the weight of {name!r} must be a finite number, got {weight!r}"
            )
    if not any(weights.values()):
        raise ValueError(f"{key}.weights: every weight is zero or missing: {weights}")


def make_reward(name: str, context: RewardContext, factories: dict[str, Factory]) -> Reward:
    """The component ``name`` from its factory, checked to be named as registered."""
    reward = factories[name](context)
    if getattr(reward, "__name__", None) != name:
        raise ValueError(
            f"reward {name!r}: its factory returned a function named "
            f"{getattr(reward, '__name__', None)!r}; set __name__ = {name!r}"
        )
    return reward


def build_rewards(
    weights: dict[str, float],
    judge: Judge,
    length_limit: int,
    taggers: dict[str, Tagger] | None = None,
) -> tuple[list[Reward], list[float]]:
    """The components with nonzero weight and their weights, for ``GRPOConfig(reward_weights=...)``.

    Components come from the registry (``rewards.registry``: built-ins, then plug-ins).
    ``taggers``: behaviour name -> tagger; a weight under such a name adds a ``behaviour``
    shaping component (after the registered ones, in the order of ``taggers``).
    """
    taggers = taggers or {}
    factories = registered_rewards()
    known = (*factories, *taggers)
    check_weights(weights, known)
    context = RewardContext(judge=judge, length_limit=length_limit)
    chosen = [name for name in known if weights.get(name, 0) != 0]
    made = [
        behaviour(name, judge, taggers[name])
        if name in taggers
        else make_reward(name, context, factories)
        for name in chosen
    ]
    shared = SharedBatch()  # the components judge each batch once between them
    return [_sharing(f, shared) for f in made], [float(weights[name]) for name in chosen]


def _sharing(component: Reward, shared: SharedBatch) -> Reward:
    """``component`` reading the batch it shares with the others of its ``build_rewards``."""

    def reward(prompts: list, completions: list, **columns: Any) -> list[float | None]:
        if not completions:
            return []
        scored = shared(component.__name__, completions, columns)
        return component(prompts, completions, **{**columns, "scored": scored})

    reward.__name__ = reward.__qualname__ = component.__name__
    return reward
