"""GRPO runs: each arm an ordinary ``selfplay train`` run (and its ``selfplay analyze``).

An arm names a run config and overrides deep-merged into it (``{grpo: {loss_type:
dr_grpo}}``, say); the study writes the merged config into the arm's folder with the seed
set, trains it there (``run/``: transcripts, metrics, checkpoints, ``final/``), analyses it
when ``analyze`` is on, and measures what the solver's transcripts show about length:

- the mean completion length of wrong answers (verdict score < 1) and of right ones, in the
  first and last ``window`` of the training steps, and the growth between them;
- the share of right answers in the same windows.

A killed arm is continued from its last checkpoint (``selfplay train --resume``), and a
trained one is not trained again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEASURES = {
    "wrong_length_growth": "mean completion tokens of wrong answers in the last window of "
    "steps minus in the first window",
    "right_length_growth": "the same for right answers",
    "wrong_length_end": "mean completion tokens of wrong answers in the last window",
    "right_length_end": "mean completion tokens of right answers in the last window",
    "accuracy_growth": "share of right answers in the last window minus in the first",
    "accuracy_end": "share of right answers in the last window",
}
"""Measure -> meaning. Windows are the first and last ``window`` share of the run's steps;
every solver completion in them counts (specified tasks only: a clarifying question is
neither right nor wrong about length)."""


@dataclass
class Settings:
    """One GRPO arm: a run config, what changes in it, and what is measured."""

    config: str = "configs/quickstart.yaml"
    """The run config (a path from where ``selfplay study`` runs)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Keys of the run config set over it, nested mappings merged (``{grpo: {max_steps: 20}}``)."""
    threads: int = 1
    """torch threads of the arm: fixed, so it gives the same numbers in-process and on Ray."""
    window: float = 0.2
    """Share of the steps at each end that the length and accuracy measures compare."""
    analyze: bool = True
    """Run ``selfplay analyze`` on the finished run (its report and conclusions)."""
    eval_samples: int = 16
    """Samples per held-out task in the analysis."""
    eval_tasks_per_level: int = 64
    """Held-out tasks per level in the analysis."""

    def __post_init__(self) -> None:
        if not Path(self.config).is_file():
            raise ValueError(f"key 'config': run config {self.config!r} not found")
        if not 1 <= self.threads <= 256:
            raise ValueError(f"key 'threads': must be between 1 and 256, got {self.threads}")
        if not 0.0 < self.window <= 0.5:
            raise ValueError(f"key 'window': must be in (0, 0.5], got {self.window}")
        if self.eval_samples < 1 or self.eval_tasks_per_level < 1:
            raise ValueError("keys 'eval_samples' and 'eval_tasks_per_level': must be >= 1")
        for key in ("seed", "runs_dir", "name"):
            if key in self.overrides:
                raise ValueError(f"key 'overrides.{key}': the study sets it for each arm")


def run_config(settings: Settings, seed: int, folder: Path) -> dict[str, Any]:
    """The arm's run config as plain data: the config, the overrides, the study's seed and
    folder (pure but for reading the config)."""
    from selfplay.config.strict import merge, read_yaml

    merged = merge(read_yaml(Path(settings.config)), settings.overrides)
    return {**merged, "seed": seed, "runs_dir": str(folder), "name": "run"}


def _loaded(settings: Settings, source: str):
    """The arm's ``RunConfig`` (the seed and folder aside), loaded strictly; a ConfigError
    names ``source``, the config and the key."""
    from selfplay.config.run import RunConfig
    from selfplay.config.strict import from_dict

    where = f"{source}: {settings.config} with the arm's overrides"
    return from_dict(RunConfig, run_config(settings, 0, Path("studies")), where), where


def check(settings: Settings, source: str) -> None:
    """The merged run config checked as ``selfplay train`` would load it (a ConfigError
    naming ``source``, the config and the key), before any arm runs."""
    from selfplay.config.grpo import grpo_config
    from selfplay.config.load import load_envs

    config, where = _loaded(settings, source)
    load_envs(config, where, equip=lambda env: env)
    grpo_config(config, Path("studies") / "checkpoints", where)  # TRL's options, checked


def prepare(settings: Settings, console, shared: Path | None = None) -> None:
    """Pretrain (or find) the arm's organism before any arm runs, so parallel arms never
    train the same one at once."""
    from selfplay.config.load import resolve_model

    resolve_model(_loaded(settings, "study")[0], console)


def run(
    settings: Settings, seed: int, folder: Path, console=None, shared: Path | None = None
) -> dict[str, Any]:
    """Train (or finish training, or reuse) the arm's run at ``seed`` in ``folder / "run"``,
    analyse it, and return its measures and per-step series. Training and analysis print to
    ``console`` (nothing without one)."""
    import torch
    import yaml
    from rich.console import Console

    from selfplay.train import train

    torch.set_num_threads(settings.threads)
    start = time.perf_counter()
    console = console or Console(quiet=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(run_config(settings, seed, folder), sort_keys=False))
    run_dir = folder / "run"
    if not (run_dir / "summary.json").exists():
        resume = (run_dir / "config.json").exists()
        train(path, console=console, resume=resume)
    if settings.analyze:
        from selfplay.analysis.analyze import analyze

        analyze(
            run_dir,
            samples=settings.eval_samples,
            tasks_per_level=settings.eval_tasks_per_level,
            console=console,
        )
    rows = _solver_rows(run_dir)
    return {
        "measures": measures(rows, settings.window),
        "series": _series(rows),
        "run": str(run_dir),
        "seconds": time.perf_counter() - start,
    }


def measures(rows, window: float) -> dict[str, float | None]:
    """The MEASURES of a run's solver rows (``step``, ``completion_tokens``, ``correct``;
    pure, so it is tested on constructed rows)."""
    steps = sorted(rows["step"].unique())
    if not steps:
        return dict.fromkeys(MEASURES)
    width = max(1, round(window * len(steps)))
    first = rows[rows["step"].isin(steps[:width])]
    last = rows[rows["step"].isin(steps[-width:])]

    def mean_length(part, correct: bool) -> float | None:
        chosen = part[part["correct"] == correct]["completion_tokens"]
        return float(chosen.mean()) if len(chosen) else None

    def growth(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    wrong = (mean_length(first, False), mean_length(last, False))
    right = (mean_length(first, True), mean_length(last, True))
    accuracy = (float(first["correct"].mean()), float(last["correct"].mean()))
    return {
        "wrong_length_growth": growth(*wrong),
        "right_length_growth": growth(*right),
        "wrong_length_end": wrong[1],
        "right_length_end": right[1],
        "accuracy_growth": accuracy[1] - accuracy[0],
        "accuracy_end": accuracy[1],
    }


def _solver_rows(run_dir: Path):
    """The solver's rows on specified tasks: step, completion tokens, right or not."""
    from selfplay.transcripts import read_transcripts

    rows = read_transcripts(run_dir, role="solver")
    rows = rows[rows["specified"].astype(bool)]
    return rows.assign(correct=rows["verdict_score"] >= 1.0)[
        ["step", "completion_tokens", "correct"]
    ]


