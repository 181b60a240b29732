"""The environment registry: built-ins by explicit import, third parties by entry point.

A third-party package registers an environment class in its ``pyproject.toml``::

    [project.entry-points."selfplay.envs"]
    my_task = "my_package.my_task:MyTask"

The entry-point name must equal the class's ``name``; a name registered twice is an error.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from envs.arithmetic import Arithmetic
from envs.base import Environment
from envs.clarify import Clarify
from envs.countdown import Countdown
from envs.errors import UnknownEnvironment
from envs.modular import Modular
from envs.programs import Abduction, Induction, Programs
from envs.reasoning_gym import ReasoningGym
from envs.verifiers import Verifiers

ENTRY_POINT_GROUP = "selfplay.envs"

ENVS: dict[str, type[Environment]] = {
    "arithmetic": Arithmetic,
    "countdown": Countdown,
    "modular": Modular,
    "clarify": Clarify,
    "programs": Programs,
    "programs_abduction": Abduction,
    "programs_induction": Induction,
    "reasoning_gym": ReasoningGym,
    "verifiers": Verifiers,
}


def registered_envs() -> dict[str, type[Environment]]:
    """Built-in environments plus those registered through the ``selfplay.envs`` entry points."""
    found = dict(ENVS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            raise ValueError(
                f"environment {ep.name!r} is registered twice (entry point {ep.value!r} "
                f"clashes with {found[ep.name].__module__}.{found[ep.name].__qualname__})"
            )
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Environment)):
            raise TypeError(
                f"entry point {ep.name!r} = {ep.value!r} is not an envs.Environment subclass"
            )
        if cls.name != ep.name:
            raise ValueError(f"entry point {ep.name!r} loads a class whose name is {cls.name!r}")
        found[ep.name] = cls
    return found


def load_env(name: str, **options) -> Environment:
    """Instantiate the environment registered as ``name`` with its options."""
    envs = registered_envs()
    if name not in envs:
        raise UnknownEnvironment(f"unknown environment {name!r}; known: {', '.join(sorted(envs))}")
    try:
        return envs[name](**options)
    except TypeError as err:
        raise ValueError(f"environment {name!r}: bad options {options}: {err}") from None
