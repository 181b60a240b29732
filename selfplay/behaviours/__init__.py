"""Behaviours: what a completion's reasoning does, tagged one transcript row at a time.

- ``trace``: how a reasoning is read once (its steps, stated answers and words);
- ``taggers``: the taggers over that reading, ``tag`` (every tag of a row) and ``TAGGERS``
  (the boolean ones a run config can put a shaping reward on);
- ``metrics``: ``aggregate``, a step's tags as namespaced metrics.

The tag names are columns of ``selfplay.transcripts.schema``.
"""

from __future__ import annotations

from selfplay.behaviours.metrics import aggregate
from selfplay.behaviours.taggers import (
    BACKTRACKING_MARKERS,
    SELF_CORRECTION_MARKERS,
    TAGGERS,
    VERIFICATION_MARKERS,
    asked,
    backtracking,
    clarify_outcome,
    outcome,
    reasoning_length,
    self_correction_lexical,
    self_correction_verified,
    states_confidence,
    tag,
    verification,
)
from selfplay.transcripts.schema import CLARIFY_OUTCOMES

__all__ = [
    "BACKTRACKING_MARKERS",
    "CLARIFY_OUTCOMES",
    "SELF_CORRECTION_MARKERS",
    "TAGGERS",
    "VERIFICATION_MARKERS",
    "aggregate",
    "asked",
    "backtracking",
    "clarify_outcome",
    "outcome",
    "reasoning_length",
    "self_correction_lexical",
    "self_correction_verified",
    "states_confidence",
    "tag",
    "verification",
]
