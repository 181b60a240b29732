"""The program templates of ``envs.programs``: each a family of short Python functions ``f``.

A template is a source string and a trusted implementation that computes its outputs, filled by
the same parameters, and a way to draw arguments. The levels group them by size: one-line
bodies (level 1), a loop or two steps (level 2), nested loops or several steps (level 3); the
tests check each template lands in its level (``envs.programs.LEVELS``).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
