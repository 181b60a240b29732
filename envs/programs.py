"""Programs: Absolute Zero's task triplets over short Python functions ``f``.

Each task is about a program defining ``f`` and some inputs. The env option ``kind`` picks
which part the Solver must supply (``load_env("programs", kind="abduction")``; registered
also as ``programs_abduction`` and ``programs_induction``, so one mix can hold all three):

- ``deduction``: the program and an input are shown; the answer is the output, as a Python
  literal. Scored by comparing literals (``ast.literal_eval``), no execution needed.
- ``abduction``: the program and an output are shown; the answer is an argument list, as it
  would appear inside ``f(...)``. Correct when ``f`` of it gives that output.
- ``induction``: input/output pairs and the first line of the program's docstring (if any)
  are shown; the answer is a program defining ``f``. Correct when it gives the outputs on the
  shown inputs and on held-out ones (the last third of the inputs, at least one).

Abduction and induction answers, and every proposal, are untrusted code: they run only
through the injected ``executor`` (in the project, ``selfplay.sandbox.Sandbox().run``), which
keeps this module free of ``selfplay``. Generated tasks come from a library of program
templates, each a source string with a trusted implementation that computes the outputs.

A Challenger proposes a task as a program followed by one or more lines ``>>> f(<args>)``;
outputs are computed by running the program, never taken from the Challenger.
"""

from __future__ import annotations

import ast
import dataclasses
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from envs.base import Environment, Task, Verdict, make_task
from envs.proposals import Rejected

KINDS = ("deduction", "abduction", "induction")
CALLS = 6
"""Inputs per generated task: deduction and abduction use the first, induction all of them."""
MAX_INPUTS = 10
"""More ``>>>`` lines make a proposal invalid: each costs a run."""
MAX_PROGRAM_CHARS = 1500
MAX_PROGRAM_LINES = 60
MAX_OUTPUT_CHARS = 200
"""A longer repr of an output makes a proposal invalid (the prompt must stay short)."""
LEVELS = {1: 25, 2: 60, 3: 200}
"""level -> most AST nodes (``ast.walk``, docstring included) a program of it has. The
templates' one-line bodies have at most 23, their loops or two-step bodies 30 to 59, their
nested loops or several steps 63 to 109 (the tests check each template lands in its level);
the top budget leaves a Challenger room beyond them."""
INPUT_PROMPT = ">>>"


class ExecutionResult(Protocol):
    """What an executor reports about one run (``selfplay.sandbox.Result`` is one)."""

    status: str
    """One of "ok", "timeout", "error" and "killed"."""
    value: str | None
    """The repr of the expression's value when ``status`` is "ok"."""
    error: str
    violation: bool
    """The program tried something the sandbox forbids."""


Executor = Callable[[str, str], ExecutionResult]
"""Runs untrusted ``code``, then evaluates ``expression`` in its namespace."""


