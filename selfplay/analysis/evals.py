"""Tables over eval transcripts: pass@k with confidence intervals, behaviour rates.

An eval transcript (``selfplay eval``) has, per task, one greedy row (``sample`` -1,
``temperature`` 0) and N sampled rows at temperature 1. A sample counts as correct when
its verdict score is 1. Everything here groups by environment and level (``difficulty``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from selfplay.analysis.stats import bootstrap_mean, ks_up_to, pass_at_k_estimate

BEHAVIOURS = {
    "self_correction": "self_correction_verified",
    "self_correction_lexical": "self_correction_lexical",
    "verification": "verification",
    "clarifying_question": "asked",
    "stating_confidence": "states_confidence",
}
"""Behaviour name in reports -> the transcript tag it is measured by. The clarifying question
is measured on underspecified tasks only (asked when information was missing), stating a
confidence after the answer on specified tasks only (where answering is right)."""

RESAMPLES = 2000
"""Bootstrap resamples for every interval in the analysis."""


def sampled(rows):
    """The temperature-1 rows."""
    return rows[rows["temperature"] > 0]


def measured_on(rows, behaviour: str):
    """The rows a behaviour is measured on: underspecified tasks for the clarifying question
    (asking is only right there), specified ones for stating a confidence, every row
    otherwise. No rows for stating a confidence in transcripts written before its tag was."""
    if behaviour == "clarifying_question":
        return rows[~rows["specified"].astype(bool)]
    if behaviour == "stating_confidence":
        if BEHAVIOURS[behaviour] not in rows.columns:
            return rows.iloc[:0]
        return rows[rows["specified"].astype(bool)]
    return rows


def per_task(rows, column: str = "correct"):
    """Per (env, level, task_id): samples and the count of ``column`` true among them.

    ``column`` "correct" means verdict score 1; any other is a boolean tag column.
    """
    rows = sampled(rows)
    hits = rows["verdict_score"] >= 1.0 if column == "correct" else rows[column].astype(bool)
    frame = rows[["env", "difficulty", "task_id"]].assign(hit=hits.astype(int))
    out = frame.groupby(["env", "difficulty", "task_id"], sort=True)["hit"].agg(["sum", "count"])
    return out.rename(columns={"sum": "hits", "count": "n"}).reset_index()


def pass_at_k_table(rows, ks: list[int] | None = None) -> list[dict[str, Any]]:
    """Per environment and level: tasks, samples, greedy accuracy and pass@k with CIs."""
    counts = per_task(rows)
    greedy = rows[rows["temperature"] == 0]
    table = []
    for (env, level), group in counts.groupby(["env", "difficulty"], sort=True):
        n = int(group["n"].min())
        if int(group["n"].max()) != n:
            raise ValueError(
                f"eval rows: environment {env!r} level {level}: tasks have between "
                f"{n} and {int(group['n'].max())} samples; pass@k needs the same number"
            )
        hits = group["hits"].to_numpy()
        g = greedy[(greedy["env"] == env) & (greedy["difficulty"] == level)]
        entry = {
            "env": env,
            "level": int(level),
            "tasks": len(group),
            "samples": n,
            "greedy": _mean(g["verdict_score"] >= 1.0),
            "pass_at_k": {
                str(k): pass_at_k_estimate(hits, n, k, resamples=RESAMPLES).to_dict()
                for k in (ks or ks_up_to(n))
                if k <= n
            },
        }
        table.append(entry)
    return table


def behaviour_rates(rows) -> list[dict[str, Any]]:
    """Per environment, level and behaviour: the rate among sampled completions, with a CI
    from a bootstrap over tasks (per-task rates), and the tasks it was measured on."""
    out = []
    for name, column in BEHAVIOURS.items():
        subset = measured_on(rows, name)
        if subset.empty:
            continue
        counts = per_task(subset, column)
        for (env, level), group in counts.groupby(["env", "difficulty"], sort=True):
            rates = (group["hits"] / group["n"]).to_numpy()
            out.append(
                {
                    "env": env,
                    "level": int(level),
                    "behaviour": name,
                    "tasks": len(group),
                    "rate": bootstrap_mean(rates, resamples=RESAMPLES).to_dict(),
                    "count": int(group["hits"].sum()),
                    "samples": int(group["n"].sum()),
                }
            )
    return out


def continuous_table(rows) -> list[dict[str, Any]]:
    """Per environment and level: means of the greedy continuous measures."""
    greedy = rows[rows["temperature"] == 0]
    columns = [c for c in greedy.columns if c.startswith("greedy_")]
    out = []
    for (env, level), group in greedy.groupby(["env", "difficulty"], sort=True):
        entry = {"env": env, "level": int(level)}
        for c in columns:
            entry[c.removeprefix("greedy_")] = _mean(group[c].dropna())
        out.append(entry)
    return out


def summarise(rows) -> dict[str, Any]:
    """Everything ``eval.json`` reports about one evaluation."""
    return {
        "pass_at_k": pass_at_k_table(rows),
        "behaviours": behaviour_rates(rows),
        "continuous": continuous_table(rows),
    }


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=float)
    return float(values.mean()) if values.size else None
