"""A toy plug-in environment: is a number even or odd?"""

from __future__ import annotations

import random

from envs import Environment, Task, Verdict, make_task


class Parity(Environment):
    """Say whether a number is even or odd; difficulty sets how many digits it has."""

    name = "parity"
    levels = (1, 2, 3)

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        """A number of ``difficulty`` digits; the answer is "even" or "odd"."""
        number = rng.randrange(10 ** (difficulty - 1) if difficulty > 1 else 0, 10**difficulty)
        return make_task(
            f"Is {number} even or odd?", "even" if number % 2 == 0 else "odd", number=number
        )

    def check(self, answer: str, task: Task) -> Verdict:
        """Exact match, ignoring case and surrounding spaces."""
        right = answer.strip().lower() == task.answer
        return Verdict(float(right), "answer", answer, "correct" if right else "wrong")


def brevity(context):
    """A reward factory from another package: 1.0 for a completion of at most 40 characters.

    Registered under ``selfplay.rewards``; ``context.judge`` is the run's judge (unused here)."""

    def brevity(prompts, completions, **columns):
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        return [1.0 if len(text) <= 40 else 0.0 for text in texts]

    return brevity


class Strict:
    """A judge from another package: the environment's own score, partial credit counted as 0."""

    def __init__(self, envs):
        self.envs = envs
        self._n = 0

    def __call__(self, tasks, completions):
        if len(tasks) != len(completions):
            raise ValueError(f"{len(tasks)} tasks but {len(completions)} completions")
        verdicts = []
        for task, completion in zip(tasks, completions, strict=True):
            v = self.envs[task.env].score(completion, task)
            verdicts.append(Verdict(1.0 if v.score == 1.0 else 0.0, v.kind, v.parsed, v.reason))
        self._n += len(verdicts)
        return verdicts

    def stats(self):
        n, self._n = self._n, 0
        return {"judge/n": float(n)}
