"""Behaviour taggers: what a completion's reasoning does, one transcript row at a time.

``tag`` labels a row (reasoning length, self-correction, verification, backtracking,
asking, stating a confidence): the columns ``selfplay.transcripts.schema.TAG_COLUMNS``.
Everything here is pure and cheap: it runs on every completion of every training step. The
reasoning is read once (``selfplay.behaviours.trace``) and every tagger shares that reading.

Two views of self-correction are kept on purpose. ``self_correction_lexical`` counts the
words a model says ("wait", "actually"); ``self_correction_verified`` counts a result that
really changed on the way to a correct final answer. A model can learn to say "wait"
without changing anything, or to fix a step silently; the two rates disagree exactly then.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

from envs import Task, Verdict, parse_completion
from selfplay.behaviours.trace import HSPACE as _H
from selfplay.behaviours.trace import (
    NUMBER,
    Markers,
    Step,
    Trace,
    analyse,
    fold,
    read_trace,
    same_answer,
)
from selfplay.transcripts.schema import (
    ASKED,
    BACKTRACKING,
    CLARIFY_OUTCOME,
    CONFIDENCE,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    REASONING_CHARS,
    REASONING_STEPS,
    SELF_CORRECTION_LEXICAL,
    SELF_CORRECTION_VERIFIED,
    STATES_CONFIDENCE,
    TRUE_NEGATIVE,
    TRUE_POSITIVE,
    VERIFICATION,
)

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
    "check",  # also covers "check:", "let me check", "double-check", "re-check"
    "checking",
    "checks out",
    "recheck",
    "verify",
    "verifying",
    "verified",
    "verification",
    "confirm",
    "confirms",
    "confirmed",
    "confirming",
    "make sure",
    "to be sure",
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

MAX_SENTENCE_CHARS = 200
"""How far back from a repeated step ``verification`` looks for the word that concludes."""


_SELF_CORRECTION = Markers(SELF_CORRECTION_MARKERS)
_VERIFICATION = Markers(VERIFICATION_MARKERS)
_BACKTRACKING = Markers(BACKTRACKING_MARKERS)

_BINARY = re.compile(r"([0-9]+)([-+*/])([0-9]+)")
# A digit step of column arithmetic (envs/arithmetic.py): 7+5, 7+5+1, 13-5, 9-10 (borrowed).
_COLUMN_STEP = re.compile(r"[0-9]\+[0-9](?:\+1)?|1?[0-9]-(?:10|[0-9])")
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}

# A value replaced without its lhs: "the total is 91, not 81", "not 47 but 37", "that should
# be 63", "it's actually 56", "I mean 84", "no, it's 84", "oops, 76", "correction: 80".
_NUM = r"(?<![0-9])-?[0-9]{1,30}"  # a whole number, not the tail of one
_VALUE_END = rf"(?![0-9]|\.[0-9]|{_H}*[-+*/=])"  # ... that does not start an expression
_REPLACED = re.compile(
    rf"(?P<new>{_NUM}){_H}*(?:(?:[,;(]|—|--){_H}*)?(?:and{_H}+)?"
    rf"(?:not|rather{_H}+than|instead{_H}+of){_H}+(?P<old>{_NUM}){_VALUE_END}"
    rf"|\bnot{_H}+(?P<old2>{_NUM}){_H}*(?:[,;]{_H}*)?(?:but|it's|it{_H}+is|rather)"
    rf"(?:{_H}+it's|{_H}+it{_H}+is)?{_H}+(?P<new2>{_NUM}){_VALUE_END}"
    rf"|(?:\b(?:it|that|this){_H}+should{_H}+(?:be|have{_H}+been)"
    rf"|\b(?:it|that|this)(?:'s|{_H}+is){_H}+(?:actually|really)|\bi{_H}+mean[,:]?"
    rf"|\b(?:no|oops|sorry|actually|correction|wrong)[,:;.!]*(?:{_H}+(?:it's|it{_H}+is|that's|"
    rf"that{_H}+is|the{_H}+(?:sum|total|product|difference|quotient|result|value){_H}+is))?)"
    rf"{_H}+(?P<new3>{_NUM}){_VALUE_END}",
    re.IGNORECASE,
)
# Words without which ``_REPLACED`` cannot match: a fast test on the folded reasoning.
_REPLACING = re.compile(
    r"not|rather|instead|should|actually|really|mean|no|oops|sorry|correction|wrong"
)
# A number claimed as a result: after "=", "is" or "'s" ("= 81", "the sum is 81", "it's 81").
_CLAIMED = re.compile(rf"(?:=|\bis\b|'s){_H}*(?P<value>{_NUM}){_VALUE_END}", re.IGNORECASE)
# What may stand right before the new value of "N, not M": it is claimed, not an operand.
_CLAIMS_NEXT = re.compile(
    rf"(?:=|\bis|'s|\bbe|\bso|\bgets?|\bgot|\bgives?|\bequals|\bmakes){_H}*\Z", re.IGNORECASE
)
# A sentence that concludes rather than computes ("So 48+36=84.", "Answer: 72/8=9").
_CONCLUSION = re.compile(
    r"[\W_]*(?:so|thus|therefore|hence|finally|overall|in total|(?:the )?(?:final )?answer)\b",
    re.IGNORECASE,
)


def reasoning_length(text: str) -> dict[str, int]:
    """Characters and non-empty lines ("steps") of the reasoning."""
    return _length(parse_completion(text).reasoning)


def _length(reasoning: str) -> dict[str, int]:
    lines = reasoning.splitlines()
    steps = len(lines) - lines.count("") - sum(map(str.isspace, lines))
    return {REASONING_CHARS: len(reasoning), REASONING_STEPS: steps}


def self_correction_lexical(text: str) -> bool:
    """The reasoning says a correction marker (``SELF_CORRECTION_MARKERS``), whole words only."""
    return _SELF_CORRECTION.search(fold(parse_completion(text).reasoning))


def self_correction_verified(text: str, task: Task, verdict: Verdict) -> bool:
    """A result changed on the way to a correct final outcome (``verdict.score == 1``).

    Counts when the score is 1 and either
    (a) the same lhs is computed with two different values (``7+5=13`` … ``7+5=12``); or
    (b) an answer stated earlier differs from the final one: an ``<answer>`` tag inside the
        reasoning, a line ``answer 12`` / ``answer: 4+8``, ``the answer is 12`` or
        ``\\boxed{12}`` anywhere (compared as text, whitespace removed, or by value: ``4+8``
        is ``12``, and ``(4*3)+8`` is ``4*3+8`` as it uses the same numbers; ``4+8+8`` is
        another answer); or a lone line ``= 12`` whose next step
        restarts, i.e. recomputes an lhs first computed before that line. After a correct
        ``<ask>`` any stated answer differs (the model went from answering to asking); or
    (c) a value is replaced without repeating its lhs: ``N, not M`` (also ``N (not M)``,
        ``N rather than M``, ``N instead of M``) after ``=``, ``is``, ``'s``, ``so``, ``be``,
        ``gives``…; or ``not M but N``, where M was claimed earlier (``= M``, ``is M``); or
        ``that should be N``, ``it's actually N``, ``I mean N``, ``no, it's N``, ``oops, N``,
        ``correction: N``, where the last value claimed before (``= M``, ``is M``) differs.
    Not counted: a value that changes without a shared lhs (``7+5=13`` then ``5+7=12``),
    a ``= 12`` line in an equation chain with no restart (it is an intermediate result,
    indistinguishable from a candidate answer), or a marker alone.
    ``task`` is unused; it is taken so every row tagger has the same shape.
    """
    return _verified(read_trace(text), verdict)


def _verified(trace: Trace, verdict: Verdict) -> bool:
    if verdict.score != 1.0:
        return False
    first_value: dict[str, int] = {}
    for _, lhs, value in trace.steps:
        if first_value.setdefault(lhs, value) != value:
            return True
    if any(not same_answer(stated, trace.final) for stated in trace.stated):
        return True
    if any(stated != trace.final for stated in _restarted_lone_values(trace)):
        return True
    return _REPLACING.search(trace.folded) is not None and _replaces_a_value(trace.text)


def _replaces_a_value(text: str) -> bool:
    """A value replaced in words, without its lhs: rule (c) of ``self_correction_verified``."""
    claims: list[tuple[int, int]] | None = None  # (offset, value) of each claim; built on demand
    for m in _REPLACED.finditer(text):
        if claims is None:
            claims = [(c.start(), int(c["value"])) for c in _CLAIMED.finditer(text)]
            offsets = [at for at, _ in claims]
            first_claimed: dict[int, int] = {}
            for at, value in claims:
                first_claimed.setdefault(value, at)
        if m["new3"] is not None:  # "that should be 63": it replaces the last value claimed
            before = bisect_left(offsets, m.start())
            if before and claims[before - 1][1] != int(m["new3"]):
                return True
            continue
        if m["new"] is not None:  # "the total is 91, not 81"
            new, old = int(m["new"]), int(m["old"])
            if not _CLAIMS_NEXT.search(text, max(0, m.start() - 16), m.start()):
                continue  # "use 4 and 6, not 8": 6 is an operand, not a result
        else:  # "not 47 but 37"
            new, old = int(m["new2"]), int(m["old2"])
        if new != old and first_claimed.get(old, len(text)) < m.start():
            return True
    return False


def _restarted_lone_values(trace: Trace) -> list[str]:
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
    computed again with the same value, unless its sentence or clause opens with a word that
    concludes rather than computes (``So 48+36=84.``, ``Therefore, …``, ``Answer: 72/8=9``,
    ``\\boxed{48+36=84}``); or an inverse-operation check: ``a+b=c`` then
    later ``c-b=a`` or ``c-a=b``; ``a-b=c`` then ``c+b=a`` or ``b+c=a``; ``a*b=c`` then
    ``c/b=a`` or ``c/a=b``; ``a/b=c`` then ``c*b=a`` or ``b*c=a`` -- provided the value it
    recovers is neither used by a later step nor the final answer, else it is part of the
    computation (countdown's ``50-6=44``, ``44+6=50``, ``7+50=57``; the task ``79+8707-79``).
    Column digit steps (two digits and maybe a carry, ``7+5``, ``7+5+1``; a minuend up to 19
    less a digit or 10, ``13-5``) take no part: column arithmetic repeats and undoes them
    (``8+0=8`` in two columns, ``1+0=1`` then ``1-0=1``) by coincidence, not to check. So
    re-doing ``7+5=12`` is not a check; re-doing ``12+9=21`` is.
    """
    return _verifies(read_trace(text))


