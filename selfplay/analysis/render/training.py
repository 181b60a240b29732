"""The report's "Training" section: reward and accuracy curves, accuracy per level (from the
solver transcripts), reasoning length and behaviour rates, curriculum levels, and the table of
the first and last tenth of the steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfplay.analysis.reading import series
from selfplay.analysis.render.common import curve, figure, number, png, table

if TYPE_CHECKING:
    import pandas as pd

BEHAVIOUR_CURVES = (
    ("behaviour/self_correction_verified_rate", "self-correction (verified)"),
    ("behaviour/self_correction_lexical_rate", "self-correction (lexical)"),
    ("behaviour/verification_rate", "verification"),
    ("behaviour/ask_rate", "asks"),
    ("clarify/recall", "clarify recall"),
    ("clarify/precision", "clarify precision"),
)
"""Metric and label of each curve in the behaviour-rates plot."""


def training_section(summary: dict, train: list[dict], per_level: pd.DataFrame | None) -> list[str]:
    """The section's heading, plots and table (``per_level``: ``per_level_accuracy``)."""
    return [
        "<h2>Training</h2>",
        *_plots(train, per_level),
        *_first_and_last_tenth(summary),
    ]


def _plots(train: list[dict], per_level: pd.DataFrame | None) -> list[str]:
    """The plots, each an ``<img>`` tag; the per-level and curriculum ones where there is data."""
    parts = [_reward_and_accuracy_plot(train)]
    if per_level is not None and not per_level.empty:
        parts.append(_per_level_plot(per_level))
    parts.append(_length_and_behaviour_plot(train))
    curriculum = _curriculum_plot(train)
    if curriculum is not None:
        parts.append(curriculum)
    return parts


def _reward_and_accuracy_plot(train: list[dict]) -> str:
    fig, axes = figure(1, 2)
    curve(axes[0][0], *series(train, "reward"), "reward")
    axes[0][0].set_title("reward (mean per step; rolling mean)")
    for key in sorted({k for r in train for k in r if k.startswith("accuracy/")}):
        curve(axes[0][1], *series(train, key), key.split("/", 1)[1])
    axes[0][1].set_title("training accuracy per environment")
    axes[0][1].legend(fontsize=8)
    axes[0][0].set_xlabel("step")
    axes[0][1].set_xlabel("step")
    return png(fig)


def _per_level_plot(per_level: pd.DataFrame) -> str:
    """Solver accuracy per level over steps, one panel per environment."""
    envs = sorted(per_level["env"].unique())
    fig, axes = figure(1, len(envs), height=3.0)
    for ax, env in zip(axes[0], envs, strict=True):
        mine = per_level[per_level["env"] == env]
        for level, group in mine.groupby("difficulty"):
            curve(ax, list(group["step"]), list(group["accuracy"]), f"level {level}", raw=False)
        ax.set_title(f"{env}: accuracy per level")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    return png(fig)


def _length_and_behaviour_plot(train: list[dict]) -> str:
    fig, axes = figure(1, 2)
    curve(axes[0][0], *series(train, "length/reasoning_tokens_mean"), "reasoning tokens")
    curve(axes[0][0], *series(train, "length/completion_tokens_mean"), "completion tokens")
    axes[0][0].set_title("reasoning length")
    axes[0][0].legend(fontsize=8)
    for key, label in BEHAVIOUR_CURVES:
        curve(axes[0][1], *series(train, key), label, raw=False)
    axes[0][1].set_title("behaviour rates (rolling mean)")
    axes[0][1].legend(fontsize=7)
    return png(fig)


def _curriculum_plot(train: list[dict]) -> str | None:
    levels = sorted(
        {k for r in train for k in r if k.startswith("curriculum/") and k.endswith("/level")}
    )
    if not levels:
        return None
    fig, axes = figure(1, 1, height=2.6)
    for key in levels:
        steps, values = series(train, key)
        axes[0][0].step(steps, values, where="post", label=key.split("/")[1])
    axes[0][0].set_title("curriculum level per environment")
    axes[0][0].legend(fontsize=8)
    return png(fig)


def _first_and_last_tenth(summary: dict) -> list[str]:
    """The means of the first and the last tenth of the training steps, metric by metric."""
    first, last = summary["training"]["first_tenth"], summary["training"]["last_tenth"]
    rows = [[k, number(first[k]), number(last[k])] for k in first if first[k] is not None]
    return [
        "<p>First and last tenth of training steps (means):</p>",
        table(["metric", "first tenth", "last tenth"], rows),
    ]
