"""Countdown: reach a target from given numbers with + - * / and parentheses.

Difficulty sets how many numbers are given and how large numbers and targets get. The
ground truth is a random expression over some of the numbers whose every intermediate
result is a positive integer. The scorer accepts any expression that uses each given
number at most once and equals the target exactly; rationals along the way are fine.
A Challenger proposes a task as an expression (``(25+50)*3-7``): the numbers it uses
are given and its value is the target.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from envs.base import Environment, Task, Verdict, make_task
from envs.proposals import Rejected

# level -> (numbers given, largest small number, big numbers among them, largest target)
LEVELS = {
    1: (2, 9, 0, 99),
    2: (3, 10, 0, 199),
    3: (4, 10, 1, 499),
    4: (5, 12, 1, 999),
    5: (6, 15, 2, 999),
}
BIG = (25, 50, 75, 100)
MAX_NUMBERS = max(count for count, _, _, _ in LEVELS.values())
MAX_TARGET = max(cap for _, _, _, cap in LEVELS.values())
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
# Bounds that keep a hostile answer cheap: a real answer needs under 40 tokens
# and 6 levels of parentheses, so these reject nothing honest.
MAX_TOKENS = 256
MAX_DEPTH = 32
_ALLOWED = re.compile(r"[0-9+\-*/() \t\n]*")
_TOKEN = re.compile(r"[0-9]+|[-+*/()]")

Node = int | tuple  # an integer literal, or (op, left, right)


class Countdown(Environment):
    name = "countdown"
    levels = tuple(LEVELS)

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        """Numbers, a random expression over at least two of them, and its value as target."""
        count, small, big, cap = LEVELS[difficulty]
        while True:
            smalls = [rng.randint(1, small) for _ in range(count - big)]
            numbers = sorted(rng.sample(BIG, big) + smalls)
            # Use most of the numbers, so more numbers given means a longer solution.
            used = rng.sample(numbers, rng.randint(max(2, count - 2), count))
            tree = _random_tree(rng, used, cap)
            if tree is None:
                continue
            target = _evaluate(tree)
            if target.denominator == 1 and target > 0 and int(target) not in numbers:
                break
        return _make_task(numbers, tree, int(target))

    def check(self, answer: str, task: Task) -> Verdict:
        """Correct when the expression parses, uses only given numbers, and equals the target."""
        try:
            tokens = _tokenize(answer)
            tree = _parse(tokens)
        except ValueError:
            return Verdict(0.0, "answer", answer, "unparsable")
        given = Counter(task.metadata["numbers"])
        used = Counter(t for t in tokens if isinstance(t, int))
        if any(n not in given for n in used):
            return Verdict(0.0, "answer", answer, "number_not_given")
        if any(times > given[n] for n, times in used.items()):
            return Verdict(0.0, "answer", answer, "number_reused")
        try:
            value = _evaluate(tree)
        except ZeroDivisionError:
            return Verdict(0.0, "answer", answer, "wrong")
        right = value == task.metadata["target"]
        return Verdict(float(right), "answer", answer, "correct" if right else "wrong")

    def solution(self, task: Task) -> list[str]:
        """One step per operation of the ground-truth expression, e.g. ``25+50=75``."""
        steps: list[str] = []
        _evaluate(_parse(_tokenize(task.answer or "")), steps)
        return steps

    def from_proposal(self, content: str) -> Task:
        """The task of reaching ``content``'s value from exactly the numbers it uses."""
        if not _ALLOWED.fullmatch(content):
            raise Rejected("unsafe", "forbidden_character")
        try:
            tokens = _tokenize(content)
            tree = _parse(tokens)
        except ValueError:
            raise Rejected("unparsable", "malformed") from None
        numbers = sorted(t for t in tokens if isinstance(t, int))
        if len(numbers) < 2:
            raise Rejected("invalid", "too_few_numbers")
        if 0 in numbers:
            raise Rejected("invalid", "zero")
        if len(numbers) > MAX_NUMBERS or max(numbers) > max(BIG):
            raise Rejected("invalid", "too_large")
        try:
            value = _evaluate(tree)
        except ZeroDivisionError:
            raise Rejected("invalid", "division_by_zero") from None
        if value.denominator != 1:
            raise Rejected("invalid", "not_integer")
        if value <= 0:
            raise Rejected("invalid", "not_positive")
        if value > MAX_TARGET:
            raise Rejected("invalid", "too_large")
        target = int(value)
        if target in numbers:
            raise Rejected("invalid", "trivial")
        level = level_of(numbers, target)
        if level is None:
            raise Rejected("invalid", "too_large")
        return dataclasses.replace(_make_task(numbers, tree, target), difficulty=level)

    def proposal(self, task: Task) -> str:
        """The ground-truth expression: proposed, it gives back the numbers it uses and the target."""
        if task.answer is None:
            raise ValueError(f"{self.name}: task {task.task_id} has no answer to propose")
        return task.answer


