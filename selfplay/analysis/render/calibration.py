"""The report's "Calibration" section: the reliability diagram, calibration over training, and
the tables of ECE, Brier score and reliability (``selfplay.analysis.calibration``)."""

from __future__ import annotations

import math
from typing import Any

from selfplay.analysis.render.common import estimate, figure, number, percent, png, table

MEASURES = ["answers", "stating p", "mean p", "accuracy", "ECE", "Brier"]
"""The columns of a row of calibration measures, after its label."""


def calibration_section(c: dict) -> list[str]:
    """The section for the summary's ``calibration`` part."""
    out = [
        "<h2>Calibration: the confidence stated after the answer</h2>",
        "<p class='note'>A completion may end <code>&lt;answer&gt;…&lt;/answer&gt;"
        "&lt;confidence&gt;p&lt;/confidence&gt;</code>: p is the model's probability that its "
        "answer is right (verdict score 1). Expected calibration error (ECE): answers in "
        f"{c['bins']} equal-width bins of p, the mean over answers of |accuracy − mean p| of "
        "their bin; 0 is calibrated. Brier score: mean (p − right)². Every answer counts, "
        "guesses at underspecified tasks included. Evals: sampled completions (temperature "
        "1), ECE with a 95% bootstrap interval over tasks.</p>",
        _calibration_plot(c),
    ]
    if "training" in c:
        out.append("<p>Over training, in windows of steps:</p>")
        out.append(
            table(
                ["steps", *MEASURES],
                [_row(f"{w['steps'][0]}-{w['steps'][1]}", w) for w in c["training"]["windows"]],
            )
        )
    if "evals" in c:
        rows = []
        for name, m in c["evals"].items():
            row = _row(name, m)
            if "ece_ci" in m:
                row[5] = estimate(m["ece_ci"])
            rows.append(row)
        out.append("<p>Base and trained model on the held-out tasks:</p>")
        out.append(table(["model", *MEASURES], rows))
    return out + _reliability_table(c)


def _reliability_table(c: dict) -> list[str]:
    """Per bin of p, each curve's mean p, accuracy and answers; nothing without any."""
    curves = [(label, m) for label, m in _curves(c) if m["stated"]]
    if not curves:
        return []
    bins = curves[0][1]["reliability"]
    return [
        "<p>Reliability table: mean p → accuracy (answers) per bin of p:</p>",
        table(
            ["bin", *(label for label, _ in curves)],
            [
                [
                    f"{b['low']:.1f}-{b['high']:.1f}",
                    *(_bin_cell(m["reliability"][i]) for _, m in curves),
                ]
                for i, b in enumerate(bins)
            ],
        ),
    ]


def _curves(c: dict) -> list[tuple[str, dict]]:
    """(label, measures with a reliability table) of each curve of the reliability diagram."""
    curves = []
    if "training" in c:
        for side in ("first", "last"):
            m = c["training"][side]
            curves.append((f"training, {side} steps {m['steps'][0]}-{m['steps'][1]}", m))
    curves += [(f"{name} eval", m) for name, m in c.get("evals", {}).items()]
    return curves


def _calibration_plot(c: dict) -> str:
    fig, axes = figure(1, 2, height=3.4)
    left, right = axes[0]
    _reliability_diagram(left, c)
    windows = c.get("training", {}).get("windows", [])
    if windows:
        middle = [(w["steps"][0] + w["steps"][1]) / 2 for w in windows]
        for key, label in (
            ("ece", "ECE"),
            ("brier", "Brier score"),
            ("stated_share", "answers stating a confidence"),
        ):
            values = [math.nan if w[key] is None else w[key] for w in windows]
            right.plot(middle, values, marker="o", markersize=3, label=label)
        right.set_ylim(-0.02, 1.02)
        right.set_xlabel("step (window middle)")
        right.set_title("calibration over training")
        right.legend(fontsize=7)
    else:
        right.axis("off")
    return png(fig)


def _reliability_diagram(ax, c: dict) -> None:
    ax.plot([0, 1], [0, 1], color="k", linestyle="--", linewidth=1, label="calibrated")
    for label, m in _curves(c):
        bins = [b for b in m["reliability"] if b["count"]]
        if not bins:
            continue
        line = ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            markersize=3,
            label=f"{label} (ECE {number(m['ece'])})",
        )[0]
        total = sum(b["count"] for b in bins)
        ax.scatter(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            s=[8 + 150 * b["count"] / total for b in bins],
            color=line.get_color(),
            alpha=0.35,
        )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("stated confidence (mean in bin)")
    ax.set_ylabel("accuracy in bin")
    ax.set_title("reliability diagram (marker area: answers in the bin)")
    ax.legend(fontsize=7, loc="upper left")


def _row(label: str, m: dict) -> list[Any]:
    return [
        label,
        m["answers"],
        percent(m["stated_share"]),
        number(m["mean_confidence"]),
        percent(m["accuracy"]),
        number(m["ece"]),
        number(m["brier"]),
    ]


def _bin_cell(b: dict) -> str:
    if not b["count"]:
        return ""
    return f"{b['confidence']:.2f} → {b['accuracy']:.2f} ({b['count']})"
