"""Elicited or newly acquired: a conclusion per skill and behaviour, with its evidence.

The base model and the trained one are evaluated on the same held-out tasks (``selfplay
eval``, N samples at temperature 1 per task). For each environment and level, a *skill* is
solving the task (verdict score 1); a *behaviour* is a tag of the completion (verified
self-correction, verification, a clarifying question on an underspecified task).

Evidence (every rule compares one bound, so bounds are one-sided at ``confidence``: the
two-sided intervals are computed at level ``2 * confidence - 1``, 90% for the default 95%):

- **reach** of the base model. Skill: pass@N, the share of tasks solved by at least one of
  the N samples, with an exact (Clopper-Pearson) interval over tasks. Behaviour: the share of
  the base model's samples that show it, with a Clopper-Pearson interval over samples.
- the same reach for the trained model;
- **gain**: the trained minus the base per-task rate at temperature 1 (pass@1 for a skill,
  the behaviour's rate for a behaviour), a paired bootstrap over tasks.

Rules, in order (``floor`` is ``Thresholds.floor`` for skills, ``behaviour_floor`` for
behaviours):

1. base reach high < floor -- the base model never gets there at any k tried:
   ``newly acquired`` when the trained reach low >= floor; ``not learned`` when the trained
   reach high < floor; else ``inconclusive``.
2. base reach low >= floor -- the base model already gets there:
   ``elicited`` when gain low > 0 (training moved it to pass@1); ``not learned`` when
   gain high < ``min_gain``; else ``inconclusive``.
3. otherwise (the base reach straddles the floor): ``inconclusive``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from selfplay.analysis.evals import BEHAVIOURS, RESAMPLES, measured_on, per_task
from selfplay.analysis.stats import Estimate, clopper_pearson, paired_difference

OUTCOMES = ("elicited", "newly acquired", "not learned", "inconclusive")


@dataclass(frozen=True)
class Thresholds:
    """The numbers the conclusion rules compare against (stated in every report)."""

    floor: float = 0.05
    """A skill's pass@N below this is "never reached"."""
    behaviour_floor: float = 0.01
    """A behaviour's rate in samples below this is "absent"."""
    min_gain: float = 0.05
    """A gain in pass@1 whose upper bound is below this counts as no gain."""
    behaviour_min_gain: float = 0.01
    """A gain in a behaviour's rate whose upper bound is below this counts as no gain
    (behaviours are rare: a rise from 2% to 4% is a doubling)."""
    confidence: float = 0.95
    """One-sided level of every bound the rules compare (two-sided intervals at 2c - 1)."""

    @property
    def two_sided(self) -> float:
        """The two-sided level whose bounds are one-sided at ``confidence``."""
        return 2 * self.confidence - 1

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_THRESHOLDS = Thresholds()


def decide(
    reach: Estimate, trained: Estimate, gain: Estimate, floor: float, min_gain: float
) -> tuple[str, str]:
    """``(outcome, reason)`` by the module's rules."""
    if reach.high < floor:
        if trained.low >= floor:
            return "newly acquired", (
                f"base never reaches it (upper bound {reach.high:.3f} < floor {floor}); "
                f"trained does (lower bound {trained.low:.3f} >= {floor})"
            )
        if trained.high < floor:
            return "not learned", (
                f"neither reaches it (base upper {reach.high:.3f}, trained upper "
                f"{trained.high:.3f}, floor {floor})"
            )
        return "inconclusive", (
            f"base never reaches it (upper {reach.high:.3f} < {floor}); trained "
            f"[{trained.low:.3f}, {trained.high:.3f}] straddles the floor"
        )
    if reach.low >= floor:
        if gain.low > 0:
            return "elicited", (
                f"base already reaches it (lower bound {reach.low:.3f} >= floor {floor}); "
                f"training raised the rate by {gain.value:+.3f} [{gain.low:+.3f}, {gain.high:+.3f}]"
            )
        if gain.high < min_gain:
            return "not learned", (
                f"base reaches it (lower {reach.low:.3f}) but training did not raise the rate: "
                f"gain {gain.value:+.3f} [{gain.low:+.3f}, {gain.high:+.3f}] < {min_gain}"
            )
        return "inconclusive", (
            f"base reaches it; gain {gain.value:+.3f} [{gain.low:+.3f}, {gain.high:+.3f}] "
            "neither clearly above 0 nor below the minimum gain"
        )
    return "inconclusive", (
        f"base reach [{reach.low:.3f}, {reach.high:.3f}] straddles the floor {floor}"
    )


def _interval(hits: int, total: int, confidence: float) -> Estimate:
    low, high = clopper_pearson(hits, total, confidence)
    return Estimate(hits / total, low, high)


def _paired(base_rates, trained_rates, confidence: float) -> Estimate:
    joined = base_rates.to_frame("base").join(trained_rates.to_frame("trained"), how="inner")
    if joined.empty:
        raise ValueError("base and trained evals share no task: were they run with equal settings?")
    return paired_difference(
        joined["base"].to_numpy(float),
        joined["trained"].to_numpy(float),
        resamples=RESAMPLES,
        confidence=confidence,
    )


