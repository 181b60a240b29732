"""Any single-turn verifiers environment as an environment, scored by its own rubric.

verifiers (Prime Intellect's library, the Environments Hub's format) is an optional dependency
(the ``verifiers`` extra, pinned to 0.3.1, the newest release with the classic API that
published environments are written in: ``vf.SingleTurnEnv``, ``vf.Rubric``, a module's
``load_environment(**kwargs)``; 0.4.0 keeps only the ``verifiers.v1`` rewrite). It is imported
only when a ``Verifiers`` is built, so ``envs`` itself stays standard-library only.

``load_env("verifiers", module="vf_quiz", **env_args)`` imports ``module`` and calls its
``load_environment(**env_args)``. An Environments Hub id (``owner/vf-name``) names its module
as ``vf-eval`` reads it (``vf_name``).

A task is a row of the environment's training dataset (its eval dataset when it has none),
drawn by the task's generator, so it is rebuilt from its id as long as the module builds the
same dataset. Its prompt is the text of the row's last user message: the row's system prompt
and few-shot turns are left out, since selfplay puts its own system prompt first. The row
travels whole in ``Task.metadata["row"]``; the rubric sees it as verifiers built it.

Levels are the values of the dataset's integer ``difficulty`` column (the column
``selfplay.interop.verifiers`` writes) where it has one, else a single level, 1.

Scoring: the completion is parsed in selfplay's one format first, so a malformed completion
or an ``<ask>`` never reaches the rubric. The rubric sees the final answer as the assistant's
whole reply, written with ``answer_format`` (``<answer>{answer}</answer>`` by default, which an
``XMLParser`` reads; ``\\boxed{{answer}}`` for a rubric that reads boxed answers): every
selfplay judge scores the parsed answer, so the rubric does too. The reward is the rubric's
weighted sum as ``Rubric.score_rollout`` computes it (its ``score_objects``, its argument
binding, its weights; a ``RubricGroup`` adds up its rubrics), except that a reward function
that raises makes the score raise with the task id, where verifiers logs it and counts 0.0.
Functions of weight 0 (metrics) are not called. A reward outside [0, 1] raises.

Refused when built: multi-turn and tool environments, rubrics with group reward functions
(they score several rollouts together) and rubrics with their own ``score_rollout``.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import inspect
import json
import random
import signal
from collections.abc import Iterator
from typing import Any

from envs.base import Environment, Task, Verdict, make_task
from envs.errors import UserError

LEVEL_COLUMN = "difficulty"
"""The dataset column whose integer values are the levels."""
ANSWER_FORMAT = "<answer>{answer}</answer>"
"""How the final answer is shown to the rubric by default; ``{answer}`` is replaced."""


class NoModule(UserError, ImportError):
    """No verifiers module was named. An ImportError too, so the listings that skip an
    environment whose optional parts are missing (``selfplay envs``) skip this one, saying why."""


def import_verifiers() -> Any:
    """The ``verifiers`` module (classic API), or an ImportError that says how to install it."""
    try:
        import verifiers
    except ImportError as err:
        raise ImportError(
            "the verifiers environment needs the optional verifiers package; "
            "install the `verifiers` extra: pip install -e '.[verifiers]'"
        ) from err
    try:
        verifiers.SingleTurnEnv  # noqa: B018  (0.3.x loads its classic API on first touch)
    except AttributeError:
        raise ImportError(
            f"verifiers {verifiers.__version__} has no classic API (vf.SingleTurnEnv); "
            "install the `verifiers` extra, which pins the version selfplay is tested with"
        ) from None
    return verifiers


class Verifiers(Environment):
    """A single-turn verifiers environment, chosen by module; see the module docstring."""

    name = "verifiers"
    levels = (1,)

    def __init__(
        self, module: str | None = None, answer_format: str = ANSWER_FORMAT, **env_args: Any
    ) -> None:
        if module is None:
            raise NoModule(
                "the verifiers environment wraps a verifiers module: name it, "
                "e.g. load_env('verifiers', module='vf_quiz', **env_args)"
            )
        if not isinstance(module, str) or not module.strip():
            raise ValueError(f"verifiers: module must be a module name, not {module!r}")
        if "{answer}" not in answer_format:
            raise ValueError(f"verifiers: answer_format {answer_format!r} has no '{{answer}}'")
        self.module, self.answer_format, self.env_args = module, answer_format, dict(env_args)
        self._loaded: tuple[Any, Any, dict[int, list[int]]] | None = None
        self.levels = tuple(sorted(self._load()[2]))

    # The verifiers environment (datasets, clients) is not sent to other processes (Ray,
    # multiprocessing): a copy loads the module again where it is first used.
    def __getstate__(self) -> dict[str, Any]:
        keys = ("module", "answer_format", "env_args", "levels")
        return {key: getattr(self, key) for key in keys}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._loaded = None

    def _load(self) -> tuple[Any, Any, dict[int, list[int]]]:
        """(verifiers environment, its dataset, row positions by level), loaded once."""
        if self._loaded is None:
            made = load_module_environment(self.module, self.env_args)
            dataset = made.build_dataset()
            if dataset is None:
                dataset = made.build_eval_dataset()
            if dataset is None or len(dataset) == 0:
                raise ValueError(f"verifiers module {self.module!r}: the dataset is empty")
            self._loaded = (made, dataset, rows_by_level(dataset, self.module))
        return self._loaded

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        """One dataset row of this level, drawn by ``rng``; see the module docstring."""
        _, dataset, by_level = self._load()
        rows = by_level[difficulty]
        position = rows[rng.randrange(len(rows))]
        where = f"verifiers module {self.module!r}, row {position}"
        try:
            row = json.loads(json.dumps(dataset[position]))  # travels in the task as JSON
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: the row is not JSON-serialisable: {err}") from None
        answer = row.get("answer")
        if answer is None or str(answer) == "":
            raise ValueError(f"{where}: the row has no answer; this environment needs one")
        return make_task(
            user_text(row.get("prompt"), where), str(answer), module=self.module, row=row
        )

    def check(self, answer: str, task: Task) -> Verdict:
        """The rubric's weighted reward for the answer, shown to it with ``answer_format``."""
        where = f"environment {self.name!r}, module {self.module!r}, task {task.task_id}"
        if task.metadata.get("module") != self.module:
            raise ValueError(f"{where}: task comes from module {task.metadata.get('module')!r}")
        made = self._load()[0]
        reply = self.answer_format.replace("{answer}", answer)
        state = rollout_state(task.metadata["row"], reply)
        reward = asyncio.run(rubric_reward(made.rubric, state, where))
        if not 0.0 <= reward <= 1.0:  # also rejects NaN
            raise ValueError(f"{where}: the rubric's weighted reward {reward} is outside [0, 1]")
        reason = "correct" if reward == 1.0 else "partial" if reward > 0.0 else "wrong"
        return Verdict(reward, "answer", answer, reason)