def _verifies(trace: Trace) -> bool:
    if _VERIFICATION.search(trace.folded):
        return True
    last_use: dict[int, int] | None = None  # number -> last step using it; built on demand
    seen: set[tuple[str, int]] = set()
    expected: set[tuple[int, str, int, int]] = set()  # inverse steps that would check one
    for k, (at, lhs, value) in enumerate(trace.steps):
        if _COLUMN_STEP.fullmatch(lhs):
            continue  # repeats and undoes of digit steps happen by coincidence across columns
        if (lhs, value) in seen and not _concludes(trace.text, at):
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


def _concludes(text: str, at: int) -> bool:
    """The step at ``at`` restates a result: its sentence or clause opens with "so", "answer"…"""
    window = max(0, at - MAX_SENTENCE_CHARS)
    start = max(window, *(text.rfind(end, window, at) + 1 for end in "\n.!?"))
    sentence = text[start:at]
    clause = sentence[max(sentence.rfind(","), sentence.rfind(";"), sentence.rfind(":")) + 1 :]
    return bool(_CONCLUSION.match(sentence) or _CONCLUSION.match(clause))


def _last_use(steps: list[Step]) -> dict[int, int]:
    return {int(n): k for k, (_, lhs, _) in enumerate(steps) for n in NUMBER.findall(lhs)}


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
    return _backtracks(read_trace(text), numbers)


