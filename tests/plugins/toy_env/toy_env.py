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