def load_module_environment(module: str, env_args: dict[str, Any]) -> Any:
    """``module.load_environment(**env_args)``, checked to be one this environment can score.

    verifiers installs SIGINT and SIGTERM handlers whenever an environment is built (to tear it
    down); the process's own handlers are put back, since the trainer owns the process.
    """
    vf = import_verifiers()
    from verifiers.utils.env_utils import env_module_name

    name = env_module_name(module)
    try:
        found = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is None or not (name == err.name or name.startswith(err.name + ".")):
            raise  # the module is there but needs something that is not
        raise ValueError(
            f"verifiers module {name!r} (module={module!r}) is not installed: install its "
            "package (an Environments Hub one with `prime env install OWNER/NAME`)"
        ) from None
    load = getattr(found, "load_environment", None)
    if not callable(load):
        raise ValueError(f"verifiers module {name!r} has no load_environment()")
    try:
        inspect.signature(load).bind(**env_args)
    except TypeError as err:
        raise ValueError(f"verifiers module {name!r}: bad env args {env_args}: {err}") from None
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        made = load(**env_args)
    finally:
        for number, handler in handlers.items():
            if handler is not None:
                signal.signal(number, handler)
    refuse_unscorable(vf, made, name)
    return made


def refuse_unscorable(vf: Any, made: Any, module: str) -> None:
    """A ValueError for an environment whose rollouts are not one reply scored alone."""
    where = f"verifiers module {module!r}"
    if not isinstance(made, vf.Environment):
        raise ValueError(
            f"{where}: load_environment() returned a {type(made).__name__}, "
            "not a verifiers Environment"
        )
    if not isinstance(made, vf.SingleTurnEnv):
        raise ValueError(
            f"{where}: {type(made).__name__} is a multi-turn environment; only single-turn "
            "ones (vf.SingleTurnEnv) can be imported"
        )
    if made.tool_defs:
        tools = ", ".join(tool.name for tool in made.tool_defs)
        raise ValueError(
            f"{where}: the environment gives the model tools ({tools}); "
            "tool environments cannot be imported"
        )
    standard = (vf.Rubric.score_rollout, vf.RubricGroup.score_rollout)
    for rubric in rubrics(vf, made.rubric):
        if type(rubric).score_rollout not in standard:
            raise ValueError(
                f"{where}: rubric {type(rubric).__name__} has its own score_rollout, "
                "which this environment cannot reproduce"
            )
    if made.rubric.has_group_rewards:
        raise ValueError(
            f"{where}: the rubric has group reward functions, which score several rollouts "
            "together; a single completion cannot be scored with them"
        )


