"""Behaviour taggers: what a completion's reasoning does, one transcript row at a time.

``tag`` labels a row (reasoning length, self-correction, verification, backtracking,
asking, stating a confidence) and ``aggregate`` turns a step's rows into namespaced
metrics. Everything here is pure and cheap: it runs on every completion of every training
step.

Two views of self-correction are kept on purpose. ``self_correction_lexical`` counts the
words a model says ("wait", "actually"); ``self_correction_verified`` counts a result that
really changed on the way to a correct final answer. A model can learn to say "wait"
without changing anything, or to fix a step silently; the two rates disagree exactly then.

A *step* is a reasoning line ending in ``<lhs>=<integer>``, where ``lhs`` is integers (up
to 30 digits) joined by up to 12 of ``+ - * /``, with optional parentheses and spaces
(``7+5=12``, ``(4+8)*3 = 36``). Text before the lhs is tolerated when it does not run
into it (``wait, 7+5=12``, ``so 7+5=12``; not ``x7+5=12`` or ``3.5+2=5``); in a chain
``a = b = 12`` the step is the last link ``b=12``; a bare lhs line followed by a line
``= 12`` is one step. Lhs are compared with whitespace removed and nothing else
normalised: ``5+7`` and ``7+5`` are different computations.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from envs import Task, Verdict, parse_completion

SELF_CORRECTION_MARKERS = (
    "wait",
    "let me check",
    "re-check",  # also covers "let me re-check"
    "recheck",
    "actually",
    "oops",
    "no,",
    "i made a mistake",
    "that's wrong",
    "that is wrong",
    "correction",
)
"""Phrases that announce a correction. Matched case-insensitively as whole words/phrases."""

VERIFICATION_MARKERS = (
    "check:",
    "verify",
    "verifying",
    "verified",
    "verification",
    "double-check",
    "double check",
)
"""Phrases that announce a re-check of a result ("let me verify" is covered by "verify")."""

BACKTRACKING_MARKERS = (
    "try another",
    "instead",
    "start over",
    "that doesn't work",
    "that does not work",
    "dead end",
    "let me try",
)
"""Phrases that announce abandoning an approach."""

CLARIFY_OUTCOMES = ("true_positive", "false_positive", "false_negative", "true_negative")
"""``clarify_outcome`` values: asked on underspecified, asked on specified, and the rest."""

MAX_STATED_CHARS = 200
"""A longer stated answer (``answer …`` line or ``<answer>`` in the reasoning) is ignored."""


class _Markers:
    """Whole-word, case-insensitive phrase search over ``_fold``ed text.

    ``str.find`` per phrase, then a boundary check: far faster than a regex alternation with
    lookarounds, and linear. A phrase ending in a word character needs a non-word character
    after it ("wait" not "waiting"); one ending in punctuation does not ("no," in "no, 12").
    """

    def __init__(self, phrases: Sequence[str]):
        self.phrases = tuple(_fold(p) for p in phrases)

    def search(self, folded: str) -> bool:
        return any(self._find(folded, phrase) for phrase in self.phrases)

    @staticmethod
    def _find(folded: str, phrase: str) -> bool:
        start = 0
        while (at := folded.find(phrase, start)) != -1:
            end = at + len(phrase)
            before_ok = at == 0 or not _is_word(folded[at - 1])
            after_ok = not _is_word(phrase[-1]) or end == len(folded) or not _is_word(folded[end])
            if before_ok and after_ok:
                return True
            start = at + 1
        return False


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _fold(text: str) -> str:
    """Lower case, ’ as ', every whitespace run a single space: what markers are matched on."""
    return " ".join(text.lower().replace("’", "'").split())


_SELF_CORRECTION = _Markers(SELF_CORRECTION_MARKERS)
_VERIFICATION = _Markers(VERIFICATION_MARKERS)
_BACKTRACKING = _Markers(BACKTRACKING_MARKERS)

