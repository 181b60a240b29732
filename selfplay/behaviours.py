"""Behaviour taggers: what a completion's reasoning does, one transcript row at a time.

``tag`` labels a row (reasoning length, self-correction, verification, backtracking,
asking, stating a confidence) and ``aggregate`` turns a step's rows into namespaced
metrics. Everything here is pure and cheap: it runs on every completion of every training
step.

Two views of self-correction are kept on purpose. ``self_correction_lexical`` counts the
words a model says ("wait", "actually"); ``self_correction_verified`` counts a result that
really changed on the way to a correct final answer. A model can learn to say "wait"
without changing anything, or to fix a step silently; the two rates disagree exactly then.

A *step* is ``<lhs>=<integer>`` anywhere in the reasoning, where ``lhs`` is integers (up
to 30 digits) joined by up to 12 of ``+ - * /``, with optional parentheses and spaces
(``7+5=12``, ``(4+8)*3 = 36``). Text before the lhs is tolerated when it does not run
into it (``wait, 7+5=12``, ``so 7+5=12``; not ``x7+5=12`` or ``3.5+2=5``); so is text after
the value when it does not continue the number or the expression (``= 12.``, ``= 12, so``,
``= 12)``; not ``= 12.5``, ``= 12x`` or ``= 12*3``); in a chain ``a = b = 12`` the step is
the last link ``b=12``; a bare lhs line followed by a line ``= 12`` is one step. Lhs are
compared with whitespace and unmatched outer parentheses removed and nothing else
normalised: ``5+7`` and ``7+5`` are different computations.

Steps are read from the layouts pretrained models write as well as the organism's one step a
line (``_readable``): several steps a line, markdown (``**56**``, bullets, code), LaTeX
(``$9 \\times 7 = 63$``, ``\\div``, ``\\frac{96}{8}``, ``1{,}234``, ``\\boxed{63}`` read as a
stated answer), the symbols ``× · ÷ −`` and ``7 x 8``, thousands separators (``4,725``), and
operators in words between numbers (``9 times 7 is 63``, ``96 divided by 8 equals 12``).
``tests/data/behaviour_traces.md`` holds the labelling rules and the agreement per layout.
"""

from __future__ import annotations

import ast
import functools
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
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

CLARIFY_OUTCOMES = ("true_positive", "false_positive", "false_negative", "true_negative")
"""``clarify_outcome`` values: asked on underspecified, asked on specified, and the rest."""

MAX_STATED_CHARS = 200
"""A longer stated answer (``answer …`` line or ``<answer>`` in the reasoning) is ignored."""

MAX_SENTENCE_CHARS = 200
"""How far back from a repeated step ``verification`` looks for the word that concludes."""


class _Markers:
    """Whole-word, case-insensitive phrase search over ``_fold``ed text.

    ``str.find`` per phrase, then a boundary check: far faster than a regex alternation with
    lookarounds, and linear. A phrase ending in a word character needs a non-word character
    after it ("wait" not "waiting"); one ending in punctuation does not ("no," in "no, 12").
    Phrases are grouped by their first three characters, and a group is only searched when
    its stem occurs: one ``find`` answers for "confirm", "confirms", "confirmed"….
    """

    def __init__(self, phrases: Sequence[str]):
        self.phrases = tuple(_fold(p) for p in phrases)
        self.stems: dict[str, list[str]] = {}
        for phrase in self.phrases:
            self.stems.setdefault(phrase[:3], []).append(phrase)

    def search(self, folded: str) -> bool:
        return any(
            stem in folded and any(self._find(folded, phrase) for phrase in group)
            for stem, group in self.stems.items()
        )

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
    rf"{_H}*(?:\n{_H}*)?={_H}*(?P<value>-?[0-9]{{1,30}})"
    # The value ends the step unless a digit, a decimal, a letter, another "=" or an
    # operator with its operand follows (``= 12.5``, ``= 12x``, ``= 7*5 = 35``).
    rf"(?![0-9]|\.[0-9]|[A-Za-z_(%^]|{_H}*(?:=|[-+*/]{_H}*[(0-9]))",
)
_LONE = re.compile(rf"^{_H}*={_H}*(?P<value>-?[0-9]{{1,30}}){_H}*(?:\.{_H}*)?$", re.MULTILINE)
# "answer 12" at a line's start (the organism), or "answer is 12" / "answer: 12" anywhere.
_ANSWER = re.compile(
    rf"^{_H}*(?:so{_H}+)?(?:the{_H}+)?(?:final{_H}+)?answer(?:{_H}+is\b|{_H}*[:=])?"
    rf"|\banswer(?:{_H}+(?:is|should{_H}+be|would{_H}+be|must{_H}+be)\b|{_H}*[:=])",
    re.MULTILINE | re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.,;!?](?:\s|$)|[\n<]")
