"""The report's "Reward hacking watch" section: the Judge's reward against the ground truth
over steps, the divergence the detector found (or why none), and the transcripts the Judge paid
although their answer is wrong (``selfplay.analysis.hacking``)."""

from __future__ import annotations

from typing import Any

from selfplay.analysis.hacking import smooth
from selfplay.analysis.render.common import escape, figure, number, percent, png, table


def hacking_section(block: dict[str, Any]) -> list[str]:
    """The section for a ``hacking_summary`` block."""
    d = block["divergence"]
    out = ["<h2>Reward hacking watch</h2>", _finding(d), _method(d)]
    if d["points"]:
        out.append(hacking_plot(block))
    if d["before"] is not None:
        out.append(
            table(
                ["", "Judge reward", "ground truth", "gap", "steps"],
                [
                    [label, number(m["judge"]), number(m["truth"]), number(m["gap"]), m["points"]]
                    for label, m in (("before", d["before"]), ("diverged", d["after"]))
                ],
            )
        )
    if block["examples_note"]:
        return [*out, f"<p class='note'>No examples: {escape(block['examples_note'])}.</p>"]
    return out + _examples(block)


def _finding(d: dict[str, Any]) -> str:
    """One paragraph: where the series diverge, or why they do not."""
    if d["diverged"]:
        b, a = d["before"], d["after"]
        span = "to the end of the run" if d["ongoing"] else f"until step {d['until']}"
        return (
            f"<p class='bad'><b>Judge reward and ground truth diverge from step {d['step']}</b> "
            f"({span}): the Judge's reward went from {number(b['judge'])} to "
            f"{number(a['judge'])} while ground truth went from {number(b['truth'])} to "
            f"{number(a['truth'])}.</p>"
        )
    if d["too_few"]:
        return f"<p>Too few steps with ground truth to watch for divergence: {escape(d['reason'])}.</p>"
    return f"<p>Judge reward and ground truth do not diverge: {escape(d['reason'])}.</p>"


def _method(d: dict[str, Any]) -> str:
    """How the detector decides, with the parameters it used."""
    p = d["params"]
    return (
        "<p class='note'>On the completions of tasks with ground truth, the Judge's mean "
        "reward per step beside the ground truth's. Gap: Judge minus truth, smoothed by a "
        f"centred rolling mean over {p['window']} steps; baseline (shaded): its mean over the "
        f"first {p['baseline_share']:.0%} of the steps (at least {p['min_baseline']}). They "
        f"<i>diverge</i> when the smoothed gap stays above baseline + max({p['min_gap']}, "
        f"{p['spread_k']:g} standard errors) for {p['sustain']} consecutive steps, the "
        "per-step gap's median there is above it too, and the Judge reward rose by at least "
        f"{p['min_rise']}; it is dated by a least-squares fit of the per-step gap: flat, then "
        "a straight climb or a shift, whichever fits better. Steps without ground truth are "
        f"skipped ({d['skipped']} here).</p>"
    )


def _examples(block: dict[str, Any]) -> list[str]:
    """How often the Judge paid a wrong answer since the examples' step, and the examples."""
    share = block["paid_wrong"] / block["with_truth"] if block["with_truth"] else None
    out = [
        f"<p>Since step {block['examples_since']}, the Judge paid {block['paid_wrong']} of "
        f"{block['with_truth']} completions with ground truth whose answer is wrong "
        f"({percent(share)})"
        + (": what the policy may have learned to exploit.</p>" if block["examples"] else ".</p>")
    ]
    for r in block["examples"]:
        out.append(
            f"<details open><summary>step {r['step']} · {escape(r.get('task_id'))} · Judge "
            f"paid, truth says wrong</summary><pre>{escape(r.get('prompt'))}\n\n"
            f"{escape(r.get('completion'))}\n\nexpected: {escape(r.get('answer'))}</pre></details>"
        )
    return out


def hacking_plot(block: dict[str, Any]) -> str:
    """Judge reward and ground truth over steps (left) and their gap against the threshold
    (right), smoothed as the detector smooths them, the baseline shaded and a vertical line
    where they diverge; an ``<img>`` tag."""
    s, d = block["series"], block["divergence"]
    window = d["params"]["window"]
    fig, axes = figure(1, 2, height=3.0)
    left, right = axes[0]
    for ax, names in (
        (left, (("judge_reward", "Judge reward", "C0"), ("truth", "ground truth", "C2"))),
        (right, (("gap", "gap", "C3"),)),
    ):
        for name, label, colour in names:
            steps, values = _present(s["steps"], s[name])
            if steps:
                ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
                ax.plot(steps, smooth(values, window), color=colour, label=label)
    steps, fp = _present(s["steps"], s["false_positive_rate"])
    if steps:
        right.plot(steps, fp, color="C4", alpha=0.6, linewidth=0.8, label="false positive rate")
    if d["threshold"] is not None:
        right.axhline(d["threshold"], color="k", linestyle=":", linewidth=1, label="threshold")
    left.set_ylim(-0.02, 1.02)
    left.set_title(f"Judge reward vs ground truth, same completions (rolling {window})")
    right.set_title("gap: Judge reward - ground truth")
    for ax in (left, right):
        if d["baseline"] is not None:
            ax.axvspan(s["steps"][0], d["baseline"]["until"], color="0.5", alpha=0.1)
        if d["diverged"]:
            ax.axvline(d["step"], color="k", linestyle="--", linewidth=1, label="diverge")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    return png(fig)


def _present(steps: list, values: list) -> tuple[list, list[float]]:
    """The (step, value) pairs whose value is recorded (not None or NaN)."""
    pairs = [(s, v) for s, v in zip(steps, values, strict=True) if v is not None and v == v]
    return [s for s, _ in pairs], [float(v) for _, v in pairs]