# The patterns below run over the whole reasoning, so each is linear: no two neighbouring
# quantifiers can match the same characters, and runs that restart at every position are
# bounded ({1,30} digits, {1,12} operators), so hostile input cannot make them backtrack.
_H = r"[^\S\n]"  # horizontal whitespace
_STEP = re.compile(
    # The first character is a plain class, so the engine skips non-candidates fast; the
    # lookbehind after it keeps a step from starting inside a word, a number or an expression
    # ("x7+5", "3.5+2", the "5" of "7+5"), and the branches finish the first number.
    rf"(?P<lhs>[(0-9-](?<![\w)+\-*/(.][(0-9-])"
    rf"(?:(?<=\()\(*-?[0-9]{{1,30}}|(?<=-)[0-9]{{1,30}}|(?<=[0-9])[0-9]{{0,29}})\)*"
    rf"(?:{_H}*[-+*/]{_H}*\(*[0-9]{{1,30}}\)*){{1,12}})"
    rf"{_H}*(?:\n{_H}*)?={_H}*(?P<value>-?[0-9]{{1,30}}){_H}*(?:\.{_H}*)?$",
    re.MULTILINE,
)
_LONE = re.compile(rf"^{_H}*={_H}*(?P<value>-?[0-9]{{1,30}}){_H}*(?:\.{_H}*)?$", re.MULTILINE)
_ANSWER_LINE = re.compile(
    rf"^{_H}*(?:so{_H}+)?(?:the{_H}+)?(?:final{_H}+)?answer(?:{_H}+is\b|{_H}*[:=])?",
    re.MULTILINE | re.IGNORECASE,
)
_STATED_ANSWER = re.compile(r"[-+*/()0-9\s]*[0-9][-+*/()0-9\s]*")
_INTEGER = re.compile(r"-?[0-9]{1,30}")
_NUMBER = re.compile(r"[0-9]+")
_BINARY = re.compile(r"([0-9]+)([-+*/])([0-9]+)")
# A digit step of column arithmetic (envs/arithmetic.py): 7+5, 7+5+1, 13-5, 9-10 (borrowed).
_COLUMN_STEP = re.compile(r"[0-9]\+[0-9](?:\+1)?|1?[0-9]-(?:10|[0-9])")
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


# (offset in the reasoning, lhs without whitespace, value): a plain tuple, as a
# NamedTuple costs a third of the tagging time on a reasoning of a few hundred steps.
_Step = tuple[int, str, int]


class _Trace(NamedTuple):
    """The parsed reasoning of one completion, shared by every tagger."""

    reasoning: str
    folded: str
    """The reasoning as ``_fold`` writes it, for marker search."""
    steps: list[_Step]
    stated: list[str]
    """Answers stated in the reasoning: ``answer 12`` lines and ``<answer>`` tags, normalised."""
    lone: list[tuple[int, int]]
    """(offset, value) of each ``= N`` line that is not the second half of a split step."""
    final: str | None
    """The completion's final answer, normalised; None after an ``<ask>`` or malformed output."""


# -- parsing --------------------------------------------------------------------------------


def _as_integer(text: str) -> int | None:
    text = text.strip().rstrip(".").strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def _normalise(answer: str) -> str:
    """Whitespace and a trailing full stop removed, lower case; integers canonical (+012 -> 12)."""
    text = "".join(answer.split()).rstrip(".").lower()
    value = _as_integer(text.removeprefix("+"))
    return str(value) if value is not None else text


def _strip_spaces(lhs: str) -> str:
    return "".join(lhs.split()) if " " in lhs or "\t" in lhs else lhs


def _stated_in_tags(reasoning: str) -> list[str]:
    """Contents of ``<answer>…</answer>`` written inside the reasoning (linear scan)."""
    found, start = [], 0
    while (open_at := reasoning.find("<answer>", start)) != -1:
        close_at = reasoning.find("</answer>", open_at)
        if close_at == -1:
            break
        content = reasoning[open_at + len("<answer>") : close_at]
        if len(content) <= MAX_STATED_CHARS:
            found.append(_normalise(content))
        start = close_at
    return found


