"""The parts every transcript row is built from, named by ``selfplay.transcripts.schema``:
the head (run, step, role, group), the task's columns and the judge's verdict. The writers
(the recorder, the Challenger's rows, evaluation) build their rows from these."""

from __future__ import annotations

from typing import Any

from envs import Task, Verdict
from selfplay.transcripts import schema


def head(run: str, step: int, role: str, group: int) -> dict[str, Any]:
    """What every row starts with (``schema.HEAD_COLUMNS``)."""
    return {schema.RUN: run, schema.STEP: step, schema.ROLE: role, schema.GROUP: group}


def task_fields(task: Task) -> dict[str, Any]:
    """The task's columns of a transcript row (``schema.TASK_COLUMNS``)."""
    return {
        schema.TASK_ID: task.task_id,
        schema.ENV: task.env,
        schema.DIFFICULTY: task.difficulty,
        schema.SPECIFIED: task.specified,
        schema.PROMPT: task.prompt,
        schema.ANSWER: task.answer,
    }


def verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """The judge's verdict as columns (``schema.VERDICT_COLUMNS``)."""
    return {
        schema.VERDICT_KIND: verdict.kind,
        schema.VERDICT_PARSED: verdict.parsed,
        schema.VERDICT_SCORE: verdict.score,
        schema.VERDICT_REASON: verdict.reason,
    }
