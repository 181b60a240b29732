"""Dialogue turns: a rollout in which the environment answers the model's ``<ask>``.

A dialogue is a list of turns, ``{"role": "model" | "env", "text": ...}``, starting and
ending with the model: each model turn but the last ended in an ``<ask>`` and the
environment's reply follows it. It travels as JSON in a ``turns`` column beside the
``final_task`` column (the Task as the model faced it after the replies, see
``Environment.resolve``), so reward functions and transcripts read every turn. Standard
library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from envs.base import Environment, Task, task_from_json

MODEL, ENV = "model", "env"
ROLES = (MODEL, ENV)

Turn = dict[str, str]
"""One turn: ``{"role": "model" | "env", "text": ...}``."""


def turns_to_json(turns: list[Turn]) -> str:
    """A dialogue as the JSON string of the ``turns`` column."""
    return json.dumps(check_turns(turns))


def turns_from_json(text: str) -> list[Turn]:
    """The dialogue ``turns_to_json`` wrote; ValueError if it is not a well-formed dialogue."""
    return check_turns(json.loads(text))


def check_turns(turns: Any) -> list[Turn]:
    """``turns`` itself, once checked: model turns alternating with env turns, model first and last."""
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"a dialogue is a non-empty list of turns, got {turns!r:.200}")
    for i, turn in enumerate(turns):
        if not (
            isinstance(turn, dict)
            and set(turn) == {"role", "text"}
            and isinstance(turn["text"], str)
            and turn["role"] == ROLES[i % 2]
        ):
            raise ValueError(
                f"turn {i} of a dialogue must be {{'role': {ROLES[i % 2]!r}, 'text': str}}, "
                f"got {turn!r:.200}"
            )
    if turns[-1]["role"] != MODEL:
        raise ValueError("a dialogue ends with a model turn, not the environment's reply")
    return turns


def resolve(env: Environment, task: Task, turns: list[Turn]) -> Task:
    """The task as the model faced it at the end: ``env.resolve`` applied to each reply in turn."""
    for turn in turns:
        if turn["role"] == ENV:
            task = env.resolve(task, turn["text"])
    return task


@dataclass(frozen=True)
class Dialogue:
    """One completion's dialogue, as reward functions and transcripts read it."""

    task: Task
    """The task as posed."""
    final_task: Task
    """The task as the model faced it after the replies (``resolve``)."""
    turns: list[Turn]

    @property
    def model_texts(self) -> list[str]:
        """What the model said, turn by turn."""
        return [t["text"] for t in self.turns if t["role"] == MODEL]

    @property
    def replies(self) -> int:
        """How many times the environment answered."""
        return sum(t["role"] == ENV for t in self.turns)


def dialogues(columns: dict[str, Any], tasks: list[Task]) -> list[Dialogue] | None:
    """Each completion's Dialogue from the ``turns`` and ``final_task`` columns; None without them.

    ValueError names the item when a column is missing, the wrong length or unreadable.
    """
    if columns.get("turns") is None:
        return None
    for name in ("turns", "final_task"):
        if columns.get(name) is None or len(columns[name]) != len(tasks):
            got = "none" if columns.get(name) is None else len(columns[name])
            raise ValueError(f"dialogue column {name!r}: {got} values for {len(tasks)} completions")
    out = []
    for i, (task, turns, final) in enumerate(
        zip(tasks, columns["turns"], columns["final_task"], strict=True)
    ):
        try:
            final_task = task_from_json(final)
            out.append(Dialogue(task, final_task, turns_from_json(turns)))
        except (ValueError, TypeError) as err:
            raise ValueError(f"item {i}, task {task.task_id}: unreadable dialogue: {err}") from err
        if final_task.env != task.env:
            raise ValueError(
                f"item {i}, task {task.task_id}: final task {final_task.task_id} is of "
                f"environment {final_task.env!r}, not {task.env!r}"
            )
    return out
