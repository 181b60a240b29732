"""The report's "pass@k, base vs trained" section: pass@k curves of both models per
environment and level, and the table of greedy accuracy, pass@1 and pass@N."""

from __future__ import annotations

from selfplay.analysis.render.common import estimate, grid, percent, png, table


def passk_section(summary: dict) -> list[str]:
    """The section for a summary with evaluations."""
    base, trained = _pass_at_k_cells(summary, "base"), _pass_at_k_cells(summary, "trained")
    rows = []
    for key in sorted(base):
        b, tr = base[key], trained.get(key)
        if tr is None:
            continue
        n = str(b["samples"])
        rows.append(
            [
                key[0],
                key[1],
                percent(b["greedy"]),
                percent(tr["greedy"]),
                estimate(b["pass_at_k"]["1"]),
                estimate(tr["pass_at_k"]["1"]),
                estimate(b["pass_at_k"][n]),
                estimate(tr["pass_at_k"][n]),
            ]
        )
    return [
        "<h2>pass@k, base vs trained</h2>",
        "<p class='note'>Unbiased pass@k (Chen et al., 2021) per task, averaged over tasks; "
        "bands and brackets are 95% percentile-bootstrap intervals over tasks.</p>",
        _passk_plot(summary),
        table(
            [
                "env",
                "level",
                "greedy base",
                "greedy trained",
                "pass@1 base",
                "pass@1 trained",
                "pass@N base",
                "pass@N trained",
            ],
            rows,
        ),
    ]


def _pass_at_k_cells(summary: dict, side: str) -> dict[tuple[str, int], dict]:
    """(env, level) -> the pass@k row of the base or trained eval."""
    return {(r["env"], r["level"]): r for r in summary["evals"][side]["summary"]["pass_at_k"]}


def _passk_plot(summary: dict) -> str:
    base, trained = _pass_at_k_cells(summary, "base"), _pass_at_k_cells(summary, "trained")
    keys = sorted(base)
    fig, axes = grid(len(keys))
    for ax, key in zip(axes.flat, keys, strict=False):
        for label, cells in (("base", base), ("trained", trained)):
            if key not in cells:
                continue
            ks = [int(k) for k in cells[key]["pass_at_k"]]
            est = list(cells[key]["pass_at_k"].values())
            ax.plot(ks, [e["value"] for e in est], marker="o", markersize=3, label=label)
            ax.fill_between(ks, [e["low"] for e in est], [e["high"] for e in est], alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{key[0]} level {key[1]}", fontsize=9)
        ax.set_xlabel("k", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    return png(fig)
