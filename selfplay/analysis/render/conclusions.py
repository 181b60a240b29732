"""The conclusions drawn: the report's "Elicited or newly acquired" section (the counts, the
rules, one row per skill or behaviour and level, the tasks solvable only after training, the
base model's log-probability of the trained model's solutions) and the terminal table of the
counts that ``selfplay analyze`` prints."""

from __future__ import annotations

from typing import Any

from selfplay.analysis.conclusions import OUTCOMES
from selfplay.analysis.render.common import escape, estimate, number, table

SOLVABLE_SHOWN = 20
"""Tasks solvable only after training listed in the report (all are in the summary)."""


def conclusions_section(summary: dict, t: dict) -> list[str]:
    """The section for a summary with evaluations (``t``: its thresholds)."""
    counts = summary["conclusion_counts"]
    s = summary["evals"]["settings"]
    only = summary["solvable_only_after"]
    out = [
        "<h2>Elicited or newly acquired</h2>",
        f"<p>Base and trained model on the same held-out tasks: {s['tasks_per_level']} per "
        f"environment and level, {s['samples']} samples at temperature 1 each plus one greedy "
        f"(task seed {s['seed']}). Base: <code>{escape(summary['evals']['base']['model'])}"
        f"</code>; trained: <code>{escape(summary['evals']['trained']['model'])}</code>.</p>",
        table(
            ["what", *OUTCOMES], [[what, *(c[o] for o in OUTCOMES)] for what, c in counts.items()]
        ),
        _rules(t),
        "<p>Filter: <input id='conclusion-filter' placeholder='e.g. self_correction, elicited'>"
        "</p>",
        _detail(summary["conclusions"]),
        f"<p><b>Solvable only after training:</b> {len(only)} tasks (no base completion, greedy "
        "or sampled, solved them; a trained one did).</p>",
    ]
    if only:
        out.append(
            table(
                ["task", "level", "trained solved"],
                [
                    [o["task_id"], o["level"], f"{o['trained_solved']}/{o['of']}"]
                    for o in only[:SOLVABLE_SHOWN]
                ],
            )
        )
    lp = summary["base_logprob"]
    if lp.get("trained_mean") is not None:
        out.append(_in_base_distribution(lp))
    return out


def _rules(t: dict) -> str:
    """The rules that decide a conclusion, with the thresholds of this analysis."""
    return (
        "<p class='note'><b>Rules.</b> Reach of the base model: for solving, pass@N (share of "
        "tasks solved by at least one of N samples) with a Clopper-Pearson interval over tasks; "
        "for a behaviour, its rate among samples with a Clopper-Pearson interval over samples. "
        "Gain: trained minus base per-task rate at temperature 1 (pass@1, or the behaviour's "
        f"rate), paired bootstrap over tasks. Every bound the rules compare is one-sided at "
        f"{t['confidence']:.0%} (the intervals shown are two-sided at "
        f"{2 * t['confidence'] - 1:.0%}). "
        f"<i>newly acquired</i>: base reach upper bound &lt; floor ({t['floor']} for solving, "
        f"{t['behaviour_floor']} for behaviours) and trained reach lower bound &ge; floor. "
        "<i>elicited</i>: base reach lower bound &ge; floor and gain lower bound &gt; 0. "
        "<i>not learned</i>: neither reaches the floor, or gain upper bound &lt; "
        f"{t['min_gain']} ({t['behaviour_min_gain']} for behaviours). Behaviours also get a "
        "conclusion over all levels of an environment together (level <i>all</i>). "
        "<i>inconclusive</i>: otherwise.</p>"
    )


def _detail(conclusions: list[dict[str, Any]]) -> str:
    """One row per conclusion, coloured by its outcome."""
    rows = [
        [
            c["env"],
            c["level"],
            c["what"],
            c["conclusion"],
            estimate(c["base_reach"]),
            estimate(c["trained_reach"]),
            estimate(c["gain"]),
            c["reason"],
        ]
        for c in conclusions
    ]
    return table(
        ["env", "level", "what", "conclusion", "base reach", "trained reach", "gain", "why"],
        rows,
        cls=[c["conclusion"].replace(" ", "-") for c in conclusions],
        table_id="conclusions",
    )


def _in_base_distribution(lp: dict[str, Any]) -> str:
    """How likely the base model finds the trained model's correct solutions."""
    return (
        f"<p><b>Are the trained model's solutions in the base distribution?</b> Mean "
        f"log-probability per token under the base model: trained model's correct solutions "
        f"{lp['trained_mean']:.3f} ({lp['trained_solutions']} scored), the base model's own "
        f"correct samples {number(lp.get('base_mean'))}. "
        + (
            f"{lp['in_base_share']:.1%} of the trained solutions score at least the base "
            f"samples' 5th percentile ({lp['base_p5']:.3f})."
            if "in_base_share" in lp
            else ""
        )
        + "</p>"
    )


def conclusion_table(summary: dict):
    """A rich table: per skill or behaviour, how many (env, level) cells got each conclusion."""
    from rich.table import Table

    out = Table(title="Elicited or newly acquired (cells = environment x level)")
    for column in ("what", *OUTCOMES):
        out.add_column(column, justify="left" if column == "what" else "right")
    for what, counts in summary["conclusion_counts"].items():
        out.add_row(what, *(str(counts[o]) for o in OUTCOMES))
    return out