def _backtracks(trace: Trace, numbers: Sequence[int] | None) -> bool:
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
            for n in map(int, NUMBER.findall(lhs)):
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
        return FALSE_POSITIVE if specified else TRUE_POSITIVE
    return TRUE_NEGATIVE if specified else FALSE_NEGATIVE


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
    trace = analyse(parsed.reasoning, parsed.answer)
    return {
        **_length(trace.reasoning),
        SELF_CORRECTION_LEXICAL: _SELF_CORRECTION.search(trace.folded),
        SELF_CORRECTION_VERIFIED: _verified(trace, verdict),
        VERIFICATION: _verifies(trace),
        BACKTRACKING: _backtracks(trace, _given_numbers(task)),
        ASKED: asked(verdict),
        CLARIFY_OUTCOME: clarify_outcome(task, verdict),
        STATES_CONFIDENCE: parsed.confidence is not None,
        CONFIDENCE: parsed.confidence,
    }


TAGGERS = {
    SELF_CORRECTION_VERIFIED: self_correction_verified,
    SELF_CORRECTION_LEXICAL: lambda text, task, verdict: self_correction_lexical(text),
    VERIFICATION: lambda text, task, verdict: verification(text),
    BACKTRACKING: lambda text, task, verdict: backtracking(text, _given_numbers(task)),
    STATES_CONFIDENCE: lambda text, task, verdict: states_confidence(text),
}
"""Boolean taggers as ``(text, task, verdict) -> bool``: the behaviours a run config can put a
shaping reward on (``rewards.weights: {self_correction_verified: 0.5}``)."""
