"""GRPO runs: each arm an ordinary ``selfplay train`` run (and its ``selfplay analyze``).

An arm names a run config and overrides deep-merged into it (``{grpo: {loss_type:
dr_grpo}}``, say); the study writes the merged config into the arm's folder with the seed
set, trains it there (``run/``: transcripts, metrics, checkpoints, ``final/``), analyses it
when ``analyze`` is on, and measures what the solver's transcripts show about length:

- the mean completion length of wrong answers (verdict score < 1) and of right ones, in the
  first and last ``window`` of the training steps, and the growth between them;
- the share of right answers in the same windows;
- the rate of a behaviour (a tag of ``selfplay.behaviours``: the self-correction marker by
  default) in the same windows, and how much more often completions with it are right than
  completions in general (a behaviour that does not go with right answers is superficial).

An arm may also change the organism it trains (``organism``: keys of the run config's
organism recipe set over it, ``{corpus: {self_correction_rate: 0.01}}``): the merged recipe is
written to the study's ``shared/`` folder and pretrained once, before the arms.

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
    "behaviour_start": "share of completions with the behaviour (``behaviour``) in the first "
    "window",
    "behaviour_end": "the same in the last window",
    "behaviour_growth": "behaviour_end minus behaviour_start",
    "behaviour_lift": "share of right answers among completions with the behaviour minus "
    "among all completions, in the last window (near 0 or below: superficial)",
    "challenger_level_start": "self-play runs: the mean difficulty level of the Challenger's "
    "valid proposals over its first window of steps (None without self-play)",
    "challenger_level_end": "the same over its last window",
    "challenger_level_growth": "challenger_level_end minus challenger_level_start",
    "challenger_solve_end": "the Solver's mean solve rate on the Challenger's valid proposals "
    "over its last window",
}
"""Measure -> meaning. Windows are the first and last ``window`` share of the run's steps;
every solver completion in them counts (specified tasks only: a clarifying question is
neither right nor wrong about length). The Challenger's measures take their windows over its
own steps (``challenger/*`` in ``metrics.jsonl``)."""


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
    organism: dict[str, Any] = field(default_factory=dict)
    """Keys of the run config's organism recipe set over it, nested mappings merged
    (``{corpus: {self_correction_rate: 0.01}}``); empty: the run config's organism."""
    behaviour: str = "self_correction_lexical"
    """The behaviour tag whose rate is measured (one of ``selfplay.behaviours.TAGGERS``)."""

    def __post_init__(self) -> None:
        if not Path(self.config).is_file():
            raise ValueError(f"key 'config': run config {self.config!r} not found")
        if not 1 <= self.threads <= 256:
            raise ValueError(f"key 'threads': must be between 1 and 256, got {self.threads}")
        if not 0.0 < self.window <= 0.5:
            raise ValueError(f"key 'window': must be in (0, 0.5], got {self.window}")
        if self.eval_samples < 1 or self.eval_tasks_per_level < 1:
            raise ValueError("keys 'eval_samples' and 'eval_tasks_per_level': must be >= 1")
        from selfplay.behaviours import TAGGERS

        if self.behaviour not in TAGGERS:
            raise ValueError(
                f"key 'behaviour': {self.behaviour!r} is not a behaviour tag ({', '.join(TAGGERS)})"
            )
        if self.organism and "organism_config" in self.overrides:
            raise ValueError(
                "keys 'organism' and 'overrides.organism_config': change the organism one way"
            )
        for key in ("seed", "runs_dir", "name"):
            if key in self.overrides:
                raise ValueError(f"key 'overrides.{key}': the study sets it for each arm")


def run_config(
    settings: Settings, seed: int, folder: Path, organism: Path | None = None
) -> dict[str, Any]:
    """The arm's run config as plain data: the config, the overrides, the study's seed and
    folder, and the arm's ``organism`` recipe file when it has one (pure but for reading the
    config)."""
    from selfplay.config.strict import merge, read_yaml

    merged = merge(read_yaml(Path(settings.config)), settings.overrides)
    if organism is not None:
        merged["organism_config"] = str(organism)
    return {**merged, "seed": seed, "runs_dir": str(folder), "name": "run"}


def _loaded(settings: Settings, source: str, organism: Path | None = None):
    """The arm's ``RunConfig`` (the seed and folder aside), loaded strictly; a ConfigError
    names ``source``, the config and the key."""
    from selfplay.config.run import RunConfig
    from selfplay.config.strict import from_dict

    where = f"{source}: {settings.config} with the arm's overrides"
    plain = run_config(settings, 0, Path("studies"), organism)
    return from_dict(RunConfig, plain, where), where


def organism_recipe(settings: Settings) -> dict[str, Any] | None:
    """The arm's organism recipe as plain data (the run config's, with ``organism`` set over
    it); None when the arm does not change the organism."""
    from selfplay.config.strict import merge, read_yaml

    if not settings.organism:
        return None
    config, _ = _loaded(settings, "study")
    return merge(read_yaml(Path(config.organism_config)), settings.organism)


def organism_file(settings: Settings, shared: Path | None) -> Path | None:
    """Where the arm's organism recipe is kept (``shared_recipe``); None when the arm keeps
    the run config's organism."""
    recipe = organism_recipe(settings)
    return None if recipe is None else shared_recipe(recipe, Path(shared))


def shared_recipe(recipe: dict[str, Any], shared: Path) -> Path:
    """An organism recipe kept as ``shared/organism-<hash>.yaml``, written the first time (the
    organism's own folder is named by the recipe's content, so arms with equal recipes share
    one organism)."""
    import hashlib

    import yaml

    from selfplay.checkpoints import write_text_atomic

    text = yaml.safe_dump(recipe, sort_keys=True)
    path = Path(shared) / f"organism-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return path


def check(settings: Settings, source: str) -> dict:
    """The merged run config checked as ``selfplay train`` would load it (a ConfigError
    naming ``source``, the config and the key), before any arm runs; its environments (for a
    kind that checks more against them)."""
    from selfplay.config.grpo import grpo_config
    from selfplay.config.load import load_envs
    from selfplay.config.strict import from_dict
    from selfplay.errors import ConfigError
    from selfplay.organism.pretrain import OrganismConfig

    config, where = _loaded(settings, source)
    envs = load_envs(config, where, equip=lambda env: env)
    grpo_config(config, Path("studies") / "checkpoints", where)  # TRL's options, checked
    if settings.organism:
        if config.model != "organism":
            raise ConfigError(
                f"{source}: key 'organism': the run config's model is {config.model!r}, "
                "not the organism"
            )
        recipe = organism_recipe(settings)
        from_dict(
            OrganismConfig, recipe, f"{source}: {config.organism_config} with the arm's organism"
        )
    return envs


def prepare(settings: Settings, console, shared: Path | None = None) -> None:
    """Pretrain (or find) the arm's organism before any arm runs, so parallel arms never
    train the same one at once."""
    from selfplay.config.load import resolve_model

    resolve_model(_loaded(settings, "study", organism_file(settings, shared))[0], console)


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
    organism = organism_file(settings, shared)
    path.write_text(yaml.safe_dump(run_config(settings, seed, folder, organism), sort_keys=False))
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
    rows = _solver_rows(run_dir, settings.behaviour)
    records = _challenger_records(run_dir)
    return {
        "measures": {
            **measures(rows, settings.window),
            **challenger_measures(records, settings.window),
        },
        "series": {**_series(rows), **_challenger_series(records)},
        "run": str(run_dir),
        "seconds": time.perf_counter() - start,
    }


def measures(rows, window: float) -> dict[str, float | None]:
    """The MEASURES of a run's solver rows (``step``, ``completion_tokens``, ``correct``,
    ``behaviour``; pure, so it is tested on constructed rows)."""
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
    behaviour = (float(first["behaviour"].mean()), float(last["behaviour"].mean()))
    shown = last[last["behaviour"]]
    lift = float(shown["correct"].mean()) - accuracy[1] if len(shown) else None
    return {
        "wrong_length_growth": growth(*wrong),
        "right_length_growth": growth(*right),
        "wrong_length_end": wrong[1],
        "right_length_end": right[1],
        "accuracy_growth": accuracy[1] - accuracy[0],
        "accuracy_end": accuracy[1],
        "behaviour_start": behaviour[0],
        "behaviour_end": behaviour[1],
        "behaviour_growth": behaviour[1] - behaviour[0],
        "behaviour_lift": lift,
    }


def challenger_measures(records: list[dict], window: float) -> dict[str, float | None]:
    """The Challenger's MEASURES from its ``challenger/*`` records (one per Challenger step,
    in step order; pure, so it is tested on constructed records). None for each without
    records: the run had no self-play."""
    from selfplay.analysis.reading import series

    names = ("challenger_level_start", "challenger_level_end", "challenger_level_growth")
    names += ("challenger_solve_end",)
    _, levels = series(records, "challenger/difficulty_mean")
    _, solves = series(records, "challenger/solve_rate_mean")
    if not levels:
        return dict.fromkeys(names)
    width = max(1, round(window * len(levels)))
    start = sum(levels[:width]) / width
    end = sum(levels[-width:]) / width
    last = solves[-width:]
    return dict(
        zip(
            names,
            (start, end, end - start, sum(last) / len(last) if last else None),
            strict=True,
        )
    )


def _challenger_records(run_dir: Path) -> list[dict]:
    """The ``metrics.jsonl`` records of the run's Challenger steps, in step order."""
    from selfplay.transcripts.reading import metric_records

    records = [r for r in metric_records(run_dir) if "challenger/difficulty_mean" in r]
    return sorted(records, key=lambda r: r["step"])


def _challenger_series(records: list[dict]) -> dict[str, list[float]]:
    """Per Challenger step: the mean difficulty level of its valid proposals (empty without
    self-play)."""
    from selfplay.analysis.reading import series

    steps, levels = series(records, "challenger/difficulty_mean")
    return {"challenger_step": steps, "challenger_level": levels}


def _solver_rows(run_dir: Path, behaviour: str):
    """The solver's rows on specified tasks: step, completion tokens, right or not, and
    whether the ``behaviour`` tag is set."""
    from selfplay.transcripts import read_transcripts

    rows = read_transcripts(run_dir, role="solver")
    rows = rows[rows["specified"].astype(bool)]
    return rows.assign(
        correct=rows["verdict_score"] >= 1.0, behaviour=rows[behaviour].fillna(False).astype(bool)
    )[["step", "completion_tokens", "correct", "behaviour"]]


def _series(rows) -> dict[str, list[float | None]]:
    """Per step: mean completion tokens of wrong and of right answers, and accuracy."""
    out: dict[str, list[float | None]] = {
        "step": [],
        "wrong": [],
        "right": [],
        "accuracy": [],
        "behaviour": [],
    }
    for step, part in rows.groupby("step", sort=True):
        out["step"].append(int(step))
        for key, correct in (("wrong", False), ("right", True)):
            tokens = part[part["correct"] == correct]["completion_tokens"]
            out[key].append(float(tokens.mean()) if len(tokens) else None)
        out["accuracy"].append(float(part["correct"].mean()))
        out["behaviour"].append(float(part["behaviour"].mean()))
    return out


def figures(arms: list[dict[str, Any]]) -> list[str]:
    """Completion length of wrong and right answers, accuracy and the behaviour's rate over
    steps, and in self-play the Challenger's mean level over its steps: one panel each, every
    arm a colour, every seed a line (a rolling mean)."""
    from selfplay.analysis.render.common import figure, png, rolling

    panels = [("wrong", "tokens, wrong answers"), ("right", "tokens, right answers")]
    panels += [("accuracy", "accuracy"), ("behaviour", "behaviour rate")]
    if any(u["series"].get("challenger_level") for arm in arms for u in arm["units"]):
        panels.append(("challenger_level", "Challenger's mean level"))
    fig, axes = figure(1, len(panels), width=4 * len(panels), height=3.0)
    colours = [f"C{i}" for i in range(10)]
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for i, arm in enumerate(arms):
            for j, unit in enumerate(arm["units"]):
                s = unit["series"]
                values = s.get(key) or []  # series written before a panel existed lack it
                steps = s.get("challenger_step", []) if key == "challenger_level" else s["step"]
                pairs = [(x, y) for x, y in zip(steps, values, strict=False) if y is not None]
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
