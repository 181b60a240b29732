"""The report's "Self-play: the Challenger" section: collapses, difficulty and solve rate of the
proposals over steps, their validity and diversity, the Challenger's reward, and its proposals
of the first and last step (``selfplay.analysis.play``)."""

from __future__ import annotations

from selfplay.analysis.render.common import escape, figure, number, percent, png, table


def selfplay_section(sp: dict) -> list[str]:
    """The section for the summary's ``selfplay`` part."""
    out = [
        "<h2>Self-play: the Challenger</h2>",
        _collapse_banner(sp),
        _selfplay_plot(sp),
        "<p class='note'>The Challenger's reward per proposal:</p>",
        f"<pre>{escape(sp['formula'])}</pre>",
    ]
    if not sp.get("proposals"):
        return [*out, "<p>No Challenger transcripts.</p>"]
    out.append(
        table(
            ["status", "proposals", "share"],
            [[k, n, percent(n / sp["proposals"])] for k, n in sorted(sp["status"].items())],
        )
    )
    levels = sorted({lv for side in sp["difficulty"].values() for lv in side}, key=int)
    out += [
        f"<p>Valid proposals by level, first Challenger step ({sp['steps']['first']}) and last "
        f"({sp['steps']['last']}):</p>",
        table(
            ["level", "first step", "last step"],
            [
                [lv, *(sp["difficulty"][side].get(lv, 0) for side in ("first", "last"))]
                for lv in levels
            ],
        ),
    ]
    for side in ("first", "last"):
        out.append(f"<p>Proposals of the {side} Challenger step, highest reward first:</p>")
        out.append(_proposals(sp["examples"][side]))
    return out


def _collapse_banner(sp: dict) -> str:
    collapses = sp["collapses"]
    if not collapses:
        return f"<p>No collapse flagged over {sp['challenger_steps']} Challenger steps.</p>"
    reasons = sorted({r for c in collapses for r in c["reasons"]})[:4]
    return (
        f"<p class='bad'><b>The Challenger collapsed at {len(collapses)} of "
        f"{sp['challenger_steps']} steps</b>: {escape('; '.join(reasons))}.</p>"
    )


def _proposals(examples: list[dict]) -> str:
    return table(
        ["wrote", "status", "task", "answer", "solve rate", "reward"],
        [
            [
                r["completion"],
                r["proposal_status"]
                + (f" ({r['proposal_detail']})" if r["proposal_detail"] else ""),
                r["proposed_task"] or "",
                r["answer"] or "",
                percent(r["solve_rate"]),
                number(r["reward"]),
            ]
            for r in examples
        ],
    )


def _selfplay_plot(sp: dict) -> str:
    fig, axes = figure(1, 2, height=3.0)
    left, right = axes[0]
    _difficulty_and_solve_rate(left, sp["series"])
    _validity_and_diversity(right, sp["series"])
    return png(fig)


def _difficulty_and_solve_rate(left, s: dict) -> None:
    steps, mean = s["difficulty_mean"]
    _, spread = s["difficulty_spread"]
    if steps:
        left.plot(steps, mean, marker=".", label="difficulty (mean level)")
        low = [m - d for m, d in zip(mean, spread, strict=True)]
        high = [m + d for m, d in zip(mean, spread, strict=True)]
        left.fill_between(steps, low, high, alpha=0.2, label="± spread")
    left.set_ylabel("level")
    twin = left.twinx()
    twin.plot(*s["solve_rate_mean"], color="C2", marker=".", label="solve rate")
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel("solve rate")
    left.set_title("proposed tasks: difficulty and the Solver's solve rate")
    left.set_xlabel("step")
    left.legend(fontsize=7, loc="upper left")
    twin.legend(fontsize=7, loc="upper right")


def _validity_and_diversity(right, s: dict) -> None:
    for name in ("valid_rate", "duplicate_rate", "distinct_ratio"):
        right.plot(*s[name], marker=".", label=name.replace("_", " "))
    right.set_ylim(-0.02, 1.02)
    entropy = right.twinx()
    entropy.plot(*s["token_entropy"], color="C5", linestyle="--", label="token entropy (bits)")
    entropy.set_ylabel("bits")
    for step, flag in zip(*s["collapsed"], strict=True):
        if flag:
            right.axvline(step, color="C3", alpha=0.3, linewidth=3)
    right.set_title("proposals: validity and diversity (red: collapsed steps)")
    right.set_xlabel("step")
    right.legend(fontsize=7, loc="upper left")
    entropy.legend(fontsize=7, loc="upper right")