_STATED_ANSWER = re.compile(r"[-+*/()0-9\s]*[0-9][-+*/()0-9\s]*")
_INTEGER = re.compile(r"-?[0-9]{1,30}")
_THOUSANDS = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3}){1,9}")
_NUMBER = re.compile(r"[0-9]+")
_BINARY = re.compile(r"([0-9]+)([-+*/])([0-9]+)")
# A digit step of column arithmetic (envs/arithmetic.py): 7+5, 7+5+1, 13-5, 9-10 (borrowed).
_COLUMN_STEP = re.compile(r"[0-9]\+[0-9](?:\+1)?|1?[0-9]-(?:10|[0-9])")
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}

# What the layouts of pretrained models write for what a step needs (see ``_readable``).
_SYMBOLS = str.maketrans(
    {"×": "*", "✕": "*", "·": "*", "⋅": "*", "∙": "*", "÷": "/", "−": "-", "–": "-"}
    | dict.fromkeys("\u00a0\u2009\u202f", " ")
)
# Every branch opens with a literal character, so the engine skips the rest of the text fast.
_LAYOUT = re.compile(
    r"\\(?:[dt]?frac\{[0-9]{1,30}\}\{[0-9]{1,30}\}|(?:begin|end)\{[^{}\n]{0,30}\}|boxed\{"
    r"|[A-Za-z]{1,30}|[\\,;:! ()\[\]])"
    r"|\{,\}|\{|\}|\*\*|__|\$|`|&"
    r"|,(?<=[0-9],)(?=[0-9]{3}(?![0-9]))"  # a thousands separator
    r"|x(?<=[0-9]x) ?(?=[(0-9])"  # 7x8
    r"| (?<=[0-9)] )(?:x|plus|minus|times|multiplied by|divided by) (?=[(0-9])"
    r"| (?<=[0-9)] )(?:is equal to|equals|is|makes|gives) (?=-?[0-9])"
)
_PLAIN = {
    **dict.fromkeys(("\\times", "\\cdot", "\\ast", " x ", " times ", " multiplied by "), " * "),
    **dict.fromkeys(("x", "x "), "*"),
    **dict.fromkeys(("\\div", " divided by "), " / "),
    **dict.fromkeys(("\\left", "\\right", "\\,", "{,}", ","), ""),  # thin space, thousands
    **dict.fromkeys((" is ", " equals ", " is equal to ", " makes ", " gives "), " = "),
    " plus ": " + ",
    " minus ": " - ",
    "\\boxed{": " answer: ",
    "\\\\": "\n",
}
"""What ``_readable`` writes for a token of ``_LAYOUT``; any other token becomes a space."""

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


# (offset in ``_Trace.text``, lhs as ``_key`` writes it, value): a plain tuple, as a
# NamedTuple costs a third of the tagging time on a reasoning of a few hundred steps.
_Step = tuple[int, str, int]


class _Trace(NamedTuple):
    """The parsed reasoning of one completion, shared by every tagger."""

    reasoning: str
    folded: str
    """The reasoning as ``_fold`` writes it, for marker search."""
    text: str
    """The reasoning as ``_readable`` writes it: what steps and stated answers are read from."""
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
    """Whitespace and a trailing full stop removed, lower case; integers canonical (+012 -> 12,
    4,725 -> 4725)."""
    text = "".join(answer.split()).rstrip(".").lower()
    number = text.removeprefix("+")
    value = _as_integer(number.replace(",", "") if _THOUSANDS.fullmatch(number) else number)
    return str(value) if value is not None else text