class Programs(Environment):
    name = "programs"
    levels = tuple(LEVELS)

    def __init__(self, kind: str = "deduction", executor: Executor | None = None):
        if kind not in KINDS:
            raise ValueError(
                f"environment {self.name!r}: kind must be one of {KINDS}, got {kind!r}"
            )
        self.kind = kind
        self.executor = executor

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        """A template of the level, its parameters and ``CALLS`` distinct inputs, drawn the
        same way whatever the kind, so the three kinds of one task id share program and input."""
        template = rng.choice([t for t in TEMPLATES if t.level == difficulty])
        while True:
            parameters = template.parameters(rng)
            calls: dict[str, tuple] = {}
            while len(calls) < CALLS:
                arguments = template.arguments(rng)
                calls.setdefault(", ".join(map(repr, arguments)), arguments)
            outputs = [repr(template.compute(*a, **parameters)) for a in calls.values()]
            if len(set(outputs)) > 1:  # else the pairs say nothing about f
                break
        task = _make_task(self.kind, template.program(parameters), list(calls), outputs)
        return dataclasses.replace(task, metadata={**task.metadata, "template": template.name})

    def check(self, answer: str, task: Task) -> Verdict:
        """Deduction compares literals; abduction and induction run the answer (``executor``).

        An answer that raises, runs too long or breaks the sandbox's rules scores 0 with reason
        "error", "timeout" (or "killed", over the memory or output limit) or "unsafe".
        """
        kind = task.metadata["kind"]
        if kind == "deduction":
            got = _literal(answer)
            if got is _NOT_LITERAL:
                return Verdict(0.0, "answer", answer, "not_a_literal")
            right = got == _literal(task.answer or "")
            return Verdict(float(right), "answer", answer, "correct" if right else "wrong")
        executor = self._executor(f"scoring {kind} tasks")
        if kind == "abduction":
            try:
                call = ast.parse(f"f({answer})", mode="eval").body
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return Verdict(0.0, "answer", answer, "unparsable")
            # `1) + f(2` would otherwise make the expression something other than one call.
            if not _is_call_of_f(call):
                return Verdict(0.0, "answer", answer, "unparsable")
            result = executor(task.metadata["program"], f"f({answer})")
            return _judge(answer, result, task.metadata["outputs"][0])
        try:
            tree = ast.parse(answer)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return Verdict(0.0, "answer", answer, "unparsable")
        if _function_f(tree) is None:
            return Verdict(0.0, "answer", answer, "no_function_f")
        shown = zip(task.metadata["inputs"], task.metadata["outputs"], strict=True)
        hidden = zip(
            task.metadata["held_out_inputs"], task.metadata["held_out_outputs"], strict=True
        )
        for pairs, wrong in ((shown, "wrong"), (hidden, "wrong_held_out")):
            for arguments, output in pairs:
                verdict = _judge(answer, executor(answer, f"f({arguments})"), output, wrong)
                if verdict.score == 0.0:
                    return verdict
        return Verdict(1.0, "answer", answer, "correct")

    def from_proposal(self, content: str) -> Task:
        """The task of this env's kind about ``content``: a program defining ``f``, then lines
        ``>>> f(<args>)`` whose arguments are literals. Deduction and abduction are about the
        first input; induction shows all but the last third of them (at least one), which are
        held out. Every input is run (``executor``), the first twice to catch nondeterminism."""
        executor = self._executor("from_proposal")
        program, calls = _split_proposal(content)
        try:
            tree = ast.parse(program)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise Rejected("unparsable", "syntax") from None
        if _function_f(tree) is None:
            raise Rejected("invalid", "no_function_f")
        if len(program) > MAX_PROGRAM_CHARS or len(program.splitlines()) > MAX_PROGRAM_LINES:
            raise Rejected("invalid", "too_large")
        level = level_of(program)
        if level is None:
            raise Rejected("invalid", "too_large")
        if len(calls) > MAX_INPUTS:
            raise Rejected("invalid", "too_many_inputs")
        if self.kind == "induction" and len(calls) < 2:
            raise Rejected("invalid", "too_few_inputs")
        outputs = [_run(executor, program, arguments) for arguments in calls]
        if _literal(_run(executor, program, calls[0])) != _literal(outputs[0]):
            raise Rejected("invalid", "nondeterministic")
        return dataclasses.replace(_make_task(self.kind, program, calls, outputs), difficulty=level)

    def challenger_prompt(self) -> str:
        """The proposal format and one generated example (a hub model was never taught it)."""
        example = self.task(0, 0, self.levels[0])
        return PROPOSE.format(kind=self.kind, what=WHAT[self.kind], example=self.proposal(example))

    def proposal(self, task: Task) -> str:
        """The program, then one ``>>>`` line per input the task uses, held-out ones last."""
        inputs = task.metadata["inputs"] + task.metadata.get("held_out_inputs", [])
        lines = [f"{INPUT_PROMPT} f({arguments})" for arguments in inputs]
        return "\n".join([task.metadata["program"], *lines])

    def _executor(self, purpose: str) -> Executor:
        if self.executor is None:
            raise RuntimeError(
                f"environment {self.name!r}: {purpose} runs untrusted code and needs an executor; "
                "set env.executor (e.g. to selfplay.sandbox.Sandbox().run)"
            )
        return self.executor