def _analyse(reasoning: str, final: str | None) -> _Trace:
    """Steps, stated answers and lone ``= N`` lines of the reasoning."""
    matches = list(_STEP.finditer(reasoning))
    steps = [(m.start(), _strip_spaces(m["lhs"]), int(m["value"])) for m in matches]
    # A lone "= 12" that ends where a split step "7+5" / "= 12" ends is that step's second half.
    split_ends = {m.end() for m in matches if "\n" in m[0]}
    lone = [
        (m.start(), int(m["value"])) for m in _LONE.finditer(reasoning) if m.end() not in split_ends
    ]
    folded = _fold(reasoning)
    stated = _stated_in_tags(reasoning)
    for m in _ANSWER_LINE.finditer(reasoning) if "answer" in folded else ():
        end = reasoning.find("\n", m.end())
        rest = reasoning[m.end() : end if end != -1 else len(reasoning)]
        rest = rest.strip().rstrip(".")
        if len(rest) <= MAX_STATED_CHARS and _STATED_ANSWER.fullmatch(rest):
            stated.append(_normalise(rest))
    final_norm = None if final is None else _normalise(final)
    return _Trace(reasoning, folded, steps, stated, lone, final_norm)


def _trace(text: str) -> _Trace:
    parsed = parse_completion(text)
    return _analyse(parsed.reasoning, parsed.answer)


# -- taggers --------------------------------------------------------------------------------


def reasoning_length(text: str) -> dict[str, int]:
    """Characters and non-empty lines ("steps") of the reasoning."""
    return _length(parse_completion(text).reasoning)


def _length(reasoning: str) -> dict[str, int]:
    lines = reasoning.splitlines()
    steps = len(lines) - lines.count("") - sum(map(str.isspace, lines))
    return {"reasoning_chars": len(reasoning), "reasoning_steps": steps}


def self_correction_lexical(text: str) -> bool:
    """The reasoning says a correction marker (``SELF_CORRECTION_MARKERS``), whole words only."""
    return _SELF_CORRECTION.search(_fold(parse_completion(text).reasoning))


def self_correction_verified(text: str, task: Task, verdict: Verdict) -> bool:
    """A result changed on the way to a correct final outcome (``verdict.score == 1``).

    Counts when the score is 1 and either
    (a) the same lhs is computed with two different values (``7+5=13`` … ``7+5=12``); or
    (b) an answer stated earlier differs from the final one: an ``<answer>`` tag inside the
        reasoning, or a line ``answer 12`` / ``answer: 4+8`` / ``the answer is 12`` (compared
        as text, whitespace removed); or a lone line ``= 12`` whose next step restarts, i.e.
        recomputes an lhs first computed before that line. After a correct ``<ask>`` any
        stated answer differs (the model went from answering to asking).
    Markers play no part. Not counted: a value that changes without a shared lhs
    (``7+5=13`` then ``5+7=12``), or a ``= 12`` line in an equation chain with no restart
    (it is an intermediate result, indistinguishable from a candidate answer).
    ``task`` is unused; it is taken so every row tagger has the same shape.
    """
    return _verified(_trace(text), verdict)


def _verified(trace: _Trace, verdict: Verdict) -> bool:
    if verdict.score != 1.0:
        return False
    first_value: dict[str, int] = {}
    for _, lhs, value in trace.steps:
        if first_value.setdefault(lhs, value) != value:
            return True
    if any(stated != trace.final for stated in trace.stated):
        return True
    return any(stated != trace.final for stated in _restarted_lone_values(trace))


def _restarted_lone_values(trace: _Trace) -> list[str]:
    """Values of lone ``= N`` lines whose next step recomputes an lhs first seen before them."""
    first_at: dict[str, int] = {}
    for step_at, lhs, _ in trace.steps:
        first_at.setdefault(lhs, step_at)
    found, k = [], 0
    for at, value in trace.lone:  # both lists are in text order: one merge-like sweep
        while k < len(trace.steps) and trace.steps[k][0] < at:
            k += 1
        if k < len(trace.steps) and first_at[trace.steps[k][1]] < at:
            found.append(str(value))
    return found


