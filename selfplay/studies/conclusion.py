"""The decision rule of a study, pure: interval against threshold, condition by condition.

A condition says the claim predicts a measure of one arm (or the per-seed difference between
two arms) lies ``above`` or ``below`` a threshold. With the measure's 95% interval over seeds:
- ``holds`` when the whole interval is on the claim's side of the threshold;
- ``fails`` when the whole interval is on the other side;
- ``unsure`` when the interval straddles it, or there is no interval (fewer than two seeds).

The study is ``replicated`` when every condition holds, ``not replicated`` when any fails, and
``inconclusive`` otherwise. The smallest effect each condition could have detected (80% power,
see ``selfplay.analysis.stats.seed_summary``) is reported beside it, so an ``unsure`` or a
``fails`` says how strong the evidence was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selfplay.analysis.stats import SeedSummary, seed_summary

OUTCOMES = ("replicated", "not replicated", "inconclusive")
STATUSES = ("holds", "fails", "unsure")


@dataclass(frozen=True)
class Condition:
    """One prediction of the claim: ``measure`` of ``arm`` (less ``minus_arm``'s, seed by
    seed, when given) lies on the ``side`` ("above" or "below") of ``threshold``."""

    measure: str
    arm: str
    side: str
    threshold: float
    minus_arm: str = ""

    def text(self) -> str:
        """The condition as one readable line."""
        what = f"{self.measure} of {self.arm}"
        if self.minus_arm:
            what = f"{what} minus {self.measure} of {self.minus_arm} (paired by seed)"
        return f"{what} {self.side} {self.threshold:g}"


def condition_values(
    condition: Condition, per_seed: dict[str, dict[int, dict[str, float | None]]]
) -> list[float]:
    """The per-seed values a condition is judged on: ``per_seed[arm][seed][measure]``, or its
    difference with ``minus_arm``'s on the seeds both have. Missing values (a seed where the
    measure is undefined) are left out."""
    mine = per_seed.get(condition.arm, {})
    if not condition.minus_arm:
        return [v for s in sorted(mine) if (v := mine[s].get(condition.measure)) is not None]
    other = per_seed.get(condition.minus_arm, {})
    out = []
    for seed in sorted(set(mine) & set(other)):
        a, b = mine[seed].get(condition.measure), other[seed].get(condition.measure)
        if a is not None and b is not None:
            out.append(a - b)
    return out


def status(condition: Condition, summary: SeedSummary | None) -> str:
    """``holds``, ``fails`` or ``unsure`` for one condition's summary (see the module)."""
    if summary is None or summary.low is None or summary.high is None:
        return "unsure"
    t = condition.threshold
    if condition.side == "above":
        return "holds" if summary.low > t else "fails" if summary.high < t else "unsure"
    return "holds" if summary.high < t else "fails" if summary.low > t else "unsure"


def outcome(statuses: list[str]) -> str:
    """The study's conclusion from its conditions' statuses."""
    if not statuses:
        raise ValueError("a study's rule needs at least one condition")
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown condition status {unknown[0]!r} (known: {', '.join(STATUSES)})")
    if all(s == "holds" for s in statuses):
        return "replicated"
    if any(s == "fails" for s in statuses):
        return "not replicated"
    return "inconclusive"


def decide(
    conditions: list[Condition], per_seed: dict[str, dict[int, dict[str, float | None]]]
) -> dict[str, Any]:
    """Every condition judged on the per-seed measures, and the study's conclusion:
    ``{"conditions": [...], "conclusion": ...}``, each condition with
    its text, values, summary (mean, interval, n, sd, min_detectable) and status."""
    judged = []
    for c in conditions:
        values = condition_values(c, per_seed)
        summary = seed_summary(values) if values else None
        judged.append(
            {
                "text": c.text(),
                "measure": c.measure,
                "arm": c.arm,
                "minus_arm": c.minus_arm,
                "side": c.side,
                "threshold": c.threshold,
                "values": values,
                "summary": summary.to_dict() if summary else None,
                "status": status(c, summary),
            }
        )
    return {
        "conditions": judged,
        "conclusion": outcome([j["status"] for j in judged]),
    }
