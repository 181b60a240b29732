"""What the model Judge reads and answers: the rubric, the judge prompt, the candidate line and
the yes/no reply.

The Judge is asked about a task (``judge_prompt``)::

    <rubric>
    Task: <the task's prompt>

and answers, as the assistant, with its own reasoning, then the candidate is put to it
(``candidate_line``) and its verdict is the likelier of the replies ``yes`` and ``no``::

    <think>its own working</think>Candidate: <the completion's final answer>
    yes

The rubric comes from the config (``model_judge.rubric``), else from the environment (an
environment class may set a ``rubric`` attribute), else ``DEFAULT_RUBRIC``. Standard library
and ``envs`` only: ``selfplay.judges`` asks with it, ``selfplay.verifier`` scores and teaches.
"""

from __future__ import annotations

from envs import Environment

DEFAULT_RUBRIC = "Is the candidate answer correct?"
YES, NO = "yes", "no"


def rubric_for(env: Environment, configured: str = "") -> str:
    """The rubric a task of ``env`` is judged against: the config's, the env's, or the default."""
    return configured or getattr(env, "rubric", "") or DEFAULT_RUBRIC


def judge_prompt(rubric: str, task_prompt: str) -> str:
    """What the Judge is asked about a task (the candidate comes after its reasoning)."""
    return f"{rubric}\nTask: {task_prompt}"


def candidate_line(answer: str) -> str:
    """The candidate answer, put to the Judge after its reasoning; its verdict follows."""
    return f"Candidate: {answer}\n"


def candidate_of(text: str) -> str:
    """The candidate a judging document states."""
    return text.rsplit("Candidate: ", 1)[1].split("\n", 1)[0]


def verdict_of(text: str) -> str:
    """The yes or no a judging document (or a Judge's completion) ends with; "" for neither."""
    tail = text.rsplit("\n", 1)[-1].strip()
    return tail if tail in (YES, NO) else ""
