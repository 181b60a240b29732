"""The report's "Controls" section: this run's probe accuracy beside that of runs of the same
config with random or format-only rewards (``selfplay analyze --control``)."""

from __future__ import annotations

import json

import numpy as np

from selfplay.analysis.render.common import escape, figure, percent, png, table


def controls_section(summary: dict, probe: dict) -> list[str]:
    """The section for a summary with controls (``probe``: this run's probe series)."""
    rows = []
    for c in summary["controls"]:
        for r in c["probes"]:
            rows.append(
                [
                    c["control"],
                    r["env"],
                    r["level"],
                    percent(r["run_first"]),
                    percent(r["run_last"]),
                    percent(r["control_first"]),
                    percent(r["control_last"]),
                ]
            )
    plot = _controls_plot(summary, probe)
    return [
        "<h2>Controls</h2>",
        "<p class='note'>Runs of the same config with rewards replaced by a coin flip (random) "
        "or by the format component alone (format_only): what this run gained beyond them is "
        "what its reward taught.</p>",
        *([plot] if plot else []),
        table(
            ["control", "env", "level", "run first", "run last", "control first", "control last"],
            rows,
        ),
        "<pre>" + escape(json.dumps([c["run"] for c in summary["controls"]])) + "</pre>",
    ]


def _controls_plot(summary: dict, probe: dict) -> str | None:
    if not summary["controls"]:
        return None
    envs = sorted({e for e, _ in probe})
    fig, axes = figure(1, len(envs), height=2.8)
    for ax, env in zip(axes[0], envs, strict=True):
        _mean_probe(ax, {f"{e}/{lv}": s for (e, lv), s in probe.items()}, env, "this run")
        for c in summary["controls"]:
            _mean_probe(ax, c["series"], env, f"control: {c['control']}")
        ax.set_title(f"{env}: probe greedy accuracy (mean over levels)", fontsize=9)
        ax.legend(fontsize=7)
    return png(fig)


def _mean_probe(ax, series_by_key: dict, env: str, label: str) -> None:
    mine = [s for k, s in series_by_key.items() if k.split("/")[0] == env and s.get("greedy")]
    if not mine:
        return
    width = min(len(s["greedy"]) for s in mine)
    values = np.mean([s["greedy"][:width] for s in mine], axis=0)
    ax.plot(mine[0]["steps"][:width], values, marker="o", markersize=3, label=label)