def _same_answer(stated: str, final: str | None) -> bool:
    """Two normalised answers say the same: the same text, or the same value and, when both
    are expressions, the same numbers (countdown's "20" is "4*3+8", and "(4*3)+8" and
    "8+4*3" are too; "4+8+8" is another answer)."""
    if stated == final:
        return True
    if final is None:
        return False
    value = _value(stated)
    if value is None or value != _value(final):
        return False
    if _as_integer(stated) is not None or _as_integer(final) is not None:
        return True
    return sorted(_NUMBER.findall(stated)) == sorted(_NUMBER.findall(final))


@functools.lru_cache(maxsize=1024)
def _value(expression: str) -> Fraction | None:
    """The value of integers in ``+ - * /`` and parentheses; None if it is not such an expression."""
    if not _STATED_ANSWER.fullmatch(expression) or "**" in expression or "//" in expression:
        return None
    try:
        return _evaluate(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ZeroDivisionError, RecursionError):
        return None


def _evaluate(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
    raise SyntaxError("not an expression in + - * /")


def _key(lhs: str) -> str:
    """An lhs as steps are compared: no whitespace, no unmatched outer parenthesis."""
    key = "".join(lhs.split()) if " " in lhs or "\t" in lhs else lhs
    if "(" in key or ")" in key:
        while key.startswith("(") and key.count("(") > key.count(")"):
            key = key[1:]
        while key.endswith(")") and key.count(")") > key.count("("):
            key = key[:-1]
    return key


def _readable(reasoning: str) -> str:
    """The reasoning with the layout of markdown, LaTeX and prose arithmetic made plain.

    Symbols become ``* / -``; LaTeX commands, math delimiters, markdown emphasis and code
    marks become spaces (``\\times`` ``*``, ``\\div`` ``/``, ``\\frac{96}{8}`` ``96/8``,
    ``\\\\`` a new line, ``\\boxed{`` ``answer:``); thousands separators go (``4,725``,
    ``1{,}234``, ``12\\,345``); between numbers ``x`` and the words plus, minus, times,
    multiplied by, divided by become operators and is, equals, is equal to, makes, gives
    become ``=``. Text without any of these is returned as it is.
    """
    text = reasoning if reasoning.isascii() else reasoning.translate(_SYMBOLS)
    return _LAYOUT.sub(_plain, text)


def _plain(m: re.Match) -> str:
    token = m[0]
    if token.startswith("\\") and token[1:2].isalpha() and token[-1] == "}":
        if token.startswith(("\\begin", "\\end")):
            return "\n"
        if "frac" in token:  # \frac{96}{8}
            return "/".join(token[token.index("{") + 1 : -1].split("}{"))
    return _PLAIN.get(token, " ")


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
    text = _readable(reasoning)
    matches = list(_STEP.finditer(text))
    steps = [(m.start(), _key(m["lhs"]), int(m["value"])) for m in matches]
    # A lone "= 12" whose value ends where a split step "7+5" / "= 12" ends is its second half.
    split_ends = {m.end("value") for m in matches if "\n" in m[0]}
    lone = [
        (m.start(), int(m["value"]))
        for m in _LONE.finditer(text)
        if m.end("value") not in split_ends
    ]
    folded = _fold(reasoning)
    stated = _stated_in_tags(text)
    for m in _ANSWER.finditer(text) if "answer" in folded or "\\boxed" in reasoning else ():
        limit = m.end() + MAX_STATED_CHARS + 1
        end = _SENTENCE_END.search(text, m.end(), limit)
        rest = text[m.end() : end.start() if end else limit].strip().rstrip(".").strip()
        if len(rest) <= MAX_STATED_CHARS and _STATED_ANSWER.fullmatch(rest):
            stated.append(_normalise(rest))
    final_norm = None if final is None else _normalise(final)
    return _Trace(reasoning, folded, text, steps, stated, lone, final_norm)


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
    return _verified(_trace(text), verdict)


def _verified(trace: _Trace, verdict: Verdict) -> bool:
    if verdict.score != 1.0:
        return False
    first_value: dict[str, int] = {}
    for _, lhs, value in trace.steps:
        if first_value.setdefault(lhs, value) != value:
            return True
    if any(not _same_answer(stated, trace.final) for stated in trace.stated):
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
    return _verifies(_trace(text))


def _verifies(trace: _Trace) -> bool:
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
