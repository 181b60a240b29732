"""selfplay's environments as verifiers environments, for ``vf-eval``, prime-rl and anything
else that loads a verifiers module by name::

    vf-eval selfplay.interop.verifiers -a '{"env": "countdown", "n": 20}' -m MODEL -b URL

``load_environment`` returns a ``vf.SingleTurnEnv`` over ``n`` tasks per level, rebuilt from
``(seed, index, level)`` as selfplay builds them. A row is ``selfplay.recorder.task_row`` (the
chat prompt after ``system_prompt``, by default the run config's default, which is none), with
the reference ``answer`` (for display and for rubrics that want it) and the Task as JSON
in ``info["selfplay_task"]``. The rubric's one reward function, ``selfplay_score``, rebuilds
the Task from it and scores the whole reply with the environment's own scorer, so the score is
exactly selfplay's. The Task is not kept in a ``task`` column or ``info["task"]``: verifiers
reads either as a taskset payload and puts it in the row's place.

A scorer that raises makes ``selfplay_score`` raise; verifiers' own scoring logs that and
counts 0.0 (``envs.verifiers`` scores the other way round and lets it raise).
"""

from __future__ import annotations

from typing import Any

from envs import Environment, UnknownEnvironment, load_env, task_from_json
from envs.verifiers import import_verifiers

TASK_KEY = "selfplay_task"
"""The key of ``info`` that holds the Task as JSON."""


def load_environment(
    env: str = "arithmetic",
    levels: int | list[int] | None = None,
    n: int = 100,
    seed: int = 0,
    system_prompt: str | None = None,
    **options: Any,
) -> Any:
    """A ``vf.SingleTurnEnv`` of ``n`` tasks per level of selfplay environment ``env``.

    ``levels``: one level or a list (all the environment's levels by default).
    ``system_prompt``: the run config's default (``RunConfig.system_prompt``) when None.
    ``options`` go to the environment (``load_env(env, **options)``).
    """
    vf = import_verifiers()
    from datasets import Dataset

    from selfplay.config.run import RunConfig
    from selfplay.recorder import task_row
    from selfplay.sandbox import equip

    try:
        environment = equip(load_env(env, **options))
    except UnknownEnvironment as err:
        raise ValueError(str(err)) from None
    chosen = chosen_levels(environment, levels)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of tasks per level, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, not {seed!r}")
    system = RunConfig.system_prompt if system_prompt is None else system_prompt
    rows = []
    for level in chosen:
        for index in range(n):
            task = environment.task(seed, index, level)
            row = task_row(task, system=system)
            info = {TASK_KEY: row.pop("task")}
            rows.append({**row, "answer": task.answer or "", "info": info})
    parser = vf.Parser()  # the reply as written: selfplay's scorer parses it
    rubric = vf.Rubric(funcs=[selfplay_scorer(environment)], weights=[1.0], parser=parser)
    return vf.SingleTurnEnv(dataset=Dataset.from_list(rows), parser=parser, rubric=rubric)


def chosen_levels(environment: Environment, levels: int | list[int] | None) -> list[int]:
    """``levels`` as a list, each checked to be one of the environment's (all when None)."""
    if levels is None:
        return list(environment.levels)
    chosen = [levels] if isinstance(levels, int) else list(levels)
    if not chosen:
        raise ValueError(f"environment {environment.name!r}: levels is empty")
    for level in chosen:
        if isinstance(level, bool) or level not in environment.levels:
            raise ValueError(
                f"environment {environment.name!r} has no level {level!r}; "
                f"its levels are {list(environment.levels)}"
            )
    return chosen


def selfplay_scorer(environment: Environment) -> Any:
    """The rubric's reward function: ``environment.score`` of the reply on the row's Task."""

    def selfplay_score(completion: Any, info: dict[str, Any], parser: Any) -> float:
        """selfplay's score of the last assistant reply, on the Task in ``info``."""
        if not isinstance(info, dict) or TASK_KEY not in info:
            raise ValueError(f"selfplay_score: the row's info has no {TASK_KEY!r}: {info!r}")
        task = task_from_json(info[TASK_KEY])
        if task.env != environment.name:
            raise ValueError(
                f"selfplay_score: task {task.task_id} is not from environment {environment.name!r}"
            )
        return environment.score(parser.parse_answer(completion) or "", task).score

    return selfplay_score
