"""Multi-digit addition, subtraction and multiplication.

Difficulty sets the number of operands and digits. Multiplication binds tighter than
addition and subtraction; every intermediate result stays non-negative so the worked
solution is plain column arithmetic. A Challenger proposes a task as its expression
(``12+34*5``); its level is the easiest one whose tasks can look like it.
"""

from __future__ import annotations

import dataclasses
import random
import re

from envs.base import Environment, Task, Verdict, make_task
from envs.proposals import Rejected

# level -> (operands, max digits per operand, operators)
LEVELS = {
    1: (2, 2, "+-"),
    2: (2, 3, "+-*"),
    3: (2, 4, "+-*"),
    4: (3, 3, "+-*"),
    5: (3, 4, "+-*"),
    6: (4, 5, "+-*"),
}
MAX_OPERANDS = max(operands for operands, _, _ in LEVELS.values())
MAX_DIGITS = max(digits for _, digits, _ in LEVELS.values())
_INT = re.compile(r"[+-]?[0-9]{1,64}")  # not \d: it admits other scripts' digits
_PROPOSAL = re.compile(r"[0-9]+(?:[+*-][0-9]+)*")
# Arithmetic this environment does not pose (parentheses, division) is unparsable;
# any other character is not arithmetic at all (a name, a call) and so unsafe.
_ARITHMETIC = re.compile(r"[0-9+\-*/()]*")
_SPACE = re.compile(r"[ \t\n]")
_OP = re.compile(r"[+*-]")


class Arithmetic(Environment):
    name = "arithmetic"
    levels = tuple(LEVELS)

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        operands, digits, ops = LEVELS[difficulty]
        while True:
            chosen = [rng.choice(ops) for _ in range(operands - 1)]
            numbers = []
            for i in range(operands):
                width = rng.randint(1, digits)
                # A multiplier stays short so partial products remain a handful of steps.
                if (i > 0 and chosen[i - 1] == "*") or (i < operands - 1 and chosen[i] == "*"):
                    width = rng.randint(1, max(1, (digits + 1) // 2))
                numbers.append(rng.randint(0 if width == 1 else 10 ** (width - 1), 10**width - 1))
            steps, value = _evaluate(numbers, chosen)
            if steps is not None:
                break
        return _make_task(numbers, chosen, steps, value)

    def check(self, answer: str, task: Task) -> Verdict:
        return check_integer(answer, task)

    def solution(self, task: Task) -> list[str]:
        return list(task.metadata["steps"])

    def from_proposal(self, content: str) -> Task:
        """The task of computing ``content``, an expression like ``12+34*5`` (spaces ignored)."""
        expression = _SPACE.sub("", content)
        if not _PROPOSAL.fullmatch(expression):
            if not _ARITHMETIC.fullmatch(expression):
                raise Rejected("unsafe", "forbidden_character")
            raise Rejected("unparsable", "malformed")
        operands, ops = _OP.split(expression), _OP.findall(expression)
        if len(operands) < 2:
            raise Rejected("invalid", "too_few_operands")
        if any(len(text) > 1 and text.startswith("0") for text in operands):
            raise Rejected("invalid", "leading_zero")
        # Bounds before int() and _evaluate, so a huge proposal costs nothing.
        if len(operands) > MAX_OPERANDS or any(len(text) > MAX_DIGITS for text in operands):
            raise Rejected("invalid", "too_large")
        numbers = [int(text) for text in operands]
        steps, value = _evaluate(numbers, ops)
        if steps is None:
            raise Rejected("invalid", "negative_intermediate")
        level = level_of(numbers, ops)
        if level is None:
            raise Rejected("invalid", "too_large")
        return dataclasses.replace(_make_task(numbers, ops, steps, value), difficulty=level)

    def proposal(self, task: Task) -> str:
        """The task's expression, as its prompt shows it."""
        return str(task.metadata["expression"])


def level_of(numbers: list[int], ops: list[str]) -> int | None:
    """The easiest level with enough operands, wide enough operands and every operator used."""
    width = max(len(str(n)) for n in numbers)
    for level in sorted(LEVELS):
        operands, digits, allowed = LEVELS[level]
        if operands >= len(numbers) and digits >= width and set(ops) <= set(allowed):
            return level
    return None


def check_integer(answer: str, task: Task) -> Verdict:
    """Exact integer match; spaces and a leading plus sign are forgiven, anything else is wrong."""
    text = answer.replace(" ", "")
    if not _INT.fullmatch(text):
        return Verdict(0.0, "answer", answer, "not_an_integer")
    right = int(text) == int(task.answer)
    return Verdict(float(right), "answer", answer, "correct" if right else "wrong")


def _make_task(numbers: list[int], ops: list[str], steps: list[str], value: int) -> Task:
    """The task of computing ``numbers`` joined by ``ops``, given its ``_evaluate`` result."""
    expression = _join(numbers, ops)
    return make_task(f"Compute {expression}.", str(value), expression=expression, steps=steps)


def _join(numbers: list[int], ops: list[str]) -> str:
    parts = [str(numbers[0])]
    for op, n in zip(ops, numbers[1:], strict=True):
        parts += [op, str(n)]
    return "".join(parts)


def _evaluate(numbers: list[int], ops: list[str]) -> tuple[list[str] | None, int]:
    """Worked steps and value; steps is None if an intermediate result goes negative."""
    steps: list[str] = []
    terms, signs = [numbers[0]], []
    for op, n in zip(ops, numbers[1:], strict=True):
        if op == "*":
            steps += _multiply(terms[-1], n)
            terms[-1] *= n
        else:
            terms.append(n)
            signs.append(op)
    value = terms[0]
    for op, n in zip(signs, terms[1:], strict=True):
        if op == "-" and n > value:
            return None, 0
        steps += _add(value, n) if op == "+" else _subtract(value, n)
        value = value + n if op == "+" else value - n
    return steps, value


def _digits(n: int, width: int) -> list[int]:
    return [int(c) for c in str(n).zfill(width)[::-1]]


def _add(a: int, b: int) -> list[str]:
    width = max(len(str(a)), len(str(b)))
    steps, carry = [], 0
    for x, y in zip(_digits(a, width), _digits(b, width), strict=True):
        total = x + y + carry
        steps.append(f"{x}+{y}{'+1' if carry else ''}={total}")
        carry = total // 10
    return (steps if width > 1 else []) + [f"{a}+{b}={a + b}"]


def _subtract(a: int, b: int) -> list[str]:
    width = len(str(a))
    steps, borrow = [], 0
    for x, y in zip(_digits(a, width), _digits(b, width), strict=True):
        y += borrow
        borrow = int(x < y)
        steps.append(f"{x + 10 * borrow}-{y}={x + 10 * borrow - y}")
    return (steps if width > 1 else []) + [f"{a}-{b}={a - b}"]


def _multiply(a: int, b: int) -> list[str]:
    partials = [a * int(d) * 10**i for i, d in enumerate(str(b)[::-1])]
    steps = [
        f"{a}*{d}{'0' * i}={p}" for i, (d, p) in enumerate(zip(str(b)[::-1], partials, strict=True))
    ]
    if len(partials) > 1:
        steps.append("+".join(map(str, partials)) + f"={a * b}")
    return steps