def verification(text: str) -> bool:
    """The reasoning re-checks a result.

    Counts when any of: a verification marker (``VERIFICATION_MARKERS``); the same lhs
    computed again with the same value; or an inverse-operation check: ``a+b=c`` then
    later ``c-b=a`` or ``c-a=b``; ``a-b=c`` then ``c+b=a`` or ``b+c=a``; ``a*b=c`` then
    ``c/b=a`` or ``c/a=b``; ``a/b=c`` then ``c*b=a`` or ``b*c=a`` -- provided the value it
    recovers is neither used by a later step nor the final answer, else it is part of the
    computation (countdown's ``50-6=44``, ``44+6=50``, ``7+50=57``; the task ``79+8707-79``).
    Column digit steps (two digits and maybe a carry, ``7+5``, ``7+5+1``; a minuend up to 19
    less a digit or 10, ``13-5``) take no part: column arithmetic repeats and undoes them
    (``8+0=8`` in two columns, ``1+0=1`` then ``1-0=1``) by coincidence, not to check. So
    re-doing ``7+5=12`` is not a check; re-doing ``12+9=21`` is.
    """
    return _verifies(_trace(text))


def _verifies(trace: _Trace) -> bool:
    if _VERIFICATION.search(trace.folded):
        return True
    last_use: dict[int, int] | None = None  # number -> last step using it; built on demand
    seen: set[tuple[str, int]] = set()
    expected: set[tuple[int, str, int, int]] = set()  # inverse steps that would check one
    for k, (_, lhs, value) in enumerate(trace.steps):
        if _COLUMN_STEP.fullmatch(lhs):
            continue  # repeats and undoes of digit steps happen by coincidence across columns
        if (lhs, value) in seen:
            return True
        seen.add((lhs, value))
        binary = _BINARY.fullmatch(lhs)
        if binary is None:
            continue
        a, op, b, c = int(binary[1]), binary[2], int(binary[3]), value
        if (a, op, b, c) in expected and str(c) != trace.final:
            if last_use is None:
                last_use = _last_use(trace.steps)
            if last_use.get(c, -1) <= k:
                return True
        inverse = _INVERSE[op]
        if op in "+*":  # c-b=a, c-a=b (c/b=a, c/a=b)
            expected.update({(c, inverse, b, a), (c, inverse, a, b)})
        else:  # c+b=a, b+c=a (c*b=a, b*c=a)
            expected.update({(c, inverse, b, a), (b, inverse, c, a)})
    return False


def _last_use(steps: list[_Step]) -> dict[int, int]:
    return {int(n): k for k, (_, lhs, _) in enumerate(steps) for n in _NUMBER.findall(lhs)}


def backtracking(text: str, numbers: Sequence[int] | None = None) -> bool:
    """The reasoning abandons an approach.

    Counts when the reasoning says a backtracking marker (``BACKTRACKING_MARKERS``), or,
    given the task's ``numbers`` (countdown-like tasks, where each given number may be used
    once), when a step uses a given number whose copies are all used up. Walking the steps
    in order, a pool holds the given numbers plus every step's result; each number in a new
    lhs takes one copy from the pool. A number that is given but has no copy left means an
    earlier chain was dropped and its numbers are being reused. A step repeating an earlier
    lhs is a recomputation (self-correction or re-check), not a restart: it takes nothing.
    A number that was never given or computed is ignored (a mistake, not a restart).
    """
    return _backtracks(_trace(text), numbers)


def _backtracks(trace: _Trace, numbers: Sequence[int] | None) -> bool:
    if _BACKTRACKING.search(trace.folded):
        return True
    if not numbers:
        return False
    given = Counter(numbers)
    pool = Counter(numbers)
    done: set[str] = set()
    for _, lhs, value in trace.steps:
        if lhs not in done:
            done.add(lhs)
            for n in map(int, _NUMBER.findall(lhs)):
                if pool[n] > 0:
                    pool[n] -= 1
                elif n in given:
                    return True
        pool[value] += 1
    return False


