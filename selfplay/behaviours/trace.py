"""How a completion's reasoning is read: the steps it computes, the answers it states, its words.

``analyse`` reads a reasoning once into a ``Trace`` that every tagger of
``selfplay.behaviours.taggers`` shares; ``Markers`` finds phrases in it as whole words.

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
line (``readable``): several steps a line, markdown (``**56**``, bullets, code), LaTeX
(``$9 \\times 7 = 63$``, ``\\div``, ``\\frac{96}{8}``, ``1{,}234``, ``\\boxed{63}`` read as a
stated answer), the symbols ``× · ÷ −`` and ``7 x 8``, thousands separators (``4,725``), and
operators in words between numbers (``9 times 7 is 63``, ``96 divided by 8 equals 12``).
``tests/data/behaviour_traces.md`` holds the labelling rules and the agreement per layout.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from envs import parse_completion

MAX_STATED_CHARS = 200
"""A longer stated answer (``answer …`` line or ``<answer>`` in the reasoning) is ignored."""


class Markers:
    """Whole-word, case-insensitive phrase search over ``fold``ed text.

    ``str.find`` per phrase, then a boundary check: far faster than a regex alternation with
    lookarounds, and linear. A phrase ending in a word character needs a non-word character
    after it ("wait" not "waiting"); one ending in punctuation does not ("no," in "no, 12").
    Phrases are grouped by their first three characters, and a group is only searched when
    its stem occurs: one ``find`` answers for "confirm", "confirms", "confirmed"….
    """

    def __init__(self, phrases: Sequence[str]):
        self.phrases = tuple(fold(p) for p in phrases)
        self.stems: dict[str, list[str]] = {}
        for phrase in self.phrases:
            self.stems.setdefault(phrase[:3], []).append(phrase)

    def search(self, folded: str) -> bool:
        """Whether one of the phrases occurs in ``folded`` (text as ``fold`` writes it)."""
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


def fold(text: str) -> str:
    """Lower case, ’ as ', every whitespace run a single space: what markers are matched on."""
    return " ".join(text.lower().replace("’", "'").split())


# The patterns below run over the whole reasoning, so each is linear: no two neighbouring
# quantifiers can match the same characters, and runs that restart at every position are
# bounded ({1,30} digits, {1,12} operators), so hostile input cannot make them backtrack.
HSPACE = _H = r"[^\S\n]"
"""Horizontal whitespace, as a regular expression."""
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
NUMBER = re.compile(r"[0-9]+")
"""The digits of a non-negative integer (``NUMBER.findall(lhs)``: the operands of a step)."""

# What the layouts of pretrained models write for what a step needs (see ``readable``).
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
"""What ``readable`` writes for a token of ``_LAYOUT``; any other token becomes a space."""


Step = tuple[int, str, int]
"""(offset in ``Trace.text``, lhs as ``_key`` writes it, value): a plain tuple, as a
NamedTuple costs a third of the tagging time on a reasoning of a few hundred steps."""


class Trace(NamedTuple):
    """The parsed reasoning of one completion, shared by every tagger."""

    reasoning: str
    folded: str
    """The reasoning as ``fold`` writes it, for marker search."""
    text: str
    """The reasoning as ``readable`` writes it: what steps and stated answers are read from."""
    steps: list[Step]
    stated: list[str]
    """Answers stated in the reasoning: ``answer 12`` lines and ``<answer>`` tags, normalised."""
    lone: list[tuple[int, int]]
    """(offset, value) of each ``= N`` line that is not the second half of a split step."""
    final: str | None
    """The completion's final answer, normalised; None after an ``<ask>`` or malformed output."""


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


def same_answer(stated: str, final: str | None) -> bool:
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
    return sorted(NUMBER.findall(stated)) == sorted(NUMBER.findall(final))


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


def readable(reasoning: str) -> str:
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


def analyse(reasoning: str, final: str | None) -> Trace:
    """Steps, stated answers and lone ``= N`` lines of the reasoning."""
    text = readable(reasoning)
    matches = list(_STEP.finditer(text))
    steps = [(m.start(), _key(m["lhs"]), int(m["value"])) for m in matches]
    # A lone "= 12" whose value ends where a split step "7+5" / "= 12" ends is its second half.
    split_ends = {m.end("value") for m in matches if "\n" in m[0]}
    lone = [
        (m.start(), int(m["value"]))
        for m in _LONE.finditer(text)
        if m.end("value") not in split_ends
    ]
    folded = fold(reasoning)
    stated = _stated_in_tags(text)
    for m in _ANSWER.finditer(text) if "answer" in folded or "\\boxed" in reasoning else ():
        limit = m.end() + MAX_STATED_CHARS + 1
        end = _SENTENCE_END.search(text, m.end(), limit)
        rest = text[m.end() : end.start() if end else limit].strip().rstrip(".").strip()
        if len(rest) <= MAX_STATED_CHARS and _STATED_ANSWER.fullmatch(rest):
            stated.append(_normalise(rest))
    final_norm = None if final is None else _normalise(final)
    return Trace(reasoning, folded, text, steps, stated, lone, final_norm)


def read_trace(text: str) -> Trace:
    """The ``Trace`` of a whole completion (its reasoning and final answer)."""
    parsed = parse_completion(text)
    return analyse(parsed.reasoning, parsed.answer)