PROPOSE = """Propose a new {kind} task for programs: a short Python function f and one or more \
inputs for it. {what} Write it inside <task></task> in this form, the inputs as lines \
starting with >>> (literals only, standard library only, deterministic):
<task>
{example}
</task>"""
WHAT = {
    "deduction": "The Solver will be shown f and the first input and must predict the output.",
    "abduction": "The Solver will be shown f and the first input's output and must find an input.",
    "induction": "The Solver will be shown some input/output pairs and f's docstring and must "
    "write f; the last third of the inputs are held out to check it.",
}


class Abduction(Programs):
    """Programs, abduction: find an input for which f gives the shown output.

    ``programs`` with kind abduction, under a name of its own so one mix can hold all three.
    """

    name = "programs_abduction"

    def __init__(self, executor: Executor | None = None):
        super().__init__("abduction", executor)


class Induction(Programs):
    """Programs, induction: write f from input/output pairs (checked on held-out inputs too).

    ``programs`` with kind induction, under a name of its own so one mix can hold all three.
    """

    name = "programs_induction"

    def __init__(self, executor: Executor | None = None):
        super().__init__("induction", executor)


def level_of(program: str) -> int | None:
    """The easiest level whose node budget (``LEVELS``) ``program`` fits; None if none.
    Raises SyntaxError if it does not parse."""
    size = sum(1 for _ in ast.walk(ast.parse(program)))
    return next((level for level, most in LEVELS.items() if size <= most), None)


def held_out(count: int) -> int:
    """How many of ``count`` inputs an induction task holds out: the last third, at least one."""
    return max(1, count // 3)


# -- templates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A family of programs: source and trusted implementation, filled by the same parameters."""

    name: str
    level: int
    source: str
    """``string.Template`` text; each ``$name`` becomes the repr of that parameter."""
    compute: Callable[..., Any]
    """The trusted ``f``: ``compute(*arguments, **parameters)`` is what the source returns."""
    arguments: Callable[[random.Random], tuple]
    parameters: Callable[[random.Random], dict[str, Any]] = lambda rng: {}

    def program(self, parameters: dict[str, Any]) -> str:
        """The source with ``parameters`` filled in."""
        values = {key: repr(value) for key, value in parameters.items()}
        return string.Template(self.source).substitute(values).strip("\n")


def _numbers(
    rng: random.Random, low: int = 0, high: int = 20, shortest: int = 3, longest: int = 8
) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(shortest, longest))]


def _word(rng: random.Random, letters: str = "abcde", shortest: int = 3, longest: int = 9) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(shortest, longest)))


def _sentence(rng: random.Random) -> str:
    words = ["a", "an", "cat", "sat", "on", "the", "mat", "quietly", "yellow", "boat", "it", "went"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))


def _runs(rng: random.Random) -> str:
    return "".join(rng.choice("abc") * rng.randint(1, 4) for _ in range(rng.randint(2, 5)))


def _brackets(rng: random.Random) -> str:
    return "".join(rng.choice("(()x") for _ in range(rng.randint(4, 12)))


def _multiples(rng: random.Random) -> tuple[int, int]:
    """Two numbers with a common factor, so that their gcd is not mostly 1."""
    k = rng.randint(1, 9)
    return k * rng.randint(1, 12), k * rng.randint(1, 12)


def _interval(rng: random.Random) -> tuple[int, int]:
    lo = rng.randint(0, 80)
    return lo, lo + rng.randint(5, 30)


def _sorted_pair(rng: random.Random) -> tuple[list[int], list[int]]:
    return sorted(_numbers(rng, 0, 20, 1, 5)), sorted(_numbers(rng, 0, 20, 1, 5))


def _running_max(xs: list[int]) -> list[int]:
    out = []
    best = None
    for x in xs:
        if best is None or x > best:
            best = x
        out.append(best)
    return out


