"""Where RL moves the boundary: GRPO on tasks banded by the base model's own samples.

Once per study (``prepare``, in the driver), the base model (the run config's model) samples
every test task ``band_samples`` times and every training task ``train_band_samples`` times
(two sets of tasks under their own seeds, ``tasks_per_level`` and ``train_tasks_per_level``
per environment and level). Each task falls in a band by its solve rate p: *in_distribution*
(p >= ``in_distribution_at``), *edge* (0 < p < ``edge_below``), *out_of_reach* (never solved)
or the unnamed *middle*. The base model then samples the test tasks again, ``base_samples``
times, in a fresh draw: a task picked for few successes shows more on a second draw by chance
alone, so the draw that bands a task never measures it.

An arm trains GRPO (an ordinary run, as the ``grpo`` kind: its config, overrides, seed) on the
training tasks of its ``band`` (the run config's ``tasks`` list: hundreds of tasks, each seen
a few times, rather than a few dozen memorised), or with ``band: none`` on the run config's
own curriculum; then its final model samples every test task ``samples`` times. Its measures
compare that draw with the base's fresh one on the same tasks: unbiased pass@k (Chen et al.)
over all test tasks, per band and at the ``hard_levels``; the tasks solved by one side only
(each side's first ``samples`` draws, so both have the same chances); and the training
signal (the share of training groups whose completions were not all right or all wrong, the
only groups GRPO learns from).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selfplay.studies.kinds import grpo

BANDS = ("in_distribution", "middle", "edge", "out_of_reach")
"""Every band a task can fall in, easiest first."""
TRAINABLE = ("in_distribution", "edge", "out_of_reach")
"""The bands an arm may train on (``band``), beside "none" (the curriculum's tasks)."""
GROUPS = ("all", "in_distribution", "edge", "out_of_reach", "hard")
"""The sets of test tasks pass@k is reported on ("hard": tasks at ``hard_levels``)."""

MEASURES = {
    "pass_at_1_gain": "pass@1 over all test tasks, trained minus base",
    "pass_at_kmax_gain": "pass@k at the largest k (``samples``: 256 at full size) over all "
    "test tasks, trained minus base",
    **{
        f"pass_at_{k}_gain_{band}": f"pass@{label} on the test tasks of the {band} band, "
        "trained minus base"
        for band in TRAINABLE
        for k, label in (("1", "1"), ("kmax", "k at the largest k"))
    },
    "pass_at_kmax_gain_hard": "pass@k at the largest k on the test tasks at ``hard_levels``, "
    "trained minus base",
    "trained_only": "share of test tasks solved by the trained model's draw and not the base's "
    "first draws of the same number",
    "base_only": "share of test tasks solved by the base's draws and not the trained model's",
    "net_new": "trained_only minus base_only: tasks newly solved, net of those lost (zero in "
    "expectation when training changed nothing)",
    "signal": "share of training groups with both right and wrong completions (all-equal "
    "groups have zero advantage in GRPO)",
    "accuracy_growth": grpo.MEASURES["accuracy_growth"],
    "wrong_length_growth": grpo.MEASURES["wrong_length_growth"],
}
"""Measure -> meaning. Gains: trained minus base fresh draws, never the banding draw."""


@dataclass
class Settings:
    """One arm: the band it trains on, the GRPO run, and how tasks are banded and measured."""

    band: str = "edge"
    """The band whose training tasks the arm trains on (in_distribution, edge,
    out_of_reach), or "none": the run config's own tasks (its curriculum)."""
    config: str = "configs/arithmetic_countdown.yaml"
    """The run config (a path from where ``selfplay study`` runs); its model is the base."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Keys of the run config set over it, nested mappings merged."""
    levels: dict[str, list[int]] = field(default_factory=dict)
    """Environment -> levels of the banded tasks (default: the run config's mix)."""
    hard_levels: dict[str, list[int]] = field(default_factory=dict)
    """Environment -> levels whose test tasks make the "hard" group (the organism's held-out
    levels, say): does training carry over to them?"""
    tasks_per_level: int = 12
    """Test tasks per environment and level."""
    task_seed: int = 5151
    """Seed of the test tasks (distinct from training, probe, eval and corpus seeds)."""
    band_samples: int = 1024
    """Base samples per test task that band it."""
    train_tasks_per_level: int = 128
    """Training candidates per environment and level, banded like the test tasks."""
    train_seed: int = 5152
    """Seed of the training candidates."""
    train_band_samples: int = 128
    """Base samples per training candidate that band it (fewer than a test task's: a
    training band only needs to be about right, and there are ten times as many)."""
    base_samples: int = 1024
    """Base samples per test task in the fresh draw that measures it."""
    samples: int = 256
    """The trained model's samples per test task: pass@k is reported for k = 1, 2, 4, ...
    up to this."""
    in_distribution_at: float = 0.5
    """A task whose banding solve rate is at least this is in_distribution."""
    edge_below: float = 0.1
    """A task solved at least once but at a rate below this is at the edge."""
    max_new_tokens: int = 160
    """Completion budget of every draw (the run config's ``grpo.max_completion_length``)."""
    batch_size: int = 256
    """Completions generated at once."""
    threads: int = 1
    """torch threads of the arm (fixed, so in-process and Ray runs give the same numbers)."""
    prepare_threads: int = 0
    """torch threads of the base draws in ``prepare`` (0: all the machine's cores)."""
    window: float = 0.2
    """As the grpo kind's: the share of steps at each end the training measures compare."""
    analyze: bool = False
    """Run ``selfplay analyze`` on each arm's run."""
    eval_samples: int = 16
    """Samples per held-out task in that analysis."""
    eval_tasks_per_level: int = 16
    """Held-out tasks per level in that analysis."""

    def __post_init__(self) -> None:
        if self.band not in (*TRAINABLE, "none"):
            raise ValueError(
                f"key 'band': must be one of {', '.join((*TRAINABLE, 'none'))}, got {self.band!r}"
            )
        if self.task_seed == self.train_seed:
            raise ValueError(
                f"keys 'task_seed' and 'train_seed': the same seed ({self.task_seed}) would "
                "train on the test tasks"
            )
        for key in (
            "tasks_per_level",
            "train_tasks_per_level",
            "band_samples",
            "train_band_samples",
            "base_samples",
            "samples",
            "max_new_tokens",
            "batch_size",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}': must be at least 1, got {getattr(self, key)}")
        if self.samples > self.base_samples:
            raise ValueError(
                f"key 'samples': {self.samples} is more than base_samples "
                f"({self.base_samples}); the base must reach every k the trained model does"
            )
        if not 0.0 < self.edge_below <= self.in_distribution_at <= 1.0:
            raise ValueError(
                "keys 'edge_below' and 'in_distribution_at': need 0 < edge_below <= "
                f"in_distribution_at <= 1, got {self.edge_below} and {self.in_distribution_at}"
            )
        if not 0 <= self.prepare_threads <= 256:
            raise ValueError(f"key 'prepare_threads': 0 to 256, got {self.prepare_threads}")
        for key in ("levels", "hard_levels"):
            for env, levels in getattr(self, key).items():
                if not isinstance(levels, list) or not levels:
                    raise ValueError(f"key '{key}.{env}': a non-empty list of levels")
        if "tasks" in self.overrides:
            raise ValueError("key 'overrides.tasks': the study sets it from the arm's band")
        self.training()  # the grpo kind's checks of the run itself

    def training(self, tasks: list[str] | None = None) -> grpo.Settings:
        """The arm's GRPO run as the ``grpo`` kind runs it, on ``tasks`` when given."""
        from selfplay.config.strict import merge

        overrides = merge(self.overrides, {"tasks": tasks}) if tasks else self.overrides
        return grpo.Settings(
            config=self.config,
            overrides=overrides,
            threads=self.threads,
            window=self.window,
            analyze=self.analyze,
            eval_samples=self.eval_samples,
            eval_tasks_per_level=self.eval_tasks_per_level,
        )

    def ks(self) -> list[int]:
        """k = 1, 2, 4, ... up to ``samples`` (always included)."""
        out = [1]
        while out[-1] * 2 < self.samples:
            out.append(out[-1] * 2)
        return out + [self.samples] if out[-1] != self.samples else out


BANDING_KEYS = (
    "levels",
    "tasks_per_level",
    "task_seed",
    "band_samples",
    "train_tasks_per_level",
    "train_seed",
    "train_band_samples",
    "base_samples",
    "in_distribution_at",
    "edge_below",
    "max_new_tokens",
)
"""The settings the shared base draws depend on (with the base model and the config's envs)."""


def check(settings: Settings, source: str) -> None:
    """The run config as ``selfplay train`` loads it, and the banded levels against the
    environments (a ConfigError naming ``source`` and the key)."""
    from selfplay.errors import ConfigError

    envs = grpo.check(settings.training(), source)
    for key in ("levels", "hard_levels"):
        for env, levels in getattr(settings, key).items():
            if env not in envs:
                raise ConfigError(
                    f"{source}: key '{key}.{env}': not an environment of {settings.config} "
                    f"({', '.join(envs)})"
                )
            for level in levels:
                if level not in envs[env].levels:
                    raise ConfigError(
                        f"{source}: key '{key}.{env}': level {level} is not one of {env}'s "
                        f"levels {list(envs[env].levels)}"
                    )


def _envs(config, where: str) -> dict:
    from selfplay.config.load import load_envs

    return load_envs(config, where, equip=lambda env: env)


def prepare(settings: Settings, console, shared: Path) -> None:
    """Pretrain (or find) the base, band the test tasks and the training candidates with its
    draws and measure the test tasks with a fresh draw, once per study
    (``shared/bands-<key>.json``); a StudyError when the arm's band has no training task."""
    from selfplay.checkpoints import write_json_atomic
    from selfplay.config.load import resolve_model
    from selfplay.errors import StudyError

    config, _ = grpo._loaded(settings.training(), "study")
    model = resolve_model(config, console)
    path = bands_path(settings, config, model, shared)
    if not path.exists():
        console.print(f"Banding the tasks with {Path(model).name}'s own samples")
        bands = band_tasks(settings, config, model, console)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, bands)
    bands = read_bands(path)
    if settings.band != "none" and not _training_ids(bands, settings.band):
        counts = {b: sum(t["band"] == b for t in bands["tasks"]) for b in BANDS}
        raise StudyError(
            f"band {settings.band!r} has no training task ({counts}); band more tasks "
            "(train_tasks_per_level, levels) or draw more samples (train_band_samples)"
        )


