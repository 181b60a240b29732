"""Metric artefacts: does exact match jump where its continuous counterparts move smoothly?

Read from the probe points of a run (``reading.probe_series``: the probes run at every
checkpoint interval). The method is in ``artefacts``'s docstring.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from selfplay.analysis.stats import jump_share

JUMP_SHARE = 0.5
"""A curve "jumps" at an interval holding at least this share of its total change."""
MIN_EXACT_CHANGE = 0.1
"""Exact match must change by at least this much (first to last probe) to be called a jump."""


def artefacts(probe: dict[tuple[str, int], dict[str, list]]) -> list[dict[str, Any]]:
    """Per environment and level: does exact match jump, and do its continuous counterparts?

    Over the probe points, the interval where greedy exact match rises (or falls) most is
    found. Exact match *jumps* there when it changes by at least ``MIN_EXACT_CHANGE`` from
    first to last probe and that interval holds at least ``JUMP_SHARE`` of its movement
    (``stats.jump_share``: the step over the total variation). A continuous measure jumps at
    the same interval by the same share, moving the same way (gold log-probability up when
    exact match goes up; edit distance down). A jump in exact match with every continuous
    measure smooth there is a *likely metric artefact*; a jump in both is a *genuine
    transition*.
    """
    out = []
    for (env, level), s in probe.items():
        exact = s.get("greedy", [])
        entry: dict[str, Any] = {"env": env, "level": level, "probes": len(exact)}
        if len(exact) < 3:
            out.append({**entry, "finding": "too few probes"})
            continue
        deltas = np.diff(exact)
        total = exact[-1] - exact[0]
        i = int(np.argmax(deltas * (1 if total >= 0 else -1))) + 1
        share = jump_share(exact, i)
        entry.update(
            interval=[s["steps"][i - 1], s["steps"][i]],
            exact_change=total,
            exact_share=share,
        )
        continuous = {}
        for m, sign in (("gold_logprob", 1.0), ("edit_distance", -1.0)):
            values = s.get(m)
            if values is not None and not any(math.isnan(v) for v in values):
                continuous[m] = jump_share(values, i, direction=sign * (deltas[i - 1] or 1.0))
        entry["continuous_share"] = continuous
        if "brier" in s:  # calibration beside them: does the model know when it is right?
            entry["brier_first_last"] = [s["brier"][0], s["brier"][-1]]
        if abs(total) < MIN_EXACT_CHANGE or share < JUMP_SHARE:
            finding = "no jump in exact match"
        elif not continuous:
            finding = "jump (no continuous measure recorded)"
        elif any(v >= JUMP_SHARE for v in continuous.values()):
            finding = "genuine transition"
        else:
            finding = "likely metric artefact"
        out.append({**entry, "finding": finding})
    return out
