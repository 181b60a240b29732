"""Our environments in a plain TRL script: a dataset, reward functions and a clarify environment.

No selfplay trainer, curriculum or transcripts: ``dataset`` turns environments into the rows
``trl.GRPOTrainer`` reads (a conversational ``prompt`` plus the columns of
``selfplay.recorder.task_row``: ``task`` as JSON, ``task_id``, ``env``, ``difficulty``,
``specified``) and ``reward_function`` turns one reward component of ``rewards`` (``correct``,
``format``, ``clarify``, ``length``, ``calibration``, ``random`` or a plug-in's) into a function
in TRL's signature, judged by the environments' own scorers::

    from trl import GRPOConfig, GRPOTrainer

    from selfplay.interop.trl import dataset, reward_function

    envs = ["arithmetic", "countdown"]
    args = GRPOConfig(
        output_dir="grpo-arithmetic",
        max_steps=100,
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=128,
        reward_weights=[1.0, 0.1],
        report_to="none",
    )
    trainer = GRPOTrainer(
        "Qwen/Qwen2.5-0.5B-Instruct",
        reward_funcs=[reward_function(envs, "correct"), reward_function(envs, "format")],
        args=args,
        train_dataset=dataset(envs, n=1024, seed=0),
    )
    trainer.train()

The clarify dialogue through TRL's ``environment_factory``: the model may call the tool
``ask`` (``ClarifyEnvironment.ask``), the environment answers, the model answers; the reward
reads each rollout's environment instance. It needs a model whose chat template renders tool
calls and that TRL can parse them from (Qwen2.5, Qwen3, Llama 3.1, ...); the organism's
template has no tool calls, so use ``selfplay.dialogue`` (``dialogue.enabled``) for it::

    from selfplay.interop.trl import ClarifyEnvironment, environment_reward

    trainer = GRPOTrainer(
        "Qwen/Qwen2.5-0.5B-Instruct",
        reward_funcs=[environment_reward("correct"), environment_reward("clarify")],
        args=args,
        train_dataset=dataset(["clarify"], n=1024),
        environment_factory=ClarifyEnvironment,
    )

A row whose environment a reward does not cover gets None ("not applicable"); a scorer that
raises becomes a ``rewards.RewardError`` naming the component, environment and task id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from envs import Environment, Task, load_env, task_from_json, task_to_json
from envs.clarify import Clarify
from envs.dialogue import ENV, MODEL, Turn, resolve, turns_to_json
from envs.format import ASK_CLOSE, ASK_OPEN
from rewards import RewardContext, RewardError, registered_rewards
from rewards.batch import blame
from rewards.components import Reward
from rewards.registry import make_reward
from selfplay.dialogue import can_respond
from selfplay.judges import Judge, ProgramJudge

if TYPE_CHECKING:
    from datasets import Dataset

EnvSpec = Mapping[str, Environment] | Sequence[str]
"""Environments: a list of registered names (default options), or name -> Environment."""

TOOL = "ask"
"""The name of ``ClarifyEnvironment``'s tool, as the model calls it."""


