"""The one completion format, parsed in one place.

A completion is reasoning (optionally inside ``<think>…</think>``) followed by either
``<answer>…</answer>`` or ``<ask>…</ask>`` (a clarifying question instead of an answer).
Only the last well-formed final tag counts; an answer mentioned in the reasoning does not.

An answer may be followed by a self-assessment, ``<confidence>p</confidence>``: the
probability p in [0, 1] that the answer is right, written as a decimal (``0.8``, ``.8``,
``1``). It must come right after the final ``</answer>`` (whitespace between is allowed)
and is part of a well-formed ending, so ``<answer>x</answer><confidence>0.8</confidence>``
has no trailing text. A closed confidence tag whose content is not such a number, or lies
outside [0, 1], still belongs to the ending but gives no confidence (``confidence_error``
says why); an unclosed one is trailing text. After an ``<ask>`` a confidence tag is
trailing text too. It never changes which answer is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FINAL_CHARS = 4096
"""A final answer or question longer than this is malformed (guards scorers against huge outputs)."""

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
ASK_OPEN, ASK_CLOSE = "<ask>", "</ask>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, ASK_OPEN, ASK_CLOSE)
# Not in TAGS: the organism's tokenizer makes TAGS single tokens, and adding one would change
# the vocabulary (and so the weights) of organisms whose cached folders keep their names.
CONFIDENCE_OPEN, CONFIDENCE_CLOSE = "<confidence>", "</confidence>"

# A final tag whose content holds no other final tag: `<answer>x</answer>` or `<ask>x</ask>`.
_FINAL = re.compile(r"<(answer|ask)>((?:(?!</?(?:answer|ask)>).)*?)</\1>", re.DOTALL)
# A confidence tag right after the answer; its content holds no "<", so the match is linear.
_CONFIDENCE = re.compile(r"\s*<confidence>([^<]*)</confidence>")
_PROBABILITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
CONFIDENCE_ERRORS = ("not_a_number", "out_of_range", "unclosed")
"""Why a confidence tag after the answer gives no confidence (``Parsed.confidence_error``)."""


@dataclass(frozen=True)
class Parsed:
    """What a completion says, or why it cannot be read."""

    kind: str
    """"answer", "ask" or "malformed"."""
    answer: str | None = None
    question: str | None = None
    reasoning: str = ""
    """The ``<think>`` content if present, else the text before the final tag."""
    error: str | None = None
    """Why the completion is malformed: "no_final_tag", "unclosed_final_tag", "final_too_long"."""
    trailing: str = ""
    """Text after the final tag and its confidence tag, if any (a well-behaved completion
    has none)."""
    confidence: float | None = None
    """The p of ``<confidence>p</confidence>`` right after the final answer; None when there
    is none or it cannot be read."""
    confidence_error: str | None = None
    """Why a confidence tag there gives no confidence: "not_a_number", "out_of_range" or
    "unclosed" (``CONFIDENCE_ERRORS``); None when it was read or there is no tag."""


def parse_completion(text: str) -> Parsed:
    """Parse a completion into its final answer or question; see the module docstring."""
    last = None
    for match in _FINAL.finditer(text):
        last = match
    if last is None:
        unclosed = ANSWER_OPEN in text or ASK_OPEN in text
        error = "unclosed_final_tag" if unclosed else "no_final_tag"
        return Parsed("malformed", reasoning=_reasoning(text), error=error)
    tag, content = last.group(1), last.group(2).strip()
    before, trailing = text[: last.start()], text[last.end() :]
    if len(content) > MAX_FINAL_CHARS:
        return Parsed("malformed", reasoning=_reasoning(before), error="final_too_long")
    if tag == "answer":
        confidence, error, trailing = _confidence(trailing)
        return Parsed(
            "answer",
            answer=content,
            reasoning=_reasoning(before),
            trailing=trailing,
            confidence=confidence,
            confidence_error=error,
        )
    return Parsed("ask", question=content, reasoning=_reasoning(before), trailing=trailing)


def _confidence(after: str) -> tuple[float | None, str | None, str]:
    """(confidence, why unreadable, what trails it) of the text after a final answer."""
    match = _CONFIDENCE.match(after)
    if match is None:
        unclosed = after.lstrip().startswith(CONFIDENCE_OPEN)
        return None, "unclosed" if unclosed else None, after
    rest, text = after[match.end() :], match.group(1).strip()
    if not _PROBABILITY.fullmatch(text):
        return None, "not_a_number", rest
    value = float(text) + 0.0  # -0 reads as 0.0
    if not 0.0 <= value <= 1.0:
        return None, "out_of_range", rest
    return value, None, rest


def _reasoning(before: str) -> str:
    # find() rather than a lazy regex: linear even on thousands of unclosed <think> tags.
    start = before.find(THINK_OPEN)
    end = before.find(THINK_CLOSE, start + len(THINK_OPEN)) if start >= 0 else -1
    if end >= 0:
        return before[start + len(THINK_OPEN) : end].strip()
    return before.replace(THINK_OPEN, "").strip()


def render_completion(steps: list[str], final: str) -> str:
    """The canonical completion: ``<think>`` steps joined by newlines, then the final tag."""
    return f"{THINK_OPEN}{chr(10).join(steps)}{THINK_CLOSE}{final}"


def render_confidence(p: float) -> str:
    """The confidence tag for probability ``p``, with at most two decimals: ``0.8`` -> "0.8"."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a confidence is a probability in [0, 1], got {p!r}")
    return f"{CONFIDENCE_OPEN}{round(p, 2):g}{CONFIDENCE_CLOSE}"