def _digit_sum(n: int, base: int) -> int:
    total = 0
    while n > 0:
        total += n % base
        n //= base
    return total


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _char_counts(s: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    return counts


def _collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def _alternating_sum(xs: list[int]) -> int:
    total = 0
    for i, x in enumerate(xs):
        if i % 2 == 0:
            total += x
        else:
            total -= x
    return total


def _count_long_words(s: str, k: int) -> int:
    count = 0
    for word in s.split():
        if len(word) > k:
            count += 1
    return count


def _longest_rise(xs: list[int]) -> int:
    best = current = 1
    for a, b in zip(xs, xs[1:], strict=False):
        current = current + 1 if b > a else 1
        best = max(best, current)
    return best


def _pair_sums(xs: list[int], t: int) -> int:
    count = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            if xs[i] + xs[j] == t:
                count += 1
    return count


def _inversions(xs: list[int]) -> int:
    xs = list(xs)
    swaps = 0
    for i in range(len(xs)):
        for j in range(len(xs) - 1 - i):
            if xs[j] > xs[j + 1]:
                xs[j], xs[j + 1] = xs[j + 1], xs[j]
                swaps += 1
    return swaps


def _primes_between(lo: int, hi: int) -> list[int]:
    primes = []
    for n in range(max(lo, 2), hi + 1):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            primes.append(n)
    return primes


def _run_length(s: str) -> str:
    out = ""
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out += s[i] + str(j - i)
        i = j
    return out


def _group_by_length(words: list[str]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for w in words:
        groups.setdefault(len(w), []).append(w)
    return {k: groups[k] for k in sorted(groups)}


def _nesting(s: str) -> int:
    depth = best = 0
    for c in s:
        if c == "(":
            depth += 1
            best = max(best, depth)
        elif c == ")":
            depth -= 1
            if depth < 0:
                return -1
    return best if depth == 0 else -1


def _window_sums(xs: list[int], k: int) -> list[int]:
    sums = []
    for i in range(len(xs) - k + 1):
        total = 0
        for x in xs[i : i + k]:
            total += x
        sums.append(total)
    return sums


def _merge(xs: list[int], ys: list[int]) -> list[int]:
    out = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        if xs[i] <= ys[j]:
            out.append(xs[i])
            i += 1
        else:
            out.append(ys[j])
            j += 1
    return out + xs[i:] + ys[j:]


def _modulus(rng: random.Random) -> dict[str, int]:
    m = rng.randint(2, 5)
    return {"m": m, "r": rng.randrange(m)}


TEMPLATES: tuple[Template, ...] = (
    # -- level 1: one-line bodies --
    Template(
        "reverse", 1,
        '''
def f(xs):
    """Reverse the list."""
    return xs[::-1]
''',
        lambda xs: xs[::-1],
        lambda rng: (_numbers(rng, high=50),),
    ),
    Template(
        "sort_descending", 1,
        '''
def f(xs):
    """Sort the numbers from largest to smallest."""
    return sorted(xs, reverse=True)
''',
        lambda xs: sorted(xs, reverse=True),
        lambda rng: (_numbers(rng, high=50),),
    ),
    Template(
        "sum_of_powers", 1,
        '''
def f(xs):
    """Sum the numbers raised to the power $p."""
    return sum(x ** $p for x in xs)
''',
        lambda xs, p: sum(x**p for x in xs),
        lambda rng: (_numbers(rng, high=9, longest=6),),
        lambda rng: {"p": rng.randint(2, 3)},
    ),
    Template(
        "filter_by_remainder", 1,
        '''
def f(xs):
    """Keep the numbers that leave remainder $r when divided by $m."""
    return [x for x in xs if x % $m == $r]
''',
        lambda xs, m, r: [x for x in xs if x % m == r],
        lambda rng: (_numbers(rng, high=30),),
        _modulus,
    ),
    Template(
        "count_char", 1,
        '''
def f(s):
    """Count the occurrences of $c in s."""
    return s.count($c)
''',
        lambda s, c: s.count(c),
        lambda rng: (_word(rng),),
        lambda rng: {"c": rng.choice("abcde")},
    ),
    Template(
        "rotate_string", 1,
        '''
def f(s):
    """Rotate s left by $k characters."""
    return s[$k:] + s[:$k]
''',
        lambda s, k: s[k:] + s[:k],
        lambda rng: (_word(rng, "abcdefgh", shortest=4),),
        lambda rng: {"k": rng.randint(1, 3)},
    ),
    Template(
        "affine_map", 1,
        '''
def f(xs):
    """Multiply each number by $a and add $b."""
    return [x * $a + $b for x in xs]
''',
        lambda xs, a, b: [x * a + b for x in xs],
        lambda rng: (_numbers(rng, longest=6),),
        lambda rng: {"a": rng.randint(2, 5), "b": rng.randint(0, 9)},
    ),
    Template(
        "dict_from_pairs", 1,
        '''
def f(keys, values):
    """Map each key to the value at the same position."""
    return dict(zip(keys, values))
''',
        lambda keys, values: dict(zip(keys, values, strict=False)),
        lambda rng: (rng.sample("abcdefgh", rng.randint(2, 5)), _numbers(rng, 0, 9, 2, 5)),
    ),
    Template(
        "spread", 1,
        '''
def f(xs):
    """The largest number minus the smallest."""
    return max(xs) - min(xs)
''',
        lambda xs: max(xs) - min(xs),
        lambda rng: (_numbers(rng, high=99),),
    ),
    # -- level 2: a loop, or two steps --
    Template(
        "running_max", 2,
        '''
def f(xs):
    """Replace each number by the largest seen so far."""
    out = []
    best = None
    for x in xs:
        if best is None or x > best:
            best = x
        out.append(best)
    return out
''',
        _running_max,
        lambda rng: (_numbers(rng),),
    ),
    Template(
        "digit_sum", 2,
        '''
def f(n):
    """Sum the digits of n written in base $base."""
    total = 0
    while n > 0:
        total += n % $base
        n //= $base
    return total
''',
        _digit_sum,
        lambda rng: (rng.randint(0, 999),),
        lambda rng: {"base": rng.choice((2, 3, 5, 10))},
    ),
    Template(
        "gcd", 2,
        '''
def f(a, b):
    """The greatest common divisor of a and b."""
    while b:
        a, b = b, a % b
    return a
''',
        _gcd,
        _multiples,
    ),
    Template(
        "caesar", 2,
        '''
def f(s):
    """Shift each letter $k places along the alphabet, wrapping from z to a."""
    return ''.join(chr((ord(c) - 97 + $k) % 26 + 97) for c in s)
''',
        lambda s, k: "".join(chr((ord(c) - 97 + k) % 26 + 97) for c in s),
        lambda rng: (_word(rng, string.ascii_lowercase),),
        lambda rng: {"k": rng.randint(1, 25)},
    ),
    Template(
        "char_counts", 2,
        '''
def f(s):
    """Count each character, in order of first appearance."""
    counts = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    return counts
''',
        _char_counts,
        lambda rng: (_word(rng, "abcd"),),
    ),
    Template(
        "collatz_steps", 2,
        '''
def f(n):
    """Count the steps of the Collatz map from n down to 1."""
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps
''',
        _collatz_steps,
        lambda rng: (rng.randint(1, 60),),
    ),
    Template(
        "alternating_sum", 2,
        '''
def f(xs):
    """Add the numbers at even positions and subtract those at odd ones."""
    total = 0
    for i, x in enumerate(xs):
        if i % 2 == 0:
            total += x
        else:
            total -= x
    return total
''',
        _alternating_sum,
        lambda rng: (_numbers(rng),),
    ),
    Template(
        "count_long_words", 2,
        '''
def f(s):
    """Count the words longer than $k letters."""
    count = 0
    for word in s.split():
        if len(word) > $k:
            count += 1
    return count
''',
        _count_long_words,
        lambda rng: (_sentence(rng),),
        lambda rng: {"k": rng.randint(2, 4)},
    ),
    Template(
        "longest_rise", 2,
        '''
def f(xs):
    """The length of the longest run of strictly increasing neighbours."""
    best = current = 1
    for a, b in zip(xs, xs[1:]):
        current = current + 1 if b > a else 1
        best = max(best, current)
    return best
''',
        _longest_rise,
        lambda rng: (_numbers(rng, high=9, shortest=4),),
    ),
    Template(
        "group_by_length", 2,
        '''
def f(words):
    """Group the words by length, shortest first."""
    groups = {}
    for w in words:
        groups.setdefault(len(w), []).append(w)
    return {k: groups[k] for k in sorted(groups)}
''',
        _group_by_length,
        lambda rng: ([_word(rng, "abcdef", 1, 5) for _ in range(rng.randint(3, 6))],),
    ),
    # -- level 3: nested loops, several steps --
    Template(
        "pair_sums", 3,
        '''
def f(xs):
    """Count the pairs of positions whose numbers add up to $t."""
    count = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            if xs[i] + xs[j] == $t:
                count += 1
    return count
''',
        _pair_sums,
        lambda rng: (_numbers(rng, high=10, shortest=4),),
        lambda rng: {"t": rng.randint(5, 15)},
    ),
    Template(
        "bubble_swaps", 3,
        '''
def f(xs):
    """Count the swaps bubble sort makes to sort the list."""
    xs = list(xs)
    swaps = 0
    for i in range(len(xs)):
        for j in range(len(xs) - 1 - i):
            if xs[j] > xs[j + 1]:
                xs[j], xs[j + 1] = xs[j + 1], xs[j]
                swaps += 1
    return swaps
''',
        _inversions,
        lambda rng: (_numbers(rng, high=30),),
    ),
    Template(
        "primes_between", 3,
        '''
def f(lo, hi):
    """List the primes from lo to hi."""
    primes = []
    for n in range(max(lo, 2), hi + 1):
        if all(n % d for d in range(2, int(n ** 0.5) + 1)):
            primes.append(n)
    return primes
''',
        _primes_between,
        _interval,
    ),
    Template(
        "run_length", 3,
        '''
def f(s):
    """Write each run of a repeated character as the character and the run's length."""
    out = ''
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out += s[i] + str(j - i)
        i = j
    return out
''',
        _run_length,
        lambda rng: (_runs(rng),),
    ),
    Template(
        "nesting_depth", 3,
        '''
def f(s):
    """The deepest nesting of parentheses in s, or -1 if they do not balance."""
    depth = best = 0
    for c in s:
        if c == '(':
            depth += 1
            best = max(best, depth)
        elif c == ')':
            depth -= 1
            if depth < 0:
                return -1
    return best if depth == 0 else -1
''',
        _nesting,
        lambda rng: (_brackets(rng),),
    ),
    Template(
        "window_sums", 3,
        '''
def f(xs):
    """The sum of every $k consecutive numbers."""
    sums = []
    for i in range(len(xs) - $k + 1):
        total = 0
        for x in xs[i:i + $k]:
            total += x
        sums.append(total)
    return sums
''',
        _window_sums,
        lambda rng: (_numbers(rng, shortest=4),),
        lambda rng: {"k": rng.randint(2, 3)},
    ),
    Template(
        "merge_sorted", 3,
        '''
def f(xs, ys):
    """Merge two sorted lists into one sorted list."""
    out = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        if xs[i] <= ys[j]:
            out.append(xs[i])
            i += 1
        else:
            out.append(ys[j])
            j += 1
    return out + xs[i:] + ys[j:]
''',
        _merge,
        _sorted_pair,
    ),
)  # fmt: skip


# -- tasks ----------------------------------------------------------------------------


def _make_task(kind: str, program: str, inputs: list[str], outputs: list[str]) -> Task:
    """The ``kind`` task about ``program``, its ``inputs`` (argument lists) and their ``outputs``
    (reprs); the difficulty is left for ``Environment.task`` or ``from_proposal`` to set."""
    shown = f"Here is a Python function:\n\n```python\n{program}\n```\n\n"
    if kind == "deduction":
        prompt = (
            f"{shown}What does f({inputs[0]}) return? Answer with the value as a Python literal."
        )
        return make_task(
            prompt, outputs[0], kind=kind, program=program, inputs=inputs[:1], outputs=outputs[:1]
        )
    if kind == "abduction":
        prompt = (
            f"{shown}Find arguments for which f returns {outputs[0]}. "
            "Answer with them as they would appear inside f(...)."
        )
        return make_task(
            prompt, inputs[0], kind=kind, program=program, inputs=inputs[:1], outputs=outputs[:1]
        )
    split = len(inputs) - held_out(len(inputs))
    pairs = "".join(
        f"f({a}) == {o}\n" for a, o in zip(inputs[:split], outputs[:split], strict=True)
    )
    description = _description(program)
    hint = f"Its docstring reads: {description}\n" if description else ""
    prompt = (
        f"Write a Python function f such that:\n{pairs}{hint}It is also checked on inputs "
        "not shown. Answer with its definition, starting with def f."
    )
    return make_task(
        prompt,
        program,
        kind=kind,
        program=program,
        inputs=inputs[:split],
        outputs=outputs[:split],
        held_out_inputs=inputs[split:],
        held_out_outputs=outputs[split:],
    )


def _description(program: str) -> str:
    """The first line of ``f``'s docstring; empty if it has none."""
    function = _function_f(ast.parse(program))
    docstring = ast.get_docstring(function) if function is not None else None
    return docstring.strip().splitlines()[0] if docstring and docstring.strip() else ""


def _function_f(tree: ast.Module) -> ast.FunctionDef | None:
    """The last top-level ``def f`` (the one a call would reach), if any."""
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "f":
            found = node
    return found


def _is_call_of_f(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "f"


def _split_proposal(content: str) -> tuple[str, list[str]]:
    """The program and the canonical argument list of each ``>>> f(<args>)`` line after it."""
    lines = content.split("\n")  # not splitlines(): Python reads \f or \u2028 as no line end
    starts = [i for i, line in enumerate(lines) if line.startswith(INPUT_PROMPT)]
    if not starts:
        raise Rejected("unparsable", "no_input")
    calls = []
    for line in lines[starts[0] :]:
        if line.strip():
            if not line.startswith(INPUT_PROMPT):
                raise Rejected("unparsable", "text_after_input")
            calls.append(_arguments(line[len(INPUT_PROMPT) :].strip()))
    return "\n".join(lines[: starts[0]]).strip("\n").rstrip(), calls


def _arguments(text: str) -> str:
    """The arguments of the call ``text``, as ``ast.unparse`` writes them, so that spacing does
    not make two proposals differ; Rejected unless it is ``f(...)`` of literals."""
    try:
        call = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise Rejected("unparsable", "bad_input") from None
    if not _is_call_of_f(call):
        raise Rejected("unparsable", "bad_input")
    for value in [*call.args, *(k.value for k in call.keywords)]:
        try:
            ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            raise Rejected("invalid", "input_not_literal") from None
    return ast.unparse(call)[2:-1]


def _run(executor: Executor, program: str, arguments: str) -> str:
    """The repr of ``f(arguments)``; Rejected if the run fails or its output is unusable."""
    result = executor(program, f"f({arguments})")
    if result.violation:
        raise Rejected("unsafe", "sandbox_violation")
    if result.status in ("timeout", "killed"):
        raise Rejected("unsafe", result.status)
    if result.status != "ok" or result.value is None:
        raise Rejected("invalid", "raises")
    if len(result.value) > MAX_OUTPUT_CHARS:
        raise Rejected("invalid", "output_too_large")
    if _literal(result.value) is _NOT_LITERAL:
        raise Rejected("invalid", "output_not_literal")
    return result.value


# -- scoring --------------------------------------------------------------------------

_NOT_LITERAL = object()


def _literal(text: str) -> Any:
    """``ast.literal_eval(text)``, or ``_NOT_LITERAL`` where it is not a literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return _NOT_LITERAL


def _judge(answer: str, result: ExecutionResult, gold: str, wrong: str = "wrong") -> Verdict:
    """The verdict on a run of the Solver's ``answer`` that should have returned ``gold``;
    ``wrong`` is the reason when it returned something else."""
    if result.violation:
        return Verdict(0.0, "answer", answer, "unsafe")
    if result.status != "ok":
        return Verdict(0.0, "answer", answer, result.status)
    got = _literal(result.value or "")
    # A value that is not a literal (a function, an object) never equals the literal gold.
    right = got is not _NOT_LITERAL and got == _literal(gold)
    return Verdict(float(right), "answer", answer, "correct" if right else wrong)
