"""Metric artefacts across organism sizes: exact match against what per-token accuracy predicts.

Schaeffer et al. (2023) argued that abilities which seem to appear suddenly with scale are
often made sudden by the metric: exact match of an L-token answer behaves like p^L, where p is
the per-token accuracy, so a p that rises smoothly with scale gives an exact match that stays
near 0 and then jumps; per-token accuracy, edit distance and log-probability show no jump.

An arm is one organism (a recipe, ``organism_config``, with ``organism`` keys set over it),
pretrained once before the arms (or reused from ``models/``). At each seed it draws
``tasks_per_level`` fresh tasks per level of each environment in ``levels`` (seeded by
``task_seed`` and the seed, never the corpus's seed), answers each greedily, and measures per
task: exact match (the environment's verdict); the per-token accuracy p of the gold answer
(its share of answer tokens that are the model's most likely next token, teacher-forced after
the model's own reasoning and the opening answer tag) and the answer's length L in tokens; the
gold final tag's log-probability per token and the answer's edit distance
(``selfplay.continuous``). Per level, p^L is the prediction of exact match from the level's
mean p and mean L, as the paper computes it.

Exact match equals "every answer token right" only where an answer is unique, so ``levels``
takes environments whose answer is one number (arithmetic, modular), not countdown.
The seeds draw the tasks; each organism is pretrained once, so intervals cover the tasks, not
pretraining runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNIQUE_ANSWERS = ("arithmetic", "modular")
"""Environments whose right answer is one string, so exact match is "every token right"."""

MEASURES = {
    "exact": "share of tasks answered exactly right (greedy), over every level",
    "token_accuracy": "mean per-token accuracy p of the gold answer, over every task",
    "pl_gap": "mean over levels of |exact match - p^L| (p, L: the level's means): how far "
    "exact match is from what per-token accuracy predicts",
    "gold_logprob": "mean log-probability per token of the gold final tag",
    "edit_distance": "mean token edit distance of the answer to the gold one (0 exact, 1 none)",
    "exact_hard": "exact match at the ``hard_levels``",
    "token_accuracy_hard": "per-token accuracy at the ``hard_levels``",
}
"""Measure -> meaning (per arm and seed)."""


@dataclass
class Settings:
    """One organism's knobs and how it is measured."""

    organism_config: str = "configs/organism.yaml"
    """The organism recipe (a path from where ``selfplay study`` runs)."""
    organism: dict[str, Any] = field(default_factory=dict)
    """Keys of the recipe set over it, nested mappings merged (``{train: {steps: 4}}``)."""
    levels: dict[str, list[int]] = field(
        default_factory=lambda: {"arithmetic": [1, 2, 3, 4, 5], "modular": [1, 2, 3, 4, 5]}
    )
    """Environment -> the levels measured (environments of ``UNIQUE_ANSWERS``)."""
    hard_levels: dict[str, list[int]] = field(
        default_factory=lambda: {"arithmetic": [4, 5], "modular": [4, 5]}
    )
    """Environment -> the levels of the ``_hard`` measures (the organism's held-out ones)."""
    tasks_per_level: int = 64
    """Tasks drawn per level at each seed."""
    task_seed: int = 7171
    """Added to the seed to draw the tasks (the corpus draws with its own seed, 0)."""
    max_new_tokens: int = 192
    """Longest greedy answer."""
    batch_size: int = 64
    """Prompts generated at once."""
    threads: int = 1
    """torch threads: fixed, so an arm gives the same numbers in-process and on Ray."""

    def __post_init__(self) -> None:
        if not Path(self.organism_config).is_file():
            raise ValueError(f"key 'organism_config': recipe {self.organism_config!r} not found")
        if not self.levels:
            raise ValueError("key 'levels': give at least one environment")
        for key in ("levels", "hard_levels"):
            for env, ladder in getattr(self, key).items():
                if env not in UNIQUE_ANSWERS:
                    raise ValueError(
                        f"key '{key}.{env}': exact match is all-tokens-right only for "
                        f"{', '.join(UNIQUE_ANSWERS)}"
                    )
                if not ladder or any(not isinstance(v, int) or v < 1 for v in ladder):
                    raise ValueError(f"key '{key}.{env}': give levels >= 1, got {ladder}")
        for env, ladder in self.hard_levels.items():
            if not set(ladder) <= set(self.levels.get(env, [])):
                raise ValueError(f"key 'hard_levels.{env}': {ladder} are not all in 'levels'")
        for key in ("tasks_per_level", "max_new_tokens", "batch_size", "threads"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}': must be >= 1, got {getattr(self, key)}")