def rubrics(vf: Any, rubric: Any) -> Iterator[Any]:
    """``rubric`` and, for a ``RubricGroup``, every rubric inside it."""
    yield rubric
    if isinstance(rubric, vf.RubricGroup):
        for part in rubric.rubrics:
            yield from rubrics(vf, part)


def rows_by_level(dataset: Any, module: str) -> dict[int, list[int]]:
    """Row positions by level: the ``difficulty`` column's values, else all rows at level 1."""
    if LEVEL_COLUMN not in dataset.column_names:
        return {1: list(range(len(dataset)))}
    by_level: dict[int, list[int]] = {}
    for position, level in enumerate(dataset[LEVEL_COLUMN]):
        if isinstance(level, bool) or not isinstance(level, int):
            raise ValueError(
                f"verifiers module {module!r}, row {position}: {LEVEL_COLUMN} {level!r} "
                "is not an integer level"
            )
        by_level.setdefault(level, []).append(position)
    return by_level


def user_text(prompt: Any, where: str) -> str:
    """The text of a row's prompt: the last user message's (text parts joined), or the string."""
    if isinstance(prompt, str):
        text = prompt
    else:
        users = [m for m in prompt or [] if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise ValueError(f"{where}: the prompt has no user message")
        content = users[-1].get("content")
        if isinstance(content, list):
            content = " ".join(p["text"] for p in content if isinstance(p, dict) and p.get("text"))
        text = content if isinstance(content, str) else ""
    if not text.strip():
        raise ValueError(f"{where}: the prompt is empty")
    return text


def rollout_state(row: dict[str, Any], reply: str) -> Any:
    """The state a verifiers rollout of ``row`` would end in, ``reply`` its one assistant turn
    (as ``Environment.init_state`` builds it, without a model client)."""
    vf = import_verifiers()
    from verifiers.types import flatten_task_input
    from verifiers.utils.message_utils import normalize_messages

    given = copy.deepcopy(row)
    if isinstance(given.get("info"), str):
        given["info"] = json.loads(given["info"])
    task_input = flatten_task_input(given)
    state = vf.State(input=task_input)
    state["task"] = task_input
    state["prompt"] = normalize_messages(task_input["prompt"], field_name="input.prompt")
    completion = [{"role": "assistant", "content": reply}]
    state["completion"] = normalize_messages(completion, field_name="completion")
    state.update(trajectory=[], reward=None, metrics=None, error=None, is_completed=True)
    return state


async def rubric_reward(rubric: Any, state: Any, where: str) -> float:
    """The rubric's weighted reward on ``state``; a reward function that raises raises here."""
    vf = import_verifiers()
    from verifiers.utils.async_utils import maybe_call_with_named_args

    if isinstance(rubric, vf.RubricGroup):  # its own funcs are unused, as in score_rollout
        return sum([await rubric_reward(part, state, where) for part in rubric.rubrics])
    objects = rubric.score_objects(state)
    total = 0.0
    for func, weight in zip(rubric.funcs, rubric.weights, strict=True):
        if weight == 0:
            continue
        name = getattr(func, "__name__", repr(func))
        try:
            raw = await maybe_call_with_named_args(func, **objects)
        except Exception as err:
            # verifiers logs this and counts 0.0: a bug that would look like a wrong answer.
            raise RuntimeError(
                f"{where}: reward function {name!r} raised {type(err).__name__}: {err}"
            ) from err
        try:
            total += weight * float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: reward function {name!r} returned {raw!r}") from None
    return total
