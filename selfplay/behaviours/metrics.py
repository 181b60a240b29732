"""A step's behaviour metrics: the rates of the ``tag`` rows of its completions, namespaced."""

from __future__ import annotations

from collections import Counter

from selfplay.transcripts.schema import (
    ASKED,
    BACKTRACKING,
    CLARIFY_OUTCOME,
    CLARIFY_OUTCOMES,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    REASONING_CHARS,
    REASONING_STEPS,
    SELF_CORRECTION_LEXICAL,
    SELF_CORRECTION_VERIFIED,
    STATES_CONFIDENCE,
    TRUE_POSITIVE,
    VERIFICATION,
)

RATES = {
    "behaviour/self_correction_lexical_rate": SELF_CORRECTION_LEXICAL,
    "behaviour/self_correction_verified_rate": SELF_CORRECTION_VERIFIED,
    "behaviour/verification_rate": VERIFICATION,
    "behaviour/backtracking_rate": BACKTRACKING,
    "behaviour/ask_rate": ASKED,
    "behaviour/states_confidence_rate": STATES_CONFIDENCE,
    "length/reasoning_chars_mean": REASONING_CHARS,
    "length/reasoning_steps_mean": REASONING_STEPS,
}
"""Metric -> the tag column it is the mean of, over a step's rows."""


def aggregate(tags: list[dict]) -> dict[str, float]:
    """Per-step metrics over ``tag`` rows; a metric whose denominator is empty is omitted."""
    if not tags:
        return {}
    metrics = {name: sum(row[key] for row in tags) / len(tags) for name, key in RATES.items()}
    outcomes = Counter(row[CLARIFY_OUTCOME] for row in tags)
    unknown = set(outcomes) - set(CLARIFY_OUTCOMES)
    if unknown:
        raise ValueError(f"aggregate: unknown clarify_outcome {sorted(unknown)}")
    tp, fp, fn = outcomes[TRUE_POSITIVE], outcomes[FALSE_POSITIVE], outcomes[FALSE_NEGATIVE]
    if tp + fp:
        metrics["clarify/precision"] = tp / (tp + fp)
    if tp + fn:
        metrics["clarify/recall"] = tp / (tp + fn)
    return metrics