def recipe(settings: Settings) -> dict[str, Any]:
    """The arm's organism recipe as plain data."""
    from selfplay.config.strict import merge, read_yaml

    return merge(read_yaml(Path(settings.organism_config)), settings.organism)


def recipe_file(settings: Settings, shared: Path) -> Path:
    """The recipe, kept in the study's ``shared`` folder as the grpo kind keeps its arms'."""
    from selfplay.studies.kinds.grpo import shared_recipe

    return shared_recipe(recipe(settings), Path(shared))


def check(settings: Settings, source: str) -> None:
    """The merged recipe loads as ``selfplay pretrain`` would, and each measured level exists
    in its environment (a ConfigError naming ``source`` and the key)."""
    from envs import load_env
    from selfplay.config.strict import from_dict
    from selfplay.errors import ConfigError
    from selfplay.organism.pretrain import OrganismConfig

    from_dict(OrganismConfig, recipe(settings), f"{source}: {settings.organism_config}")
    for env, ladder in settings.levels.items():
        known = load_env(env).levels
        missing = [v for v in ladder if v not in known]
        if missing:
            raise ConfigError(
                f"{source}: key 'levels.{env}': {env} has no level {missing[0]} (it has "
                f"{list(known)})"
            )


def prepare(settings: Settings, console, shared: Path) -> None:
    """Pretrain (or find) the arm's organism before the arms, so parallel arms never train
    the same one at once."""
    from selfplay.organism.pretrain import pretrain

    pretrain(recipe_file(settings, shared), console=console)


def run(
    settings: Settings, seed: int, folder: Path, console=None, shared: Path | None = None
) -> dict[str, Any]:
    """Measure the arm's organism on the tasks of ``seed``; the MEASURES and per-level rows."""
    import torch
    from rich.console import Console

    from envs import load_env
    from selfplay.continuous import continuous_metrics
    from selfplay.generation import attempt, chat_prompts
    from selfplay.models import load_model
    from selfplay.organism.pretrain import pretrain

    torch.set_num_threads(settings.threads)
    start = time.perf_counter()
    model_dir = pretrain(recipe_file(settings, shared or folder), console=Console(quiet=True))
    model, tokenizer = load_model(str(model_dir))
    rows = []
    for name, ladder in settings.levels.items():
        env = load_env(name)
        for level in ladder:
            tasks = [
                env.task(settings.task_seed + seed, i, level)
                for i in range(settings.tasks_per_level)
            ]
            attempts = attempt(
                model,
                tokenizer,
                env,
                tasks,
                max_new_tokens=settings.max_new_tokens,
                temperature=0.0,
                batch_size=settings.batch_size,
            )
            prompts = chat_prompts(tokenizer, tasks, "")
            smooth = continuous_metrics(model, tokenizer, env, prompts, attempts)
            hits = answer_hits(model, tokenizer, prompts, attempts)
            rows.append(level_row(name, level, smooth, hits))
            if console is not None:
                r = rows[-1]
                console.print(
                    f"{model_dir.name} {name} {level}: exact {r['exact']:.2f} "
                    f"p {r['token_accuracy']:.2f} L {r['answer_tokens']:.1f} "
                    f"p^L {r['p_pow_l']:.2f}"
                )
    return {
        "measures": measures(rows, settings),
        "series": {"levels": rows, "organism": model_dir.name},
        "seconds": time.perf_counter() - start,
    }


def answer_hits(model, tokenizer, prompts: list[str], attempts) -> list[list[bool]]:
    """Per attempt, for each token of its task's gold answer: whether it is the model's most
    likely next token, after the prompt, the model's own reasoning and the opening tag."""
    from envs.format import ANSWER_OPEN
    from selfplay.continuous import reasoning_prefix
    from selfplay.generation import teacher_forced

    contexts = [
        p + reasoning_prefix(a.completion) + ANSWER_OPEN
        for p, a in zip(prompts, attempts, strict=True)
    ]
    golds = [str(a.task.answer) for a in attempts]
    return [hits for _, hits in teacher_forced(model, tokenizer, contexts, golds)]