def _series(rows) -> dict[str, list[float | None]]:
    """Per step: mean completion tokens of wrong and of right answers, and accuracy."""
    out: dict[str, list[float | None]] = {"step": [], "wrong": [], "right": [], "accuracy": []}
    for step, part in rows.groupby("step", sort=True):
        out["step"].append(int(step))
        for key, correct in (("wrong", False), ("right", True)):
            tokens = part[part["correct"] == correct]["completion_tokens"]
            out[key].append(float(tokens.mean()) if len(tokens) else None)
        out["accuracy"].append(float(part["correct"].mean()))
    return out


def figures(arms: list[dict[str, Any]]) -> list[str]:
    """Completion length of wrong and right answers, and accuracy, over steps: one panel
    each, every arm a colour, every seed a line (a rolling mean)."""
    from selfplay.analysis.render.common import figure, png, rolling

    fig, axes = figure(1, 3, width=13, height=3.0)
    panels = (("wrong", "tokens, wrong answers"), ("right", "tokens, right answers"))
    panels += (("accuracy", "accuracy"),)
    colours = [f"C{i}" for i in range(10)]
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for i, arm in enumerate(arms):
            for j, unit in enumerate(arm["units"]):
                s = unit["series"]
                pairs = [(x, y) for x, y in zip(s["step"], s[key], strict=True) if y is not None]
                if not pairs:
                    continue
                xs, ys = zip(*pairs, strict=True)
                ax.plot(
                    xs,
                    rolling(list(ys)),
                    color=colours[i % 10],
                    linewidth=1,
                    label=arm["name"] if j == 0 else None,
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=8)
    return [png(fig)]