def states_confidence(text: str) -> bool:
    """The final answer is followed by a readable ``<confidence>p</confidence>`` (``envs.format``)."""
    return parse_completion(text).confidence is not None


def asked(verdict: Verdict) -> bool:
    """The completion ended with a clarifying question."""
    return verdict.kind == "ask"


def clarify_outcome(task: Task, verdict: Verdict) -> str:
    """Asking as a classifier of underspecified tasks; a malformed reply counts as not asking."""
    return outcome(task.specified, asked(verdict))


def outcome(specified: bool, asked: bool) -> str:
    """The ``clarify_outcome`` of asking (or not) on a specified (or underspecified) task."""
    if asked:
        return "false_positive" if specified else "true_positive"
    return "true_negative" if specified else "false_negative"


def _given_numbers(task: Task) -> list[int] | None:
    """The task's given numbers (countdown's ``metadata["numbers"]``) if it has a list of ints."""
    numbers = task.metadata.get("numbers")
    if isinstance(numbers, (list, tuple)) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in numbers
    ):
        return list(numbers)
    return None


def tag(text: str, task: Task, verdict: Verdict) -> dict[str, bool | int | str | float | None]:
    """Every tag of one transcript row, flat (parses the completion once).

    ``confidence`` is the stated p (a float) or None: the one tag that is not always set.
    """
    parsed = parse_completion(text)
    trace = _analyse(parsed.reasoning, parsed.answer)
    return {
        **_length(trace.reasoning),
        "self_correction_lexical": _SELF_CORRECTION.search(trace.folded),
        "self_correction_verified": _verified(trace, verdict),
        "verification": _verifies(trace),
        "backtracking": _backtracks(trace, _given_numbers(task)),
        "asked": asked(verdict),
        "clarify_outcome": clarify_outcome(task, verdict),
        "states_confidence": parsed.confidence is not None,
        "confidence": parsed.confidence,
    }


TAGGERS = {
    "self_correction_verified": self_correction_verified,
    "self_correction_lexical": lambda text, task, verdict: self_correction_lexical(text),
    "verification": lambda text, task, verdict: verification(text),
    "backtracking": lambda text, task, verdict: backtracking(text, _given_numbers(task)),
    "states_confidence": lambda text, task, verdict: states_confidence(text),
}
"""Boolean taggers as ``(text, task, verdict) -> bool``: the behaviours a run config can put a
shaping reward on (``rewards.weights: {self_correction_verified: 0.5}``)."""


# -- metrics --------------------------------------------------------------------------------

_RATES = {
    "behaviour/self_correction_lexical_rate": "self_correction_lexical",
    "behaviour/self_correction_verified_rate": "self_correction_verified",
    "behaviour/verification_rate": "verification",
    "behaviour/backtracking_rate": "backtracking",
    "behaviour/ask_rate": "asked",
    "behaviour/states_confidence_rate": "states_confidence",
    "length/reasoning_chars_mean": "reasoning_chars",
    "length/reasoning_steps_mean": "reasoning_steps",
}


def aggregate(tags: list[dict]) -> dict[str, float]:
    """Per-step metrics over ``tag`` rows; a metric whose denominator is empty is omitted."""
    if not tags:
        return {}
    metrics = {name: sum(row[key] for row in tags) / len(tags) for name, key in _RATES.items()}
    outcomes = Counter(row["clarify_outcome"] for row in tags)
    unknown = set(outcomes) - set(CLARIFY_OUTCOMES)
    if unknown:
        raise ValueError(f"aggregate: unknown clarify_outcome {sorted(unknown)}")
    tp, fp, fn = outcomes["true_positive"], outcomes["false_positive"], outcomes["false_negative"]
    if tp + fp:
        metrics["clarify/precision"] = tp / (tp + fp)
    if tp + fn:
        metrics["clarify/recall"] = tp / (tp + fn)
    return metrics