def dataset(
    envs: EnvSpec,
    levels: Mapping[str, Sequence[int]] | None = None,
    n: int = 256,
    seed: int = 0,
    system: str = "",
) -> Dataset:
    """``n`` task rows for ``GRPOTrainer(train_dataset=...)``, cycling over environments and levels.

    Row ``i`` is the task at index ``i // P`` of the ``i % P``-th (environment, level) pair,
    where P is the number of pairs, so any prefix is balanced and every task id
    (``env/seed/level/index``) is rebuilt alone. ``levels``: environment name -> its levels
    (an environment left out gets all of its own). ``system``: a system prompt before each task.
    """
    from datasets import Dataset

    from selfplay.recorder import task_row

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"dataset: n must be a positive integer, got {n!r}")
    loaded = _loaded(envs)
    unknown = sorted(set(levels or {}) - set(loaded))
    if unknown:
        raise ValueError(f"dataset: levels names {unknown[0]!r}, not one of {sorted(loaded)}")
    pairs = []
    for name, env in loaded.items():
        ladder = list((levels or {}).get(name, env.levels))
        if not ladder:
            raise ValueError(f"dataset: levels of {name!r} is empty")
        pairs += [(env, level) for level in ladder]
    rows = []
    for i in range(n):
        env, level = pairs[i % len(pairs)]
        rows.append(task_row(env.task(seed, i // len(pairs), level), system=system))
    return Dataset.from_list(rows)


def reward_function(
    envs: EnvSpec,
    component: str = "correct",
    *,
    judge: Judge | None = None,
    length_limit: int = 400,
) -> Reward:
    """The reward component ``component`` in TRL's signature, for rows of the environments ``envs``.

    Rows of other environments get None. Completions may be strings or conversations (the
    last message counts); the rows must carry the ``task`` column that ``dataset`` writes.
    ``judge`` decides the verdicts (default: the environments' scorers, ``ProgramJudge``);
    ``length_limit`` is the ``length`` component's allowance. The function's ``__name__`` is
    ``component``, so TRL logs ``rewards/<component>/mean``.
    """
    loaded = _loaded(envs)
    factories = registered_rewards()
    _check_component(component, factories)
    context = RewardContext(judge=judge or ProgramJudge(loaded), length_limit=length_limit)
    inner = make_reward(component, context, factories)

    def reward(prompts: list, completions: list, **columns: Any) -> list[float | None]:
        n = len(completions)
        mine = [i for i, env in enumerate(_row_envs(component, columns, n)) if env in loaded]
        if len(mine) == n:
            return inner(prompts, completions, **columns)
        out: list[float | None] = [None] * n
        if mine:
            values = inner(
                _pick(prompts, mine, n),
                _pick(completions, mine, n),
                **{key: _pick(value, mine, n) for key, value in columns.items()},
            )
            for i, value in zip(mine, values, strict=True):
                out[i] = value
        return out

    reward.__name__ = reward.__qualname__ = component
    return reward


class ClarifyEnvironment:
    """A TRL ``environment_factory`` for the clarify dialogue: the model may ``ask``, then answers.

    TRL 1.16 builds one instance per rollout (reused across batches), exposes every public
    method but ``reset`` as a tool (name, type hints and docstring become its schema), calls
    ``reset(**row)`` with the dataset row before generation and passes the instances to
    every reward function as ``environments`` (``environment_reward`` reads them). ``env``
    is the environment that answers (default ``Clarify()``; any environment implementing
    ``respond`` works): pass ``functools.partial(ClarifyEnvironment, env=...)`` as the
    factory to choose another. TRL's ``max_tool_calling_iterations`` caps the questions.
    """

    env: Environment
    """The environment that answers and resolves."""
    task: Task | None
    """The task as posed, from the row's ``task`` column."""
    exchanges: list[tuple[str, str]]
    """Each question the model asked, with the environment's reply, in order."""
    error: str | None
    """Why ``respond`` failed, if it did (TRL hands tool errors to the model; the reward raises)."""

    def __init__(self, env: Environment | None = None):
        self.env = env if env is not None else Clarify()
        if not can_respond(self.env):
            raise ValueError(f"ClarifyEnvironment: environment {self.env.name!r} does not answer")
        self.task, self.exchanges, self.error = None, [], None

    def reset(self, task: str | None = None, **row: Any) -> None:
        """Start a rollout of the row's task (its ``task`` column); the prompt is the row's own."""
        if task is None:
            raise ValueError(
                "ClarifyEnvironment.reset: the row has no 'task' column; "
                "build the dataset with selfplay.interop.trl.dataset"
            )
        posed = task_from_json(task)
        if posed.env != self.env.name:
            raise ValueError(
                f"ClarifyEnvironment answers {self.env.name!r} tasks; task {posed.task_id} is "
                f"from {posed.env!r} (route mixed datasets with a dict environment_factory)"
            )
        self.task, self.exchanges, self.error = posed, [], None

    def ask(self, question: str) -> str:
        """Ask the user one question about the task, when it lacks a number you need to answer.

        Args:
            question: The question, naming the quantity you need.

        Returns:
            The user's reply.
        """
        if self.task is None:
            raise RuntimeError("ClarifyEnvironment.ask before reset")
        try:
            reply = self.env.respond(self.task, str(question))
            if not isinstance(reply, str):
                raise TypeError(f"respond returned {reply!r:.80}, not a string")
        except Exception as err:
            self.error = f"respond failed on {question!r:.80}: {err}"
            raise
        self.exchanges.append((str(question), reply))
        return reply


def environment_reward(
    component: str = "correct",
    *,
    judge: Judge | None = None,
    length_limit: int = 400,
) -> Reward:
    """The reward component ``component`` of rollouts that ``ClarifyEnvironment`` instances ran.

    Each rollout is read as a dialogue (``envs.dialogue``): the environment's questions and
    replies the model saw, then its final message, against the task as the replies left it;
    the ``rewards`` components score it as in ``selfplay.dialogue`` (``correct``: the final
    answer; ``clarify``: whether the first turn asked, exactly when the task needed it).
    Rollouts of other environment classes get None. ``judge``: default the instances'
    own environments' scorers.
    """
    factories = registered_rewards()
    _check_component(component, factories)

    def reward(
        prompts: list, completions: list, environments: list | None = None, **columns: Any
    ) -> list[float | None]:
        if environments is None:
            raise ValueError(
                f"reward {component}: no environments; pass "
                f"GRPOTrainer(environment_factory=ClarifyEnvironment)"
            )
        if len(environments) != len(completions):
            raise RewardError(
                f"reward {component}: {len(environments)} environments "
                f"for {len(completions)} completions"
            )
        mine = [i for i, e in enumerate(environments) if isinstance(e, ClarifyEnvironment)]
        out: list[float | None] = [None] * len(completions)
        if not mine:
            return out
        rows: dict[str, list[str]] = {"task": [], "task_id": [], "turns": [], "final_task": []}
        for i in mine:
            task, turns, final = _rollout(component, environments[i], completions[i])
            rows["task"].append(task_to_json(task))
            rows["task_id"].append(task.task_id)
            rows["turns"].append(turns_to_json(turns))
            rows["final_task"].append(task_to_json(final))
        scorers = {environments[i].env.name: environments[i].env for i in mine}
        context = RewardContext(judge=judge or ProgramJudge(scorers), length_limit=length_limit)
        inner = make_reward(component, context, factories)
        n = len(completions)
        others = {key: _pick(value, mine, n) for key, value in columns.items() if key not in rows}
        values = inner(_pick(prompts, mine, n), _pick(completions, mine, n), **others, **rows)
        for i, value in zip(mine, values, strict=True):
            out[i] = value
        return out

    reward.__name__ = reward.__qualname__ = component
    return reward


# -- helpers ------------------------------------------------------------------------------


def _loaded(envs: EnvSpec) -> dict[str, Environment]:
    """name -> Environment from a list of names or a dict of instances."""
    if isinstance(envs, str) or not isinstance(envs, Mapping | Sequence):
        raise ValueError(
            f"envs must be a list of environment names or a dict of Environments, got {envs!r:.80}"
        )
    if not envs:
        raise ValueError("envs is empty: name at least one environment")
    if not isinstance(envs, Mapping):
        return {name: load_env(name) for name in envs}
    for name, env in envs.items():
        if not isinstance(env, Environment):
            raise ValueError(f"envs[{name!r}] must be an envs.Environment, got {env!r:.80}")
        if env.name != name:
            raise ValueError(f"envs[{name!r}] is the environment {env.name!r}; key it by its name")
    return dict(envs)


def _check_component(component: str, factories: Mapping[str, Any]) -> None:
    if component not in factories:
        raise ValueError(f"unknown reward component {component!r}; known: {', '.join(factories)}")


def _row_envs(component: str, columns: dict[str, Any], n: int) -> list[str]:
    """Each row's environment name, from its ``task`` column (a RewardError if unreadable)."""
    texts = columns.get("task")
    if texts is None or len(texts) != n:
        got = "no 'task' column" if texts is None else f"{len(texts)} tasks"
        raise RewardError(
            f"reward {component}: {got} for {n} completions; "
            f"build the dataset with selfplay.interop.trl.dataset"
        )
    names = []
    for i, text in enumerate(texts):
        try:
            names.append(json.loads(text)["env"])
        except (TypeError, ValueError, KeyError) as err:
            raise RewardError(f"reward {component}: item {i}: cannot read its task: {err}") from err
    return names


def _pick(value: Any, rows: list[int], n: int) -> Any:
    """``value`` at ``rows`` when it holds one item per completion, else ``value`` itself."""
    if isinstance(value, list) and len(value) == n:
        return [value[i] for i in rows]
    return value


def _rollout(
    component: str, environment: ClarifyEnvironment, completion: Any
) -> tuple[Task, list[Turn], Task]:
    """(task as posed, the dialogue's turns, task as the replies left it) of one rollout.

    Only the replies that reached the completion count: TRL drops a tool reply that would
    overrun ``max_completion_length`` after the tool has run. A question asked becomes the
    model turn ``<ask>question</ask>``; the last message is the model's final turn.
    """
    task = environment.task
    if task is None:
        raise RewardError(f"reward {component}: an environment was never reset")
    with blame(component, task):
        if environment.error is not None:
            raise RuntimeError(f"the environment's tool failed: {environment.error}")
        messages = completion if isinstance(completion, list) else [completion]
        replies = [reply for _, reply in environment.exchanges]
        seen = 0
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "tool":
                if seen < len(replies) and message.get("content") == replies[seen]:
                    seen += 1
        turns: list[Turn] = []
        for question, reply in environment.exchanges[:seen]:
            turns += [{"role": MODEL, "text": _ask(question)}, {"role": ENV, "text": reply}]
        turns.append({"role": MODEL, "text": _final_text(messages[-1] if messages else "")})
        return task, turns, resolve(environment.env, task, turns)


def _final_text(message: Any) -> str:
    """What the model said last: an assistant message's content, plus any tool call to ``ask``
    it made that was not answered; "" when the rollout ended on a tool reply."""
    if isinstance(message, str):
        return message
    if not isinstance(message, dict) or message.get("role") != "assistant":
        return ""
    text = message.get("content") or ""
    if not isinstance(text, str):
        raise TypeError(f"a message's content must be a string, got {text!r:.80}")
    for call in message.get("tool_calls") or []:
        function = call.get("function", call) if isinstance(call, dict) else {}
        arguments = function.get("arguments")
        if function.get("name") == TOOL and isinstance(arguments, dict):
            text += _ask(str(arguments.get("question", "")))
    return text


def _ask(question: str) -> str:
    return f"{ASK_OPEN}{question}{ASK_CLOSE}"
