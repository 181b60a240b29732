"""The one completion format, parsed in one place.

A completion is reasoning (optionally inside ``<think>…</think>``) followed by either
``<answer>…</answer>`` or ``<ask>…</ask>`` (a clarifying question instead of an answer).
Only the last well-formed final tag counts; an answer mentioned in the reasoning does not.
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

# A final tag whose content holds no other final tag: `<answer>x</answer>` or `<ask>x</ask>`.
_FINAL = re.compile(r"<(answer|ask)>((?:(?!</?(?:answer|ask)>).)*?)</\1>", re.DOTALL)


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
    """Text after the final tag (a well-behaved completion has none)."""


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
        return Parsed("answer", answer=content, reasoning=_reasoning(before), trailing=trailing)
    return Parsed("ask", question=content, reasoning=_reasoning(before), trailing=trailing)


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