def level_row(env: str, level: int, smooth: list[dict], hits: list[list[bool]]) -> dict:
    """One level's means: exact match, per-token accuracy p, answer length L, p^L (from the
    means, as Schaeffer et al.), gold log-probability and edit distance (pure)."""
    n = len(smooth)
    p = sum(sum(h) / len(h) for h in hits) / n
    length = sum(len(h) for h in hits) / n
    return {
        "env": env,
        "level": level,
        "n": n,
        "exact": sum(r["exact"] for r in smooth) / n,
        "token_accuracy": p,
        "answer_tokens": length,
        "p_pow_l": p**length,
        "gold_logprob": sum(r["gold_logprob"] for r in smooth) / n,
        "edit_distance": sum(r["edit_distance"] for r in smooth) / n,
    }


def measures(rows: list[dict], settings: Settings) -> dict[str, float | None]:
    """The MEASURES of an arm's level rows (pure: tested on constructed rows). Means over
    tasks weight each level by its tasks; ``pl_gap`` weighs each level once."""

    def mean(key: str, chosen: list[dict]) -> float | None:
        total = sum(r["n"] for r in chosen)
        return sum(r[key] * r["n"] for r in chosen) / total if total else None

    hard = [r for r in rows if r["level"] in settings.hard_levels.get(r["env"], [])]
    return {
        "exact": mean("exact", rows),
        "token_accuracy": mean("token_accuracy", rows),
        "pl_gap": sum(abs(r["exact"] - r["p_pow_l"]) for r in rows) / len(rows),
        "gold_logprob": mean("gold_logprob", rows),
        "edit_distance": mean("edit_distance", rows),
        "exact_hard": mean("exact", hard),
        "token_accuracy_hard": mean("token_accuracy", hard),
    }


def figures(arms: list[dict[str, Any]]) -> list[str]:
    """Per environment, exact match and per-token accuracy of each level across the arms (the
    organisms, in the config's order; the seeds' mean); and exact match against p^L for every
    level, arm and seed, the diagonal being a perfect prediction."""
    from selfplay.analysis.render.common import figure, png

    rows = [
        (i, r) for i, arm in enumerate(arms) for u in arm["units"] for r in u["series"]["levels"]
    ]
    cells: dict[tuple[str, int, int], list[dict]] = {}  # (env, level, arm) -> its seeds' rows
    for i, r in rows:
        cells.setdefault((r["env"], r["level"], i), []).append(r)

    def mean(env: str, level: int, arm: int, key: str) -> float | None:
        got = cells.get((env, level, arm), [])
        return sum(r[key] for r in got) / len(got) if got else None

    envs = list(dict.fromkeys(r["env"] for _, r in rows))
    fig, axes = figure(1, len(envs) + 1, width=5 * (len(envs) + 1), height=3.4)
    for ax, env in zip(axes[0], envs, strict=False):
        levels = sorted({level for e, level, _ in cells if e == env})
        for k, level in enumerate(levels):
            for key, style in (("exact", "-"), ("token_accuracy", ":")):
                ax.plot(
                    range(len(arms)),
                    [mean(env, level, i, key) for i in range(len(arms))],
                    linestyle=style,
                    marker="o",
                    markersize=3,
                    color=f"C{k}",
                    label=f"level {level}" if key == "exact" else None,
                )
        ax.set_xticks(range(len(arms)), [a["name"] for a in arms], fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{env}: exact match (solid), per-token accuracy (dotted)", fontsize=9)
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    for i, arm in enumerate(arms):
        points = [(r["p_pow_l"], r["exact"]) for j, r in rows if j == i]
        ax.scatter(*zip(*points, strict=True), s=10, color=f"C{i}", label=arm["name"])
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.set_xlabel("p^L (per-token accuracy ^ answer length)")
    ax.set_ylabel("exact match")
    ax.set_title("exact match against p^L, per level and seed", fontsize=9)
    ax.legend(fontsize=7)
    return [png(fig)]