def level_of(numbers: list[int], target: int) -> int | None:
    """The easiest level with room for ``numbers`` and ``target``: enough numbers, a high
    enough target cap, and every number small enough or one of at most ``big`` from BIG."""
    for level in sorted(LEVELS):
        count, small, big, cap = LEVELS[level]
        large = [n for n in numbers if n > small]
        if (
            count >= len(numbers)
            and cap >= target
            and len(large) <= big
            and all(n in BIG for n in large)
        ):
            return level
    return None


def _make_task(numbers: list[int], tree: Node, target: int) -> Task:
    """The task of making ``target`` from ``numbers`` (sorted), ``tree`` its ground truth."""
    prompt = f"Use {' '.join(map(str, numbers))} to make {target}."
    return make_task(prompt, _render(tree), numbers=numbers, target=target)


def _apply(op: str, a: int, b: int) -> int | None:
    """``a op b`` if it is a positive integer that does not merely repeat ``a`` (no *1, /1)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a > b else None
    if op == "*":
        return a * b if b > 1 and a > 1 else None
    return a // b if b > 1 and a % b == 0 else None


def _random_tree(rng: random.Random, numbers: list[int], cap: int) -> Node | None:
    """Combine random pairs until one expression is left; None if a pair admits no operator."""
    pool: list[tuple[int, Node]] = [(n, n) for n in numbers]
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        (a, left), (b, right) = pool[i], pool[j]
        for op in rng.sample("+-*/", 4):
            value = _apply(op, a, b)
            if value is not None and value <= cap:
                break
        else:
            return None
        pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [(value, (op, left, right))]
    return pool[0][1]


def _render(node: Node) -> str:
    """Infix with just the parentheses that make it parse back to the same tree."""
    if isinstance(node, int):
        return str(node)
    op, left, right = node
    text_left, text_right = _render(left), _render(right)
    if isinstance(left, tuple) and PRECEDENCE[left[0]] < PRECEDENCE[op]:
        text_left = f"({text_left})"
    # An equal-precedence right operand keeps its parentheses too: a-(b-c) is not a-b-c.
    if isinstance(right, tuple) and PRECEDENCE[right[0]] <= PRECEDENCE[op]:
        text_right = f"({text_right})"
    return f"{text_left}{op}{text_right}"


def _evaluate(node: Node, steps: list[str] | None = None) -> Fraction:
    """Exact value; appends one ``a+b=c`` step per operation to ``steps`` if given."""
    if isinstance(node, int):
        return Fraction(node)
    op, left, right = node
    a, b = _evaluate(left, steps), _evaluate(right, steps)
    value = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b
    if steps is not None:
        steps.append(f"{a}{op}{b}={value}")
    return value


def _tokenize(text: str) -> list[int | str]:
    """Integers, operators and parentheses; ValueError on anything else or too many tokens."""
    # [0-9] where str.isdigit would also admit superscripts and other scripts' digits.
    if not _ALLOWED.fullmatch(text):
        raise ValueError("unexpected character")
    tokens = _TOKEN.findall(text)
    if len(tokens) > MAX_TOKENS:
        raise ValueError("too many tokens")
    return [int(t) if t.isdigit() else t for t in tokens]


def _parse(tokens: list[int | str]) -> Node:
    """Recursive descent with the usual precedence; no unary minus; ValueError if malformed."""
    pos, depth = 0, 0

    def peek() -> int | str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> int | str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError("unexpected end")
        pos += 1
        return tokens[pos - 1]

    def expression() -> Node:
        return chain(term, ("+", "-"))

    def term() -> Node:
        return chain(factor, ("*", "/"))

    def chain(operand: Callable[[], Node], ops: tuple[str, str]) -> Node:
        node = operand()  # a loop, not recursion: a long a+b+c+... costs no stack
        while peek() in ops:
            op = take()
            node = (op, node, operand())
        return node

    def factor() -> Node:
        nonlocal depth
        token = take()
        if isinstance(token, int):
            return token
        if token != "(":
            raise ValueError(f"unexpected {token!r}")
        depth += 1
        if depth > MAX_DEPTH:
            raise ValueError("nested too deep")
        node = expression()
        if take() != ")":
            raise ValueError("unbalanced parentheses")
        depth -= 1
        return node

    tree = expression()
    if pos != len(tokens):
        raise ValueError("trailing tokens")
    return tree