def bands_path(settings: Settings, config, model: str, shared: Path) -> Path:
    """Where the base draws of these settings, base model, system prompt and environments
    (their weights aside: arms of run configs with the same tasks share them) are kept."""
    key = {k: getattr(settings, k) for k in BANDING_KEYS}
    key |= {"model": str(Path(model).resolve()), "system": config.system_prompt}
    envs = {name: asdict(mix) for name, mix in sorted(config.envs.items())}
    key |= {"envs": {n: {k: v for k, v in e.items() if k != "weight"} for n, e in envs.items()}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return shared / f"bands-{digest}.json"


def read_bands(path: Path) -> dict[str, Any]:
    """The shared base draws; a StudyError naming the file when they cannot be read."""
    from selfplay.analysis.reading import read_json
    from selfplay.errors import StudyError

    try:
        bands = read_json(path)
    except ValueError as err:
        raise StudyError(f"{err}; delete it to draw the base samples again") from None
    if not (isinstance(bands, dict) and isinstance(bands.get("tasks"), list)):
        raise StudyError(f"{path}: not a study's base draws; delete it to draw them again")
    return bands


def band_tasks(settings: Settings, config, model: str, console) -> dict[str, Any]:
    """The banded tasks: each with its split ("test" or "train"), banding hits and band, and
    for the test tasks the fresh draw's outcomes (a string of 0/1, one per sample, in order)."""
    import torch

    from selfplay.config.load import mix_levels

    start = time.perf_counter()
    envs = _envs(config, settings.config)
    levels = settings.levels or mix_levels(config, envs)

    def tasks(seed: int, per_level: int) -> list:
        return [
            envs[env].task(seed, i, level)
            for env, ladder in levels.items()
            for level in ladder
            for i in range(per_level)
        ]

    test = tasks(settings.task_seed, settings.tasks_per_level)
    train = tasks(settings.train_seed, settings.train_tasks_per_level)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.prepare_threads or _cores())
    try:
        drawn = sample(model, config, envs, test, settings, settings.band_samples, 1, console)
        fresh = sample(model, config, envs, test, settings, settings.base_samples, 2, console)
        n = settings.train_band_samples
        candidates = sample(model, config, envs, train, settings, n, 3, console)
    finally:
        torch.set_num_threads(threads)
    rows = []
    for split, group, draws, n in (
        ("test", test, drawn, settings.band_samples),
        ("train", train, candidates, settings.train_band_samples),
    ):
        for task in group:
            hits = draws[task.task_id].count("1")
            row = {
                "task_id": task.task_id,
                "env": task.env,
                "level": task.difficulty,
                "split": split,
                "band_hits": hits,
                "band": band_of(hits, n, settings),
            }
            if split == "test":
                row["base_outcomes"] = fresh[task.task_id]
            rows.append(row)
    return {
        "model": model,
        "settings": {k: getattr(settings, k) for k in BANDING_KEYS},
        "tasks": rows,
        "seconds": time.perf_counter() - start,
    }


