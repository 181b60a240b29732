"""(a ∘ b) mod p: the task on which grokking was first seen.

Difficulty sets how large the prime modulus can be and which operators appear. A fixed
modulus (``load_env("modular", modulus=97)``) gives the classic grokking set-up, with
difficulty then choosing only the operators.
"""

from __future__ import annotations

import functools
import random

from envs.arithmetic import check_integer
from envs.base import Environment, Task, Verdict, make_task

# level -> (largest modulus, operators)
LEVELS = {
    1: (7, "+"),
    2: (13, "+-"),
    3: (31, "+-*"),
    4: (97, "+-*"),
    5: (257, "+-*"),
    6: (1021, "+-*"),
}


def _primes(upto: int) -> list[int]:
    return [n for n in range(5, upto + 1) if all(n % d for d in range(2, int(n**0.5) + 1))]


@functools.cache
def _candidates(largest: int) -> list[int]:
    """Primes in the upper two thirds of the range: a level's moduli are of its own size."""
    return [q for q in _primes(largest) if q > largest // 3]


class Modular(Environment):
    name = "modular"
    levels = tuple(LEVELS)

    def __init__(self, modulus: int | None = None):
        if modulus is not None and (not isinstance(modulus, int) or modulus < 2):
            raise ValueError(
                f"environment 'modular': modulus must be an integer >= 2, got {modulus!r}"
            )
        self.modulus = modulus

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        largest, ops = LEVELS[difficulty]
        p = self.modulus or rng.choice(_candidates(largest))
        a, b, op = rng.randrange(p), rng.randrange(p), rng.choice(ops)
        raw = a + b if op == "+" else a - b if op == "-" else a * b
        quotient, rest = divmod(raw, p)
        steps = [f"{a}{op}{b}={raw}", f"{raw}={quotient}*{p}+{rest}"]
        return make_task(f"Compute ({a}{op}{b}) mod {p}.", str(rest), modulus=p, steps=steps)

    def check(self, answer: str, task: Task) -> Verdict:
        return check_integer(answer, task)

    def solution(self, task: Task) -> list[str]:
        return list(task.metadata["steps"])