def skill_conclusions(
    base, trained, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> list[dict[str, Any]]:
    """One conclusion per environment and level on solving the task."""
    c = thresholds.two_sided
    b, t = per_task(base), per_task(trained)
    out = []
    for (env, level), bg in b.groupby(["env", "difficulty"], sort=True):
        tg = t[(t["env"] == env) & (t["difficulty"] == level)]
        if tg.empty:
            continue
        reach = _interval(int((bg["hits"] > 0).sum()), len(bg), c)
        trained_reach = _interval(int((tg["hits"] > 0).sum()), len(tg), c)
        gain = _paired(_rates(bg), _rates(tg), c)
        outcome, reason = decide(reach, trained_reach, gain, thresholds.floor, thresholds.min_gain)
        out.append(
            {
                "env": env,
                "level": int(level),
                "what": "solve",
                "conclusion": outcome,
                "reason": reason,
                "samples": int(bg["n"].iloc[0]),
                "base_reach": reach.to_dict(),
                "trained_reach": trained_reach.to_dict(),
                "base_pass1": float(_rates(bg).mean()),
                "trained_pass1": float(_rates(tg).mean()),
                "gain": gain.to_dict(),
            }
        )
    return out


def behaviour_conclusions(
    base, trained, thresholds: Thresholds = DEFAULT_THRESHOLDS, pooled: bool = True
) -> list[dict[str, Any]]:
    """One conclusion per environment, level and behaviour (verified self-correction,
    verification, clarifying question); the lexical self-correction rate is reported beside
    the verified one but gets no conclusion of its own.

    ``pooled``: also one conclusion per environment and behaviour over all its levels together
    (``level`` "all"): rare behaviours need the samples of every level to be seen at all.
    """
    out = _behaviour_conclusions(base, trained, thresholds)
    if pooled:
        everything = _behaviour_conclusions(
            base.assign(difficulty=-1), trained.assign(difficulty=-1), thresholds
        )
        out += [{**v, "level": "all"} for v in everything]
    return out


def _behaviour_conclusions(base, trained, thresholds: Thresholds) -> list[dict[str, Any]]:
    c = thresholds.two_sided
    out = []
    for name, column in BEHAVIOURS.items():
        if name == "self_correction_lexical":
            continue
        b_rows, t_rows = measured_on(base, name), measured_on(trained, name)
        if b_rows.empty or t_rows.empty:
            continue
        b, t = per_task(b_rows, column), per_task(t_rows, column)
        for (env, level), bg in b.groupby(["env", "difficulty"], sort=True):
            tg = t[(t["env"] == env) & (t["difficulty"] == level)]
            if tg.empty:
                continue
            reach = _interval(int(bg["hits"].sum()), int(bg["n"].sum()), c)
            trained_reach = _interval(int(tg["hits"].sum()), int(tg["n"].sum()), c)
            gain = _paired(_rates(bg), _rates(tg), c)
            outcome, reason = decide(
                reach,
                trained_reach,
                gain,
                thresholds.behaviour_floor,
                thresholds.behaviour_min_gain,
            )
            out.append(
                {
                    "env": env,
                    "level": int(level),
                    "what": name,
                    "conclusion": outcome,
                    "reason": reason,
                    "base_reach": reach.to_dict(),
                    "trained_reach": trained_reach.to_dict(),
                    "gain": gain.to_dict(),
                }
            )
    return out


def _rates(group):
    return (group["hits"] / group["n"]).set_axis(
        list(zip(group["env"], group["difficulty"], group["task_id"], strict=True))
    )


def solvable_only_after(base, trained) -> list[dict[str, Any]]:
    """Tasks no base completion solved (greedy or sampled) that a trained one did."""

    def solved(rows):
        hit = rows.assign(ok=rows["verdict_score"] >= 1.0)
        return hit.groupby(["env", "difficulty", "task_id"])["ok"].agg(["sum", "count"])

    b, t = solved(base).add_suffix("_base"), solved(trained).add_suffix("_trained")
    joined = b.join(t, how="inner")
    found = joined[(joined["sum_base"] == 0) & (joined["sum_trained"] > 0)]
    return [
        {
            "env": env,
            "level": int(level),
            "task_id": task_id,
            "trained_solved": int(row["sum_trained"]),
            "of": int(row["count_trained"]),
        }
        for (env, level, task_id), row in found.iterrows()
    ]


def conclusion_counts(conclusions: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """For each ``what`` (solve, self_correction, ...): how many cells got each outcome."""
    out: dict[str, dict[str, int]] = {}
    for v in conclusions:
        counts = out.setdefault(v["what"], dict.fromkeys(OUTCOMES, 0))
        counts[v["conclusion"]] += 1
    return out