def band_of(hits: int, n: int, settings: Settings) -> str:
    """The band of a task solved ``hits`` times in ``n`` banding samples."""
    if hits == 0:
        return "out_of_reach"
    p = hits / n
    if p >= settings.in_distribution_at:
        return "in_distribution"
    return "edge" if p < settings.edge_below else "middle"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def sample(model_source, config, envs, tasks, settings: Settings, n: int, draw: int, console):
    """Task id -> the outcomes of ``n`` samples at temperature 1 (a string of 0/1). Each
    task's draws are seeded by the draw number and its id alone, so they do not depend on
    which other tasks are drawn with it."""
    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from selfplay.evaluate import stable_seed
    from selfplay.generation import chat_prompts, generate
    from selfplay.judges import make_judge
    from selfplay.models import load_model

    start = time.perf_counter()
    model, tokenizer = load_model(str(model_source))
    judge = make_judge("program", envs)
    out: dict[str, str] = {}
    with Progress(
        TextColumn(f"draw {draw}: {n} samples a task"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None or not console.is_terminal,
    ) as progress:
        bar = progress.add_task("", total=len(tasks) * n)
        for task in tasks:
            torch.manual_seed(stable_seed(draw, task.task_id))
            prompt = chat_prompts(tokenizer, [task], config.system_prompt)[0]
            texts = generate(
                model,
                tokenizer,
                [prompt] * n,
                max_new_tokens=settings.max_new_tokens,
                temperature=1.0,
                batch_size=settings.batch_size,
                on_batch=lambda k: progress.advance(bar, k),
            )
            verdicts = judge([task] * n, texts)
            out[task.task_id] = "".join("1" if v.score >= 1.0 else "0" for v in verdicts)
    if console is not None and not console.is_terminal:
        seconds = time.perf_counter() - start
        console.print(
            f"draw {draw}: {len(tasks) * n} samples of {len(tasks)} tasks in {seconds:.0f} s"
        )
    return out


def run(settings: Settings, seed: int, folder: Path, console=None, shared=None) -> dict[str, Any]:
    """Train the arm at ``seed`` (as the grpo kind, in ``folder / "run"``), draw its final
    model's samples of the test tasks (kept in ``folder / "draws.json"``) and measure."""
    import torch
    from rich.console import Console

    from selfplay.checkpoints import write_json_atomic
    from selfplay.config.load import resolve_model
    from selfplay.errors import StudyError

    start = time.perf_counter()
    console = console or Console(quiet=True)
    torch.set_num_threads(settings.threads)
    config, _ = grpo._loaded(settings.training(), "study")
    path = bands_path(settings, config, resolve_model(config, console), Path(shared))
    if not path.exists():
        raise StudyError(f"{path} is missing: the study's base draws (made before the arms)")
    bands = read_bands(path)
    ids = _training_ids(bands, settings.band) if settings.band != "none" else None
    trained = grpo.run(settings.training(ids), seed, folder, console)
    run_dir = Path(trained["run"])
    draws = folder / "draws.json"
    if draws.exists():
        outcomes = read_draws(draws)
    else:
        envs = _envs(config, settings.config)
        test = _tasks([r for r in bands["tasks"] if r["split"] == "test"], envs)
        outcomes = sample(
            run_dir / "final", config, envs, test, settings, settings.samples, 100 + seed, console
        )
        write_json_atomic(draws, outcomes)
    values = measures(bands["tasks"], outcomes, settings)
    values["signal"] = signal(run_dir)
    values["accuracy_growth"] = trained["measures"]["accuracy_growth"]
    values["wrong_length_growth"] = trained["measures"]["wrong_length_growth"]
    return {
        "measures": values,
        "series": {
            "training": trained["series"],
            "pass_at_k": curves(bands["tasks"], outcomes, settings),
            "base_pass_at_k": curves(bands["tasks"], None, settings),
            "training_tasks": len(ids) if ids else None,
        },
        "run": str(run_dir),
        "seconds": time.perf_counter() - start,
    }


def read_draws(path: Path) -> dict[str, str]:
    """An arm's kept draws (task id -> outcomes); a StudyError naming a damaged file."""
    from selfplay.analysis.reading import read_json
    from selfplay.errors import StudyError

    try:
        draws = read_json(path)
    except ValueError as err:
        raise StudyError(f"{err}; delete it to draw the arm's samples again") from None
    if not (isinstance(draws, dict) and all(isinstance(v, str) for v in draws.values())):
        raise StudyError(f"{path}: not an arm's draws; delete it to draw them again")
    return draws


def _training_ids(bands: dict[str, Any], band: str) -> list[str]:
    return [t["task_id"] for t in bands["tasks"] if t["split"] == "train" and t["band"] == band]


def _tasks(rows: list[dict[str, Any]], envs: dict) -> list:
    from selfplay.config.run import parse_task_id

    out = []
    for row in rows:
        env, seed, level, index = parse_task_id(row["task_id"], "base draws")
        out.append(envs[env].task(seed, index, level))
    return out


def _group_rows(rows: list[dict], group: str, settings: Settings) -> list[dict]:
    """The test rows of one of ``GROUPS``."""
    test = [r for r in rows if r["split"] == "test"]
    if group == "all":
        return test
    if group == "hard":
        return [r for r in test if r["level"] in settings.hard_levels.get(r["env"], [])]
    return [r for r in test if r["band"] == group]


def pass_at(rows: list[dict], outcomes: dict[str, str] | None, k: int) -> float | None:
    """Mean unbiased pass@k over ``rows``: of the trained draws ``outcomes``, or (None) of
    the base's fresh draw; None for no rows."""
    import numpy as np

    from selfplay.analysis.stats import pass_at_k

    if not rows:
        return None
    draws = [outcomes[r["task_id"]] if outcomes else r["base_outcomes"] for r in rows]
    n = np.array([len(d) for d in draws])
    c = np.array([d.count("1") for d in draws])
    return float(np.mean(pass_at_k(n, c, k)))


def curves(rows, outcomes, settings: Settings) -> dict[str, dict[str, float | None]]:
    """pass@k for every k of ``settings.ks()`` and every group with its task count."""
    out: dict[str, dict[str, float | None]] = {}
    for group in GROUPS:
        chosen = _group_rows(rows, group, settings)
        out[group] = {str(k): pass_at(chosen, outcomes, k) for k in settings.ks()}
        out[group]["tasks"] = len(chosen)
    return out


def measures(rows: list[dict], outcomes: dict[str, str], settings: Settings) -> dict[str, Any]:
    """The pass@k measures of a trained draw against the base's fresh one (pure: tested on
    constructed draws). ``signal`` and the training measures are added by ``run``."""
    kmax = settings.samples

    def gain(group: str, k: int) -> float | None:
        chosen = _group_rows(rows, group, settings)
        a, b = pass_at(chosen, outcomes, k), pass_at(chosen, None, k)
        return None if a is None or b is None else a - b

    out: dict[str, Any] = {"pass_at_1_gain": gain("all", 1), "pass_at_kmax_gain": gain("all", kmax)}
    for band in TRAINABLE:
        out[f"pass_at_1_gain_{band}"] = gain(band, 1)
        out[f"pass_at_kmax_gain_{band}"] = gain(band, kmax)
    out["pass_at_kmax_gain_hard"] = gain("hard", kmax)
    test = _group_rows(rows, "all", settings)
    trained = {r["task_id"] for r in test if "1" in outcomes[r["task_id"]][:kmax]}
    base = {r["task_id"] for r in test if "1" in r["base_outcomes"][:kmax]}
    out["trained_only"] = len(trained - base) / len(test)
    out["base_only"] = len(base - trained) / len(test)
    out["net_new"] = out["trained_only"] - out["base_only"]
    return out


def signal(run_dir: Path) -> float | None:
    """The ``signal_of`` a run's solver transcripts."""
    from selfplay.transcripts import read_transcripts

    return signal_of(read_transcripts(run_dir, role="solver"))


def signal_of(rows) -> float | None:
    """Share of the training groups (``step``, ``group``) whose completions were neither all
    right nor all wrong (``verdict_score`` 1 is right); None for no rows."""
    if rows.empty:
        return None
    right = (rows["verdict_score"] >= 1.0).groupby([rows["step"], rows["group"]]).mean()
    return float(((right > 0) & (right < 1)).mean())


def figures(arms: list[dict[str, Any]]) -> list[str]:
    """pass@k against k per group of test tasks (the base's fresh draw in black, each arm's
    mean over seeds in a colour), and each arm's training accuracy over steps."""
    import numpy as np

    from selfplay.analysis.render.common import figure, png, rolling

    units = [u for arm in arms for u in arm["units"] if u["series"].get("pass_at_k")]
    if not units:
        return []
    base = units[0]["series"]["base_pass_at_k"]
    fig, axes = figure(1, len(GROUPS), width=3.2 * len(GROUPS), height=3.0)
    for ax, group in zip(axes[0], GROUPS, strict=True):
        ks = [k for k in base[group] if k != "tasks"]
        xs = [int(k) for k in ks]
        if base[group]["tasks"]:
            ax.plot(xs, [base[group][k] for k in ks], color="black", label="base", linewidth=2)
        for i, arm in enumerate(arms):
            curves_ = [u["series"]["pass_at_k"][group] for u in arm["units"]]
            values = [[c[k] for c in curves_ if c.get(k) is not None] for k in ks]
            if all(values):
                ax.plot(xs, [np.mean(v) for v in values], color=f"C{i % 10}", label=arm["name"])
        ax.set_xscale("log", base=2)
        ax.set_title(f"{group} ({base[group]['tasks']} tasks)", fontsize=10)
        ax.set_xlabel("k")
    axes[0][0].set_ylabel("pass@k")
    axes[0][0].legend(fontsize=7)
    pages = [png(fig)]
    fig, axes = figure(1, 1, width=6, height=3.0)
    ax = axes[0][0]
    for i, arm in enumerate(arms):
        for j, unit in enumerate(arm["units"]):
            s = unit["series"].get("training") or {}
            if s.get("step"):
                ax.plot(
                    s["step"],
                    rolling(s["accuracy"]),
                    color=f"C{i % 10}",
                    linewidth=1,
                    label=arm["name"] if j == 0 else None,
                )
    ax.set_title("training accuracy", fontsize=10)
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
    pages.append(png(fig))
    return pages
