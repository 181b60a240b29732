"""The report's "Exact match vs continuous metrics" section: the probe curves of exact match,
edit distance, Brier score and gold log-probability, and the finding per environment and
level (``selfplay.analysis.artefacts``)."""

from __future__ import annotations

from selfplay.analysis.render.common import grid, number, png, table

FINDING_CLASS = {"likely metric artefact": "artefact", "genuine transition": "genuine"}
"""The CSS class (row colour) of a finding; other findings are not coloured."""


def artefacts_section(summary: dict, probe: dict, t: dict) -> list[str]:
    """The section (``probe``: the probe series; ``t``: the thresholds)."""
    rows, classes = [], []
    for a in summary["artefacts"]:
        cont = ", ".join(f"{k} {v:.2f}" for k, v in a.get("continuous_share", {}).items())
        rows.append(
            [
                a["env"],
                a["level"],
                a["probes"],
                number(a.get("exact_change")),
                "-".join(map(str, a.get("interval", []))),
                number(a.get("exact_share")),
                cont,
                " -> ".join(number(b) for b in a.get("brier_first_last", [])),
                a["finding"],
            ]
        )
        classes.append(FINDING_CLASS.get(a["finding"], ""))
    plot = _artefacts_plot(probe)
    return [
        "<h2>Exact match vs continuous metrics</h2>",
        "<p class='note'>At each probe (before training, every probe interval, at the end) the "
        "greedy completions of the fixed probe set are scored by exact match and by continuous "
        "measures: the gold final tag's log-probability per token after the model's own "
        "reasoning, and the token edit distance of the answer; beside them, calibration: the "
        "Brier score of the probability the model gives its own final answer. "
        f"Exact match <i>jumps</i> when it changes by at least {t['min_exact_change']} and one "
        f"probe interval holds at least {t['jump_share']:.0%} of that change; a jump whose "
        "continuous counterparts move smoothly over that interval is a likely metric artefact, "
        "one where they jump too is a genuine transition.</p>",
        *([plot] if plot else []),
        table(
            [
                "env",
                "level",
                "probes",
                "exact change",
                "interval",
                "share",
                "continuous share",
                "Brier first -> last",
                "finding",
            ],
            rows,
            cls=classes,
        ),
    ]


def _artefacts_plot(probe: dict) -> str | None:
    keys = [k for k, s in probe.items() if len(s.get("greedy", [])) >= 2 and "gold_logprob" in s]
    if not keys:
        return None
    fig, axes = grid(len(keys))
    for ax, key in zip(axes.flat, keys, strict=False):
        s = probe[key]
        ax.plot(s["steps"], s["greedy"], marker="o", markersize=3, color="C0", label="exact match")
        if "edit_distance" in s:
            ax.plot(
                s["steps"],
                [1 - v for v in s["edit_distance"]],
                color="C2",
                marker=".",
                label="1 - edit distance",
            )
        if "brier" in s:
            ax.plot(s["steps"], s["brier"], color="C4", linestyle=":", label="Brier (own answer)")
        ax.set_ylim(-0.02, 1.02)
        twin = ax.twinx()
        twin.plot(
            s["steps"],
            s["gold_logprob"],
            color="C3",
            marker="s",
            markersize=3,
            label="gold log-prob / token",
        )
        twin.tick_params(labelsize=7, colors="C3")
        ax.set_title(f"{key[0]} level {key[1]}", fontsize=9)
    handles = axes.flat[0].get_legend_handles_labels()
    axes.flat[0].legend(*handles, fontsize=6, loc="upper left")
    return png(fig)
