"""`selfplay compare`: two models on the same held-out tasks, level by level and task by task.

Both models are evaluated as ``selfplay eval`` evaluates one (``selfplay.evaluate``): the
held-out tasks of a run config, once greedily and N times at temperature 1. The tasks are the
same for both, so every comparison is paired. Per environment and level:

- **pass@1** of each model (the mean over tasks of c/N, c the correct samples of N) with a
  95% percentile bootstrap interval over tasks (``pass_at_k_estimate``);
- **B - A** with a paired bootstrap interval (``paired_difference``: one resample of tasks
  serves both models). The level is *significant* when the interval excludes 0. The
  intervals behind that call are simultaneous over the levels compared (Bonferroni: each at
  confidence ``1 - ALPHA / levels``), so sampling noise alone makes any level significant at
  most about ``ALPHA`` of the time however many levels there are; the plain 95% interval is
  kept in ``compare.json`` too.

Per task: **Fisher's exact test** of c_A/N against c_B/N (two-sided, conditional on
c_A + c_B), then **Holm's** step-down correction, which bounds by ``ALPHA`` the chance that
any task is listed through noise alone (family-wise error; each listed task is itself a
claim). The family is every task whose margin c_A + c_B allows a p-value of ``ALPHA`` at all
(Tarone, 1990): a task both models always solve, or never do, can never be significant and
would only weaken the correction. A task B solves significantly more often is an
improvement (``newly`` when A never solved it), less often a regression (``newly`` when B
never solves it).

Seeds: ``settings.seed`` draws the tasks and model A's samples (seeded per environment and
level, as in ``selfplay eval``); ``seed_b`` (default the same) draws model B's samples on the
same tasks. Two copies of one model with one seed give identical rows; with two seeds they
differ only by sampling noise, which must not be called significant.

The output folder is written whole (built aside, then renamed)::

    <out>/compare.json     settings, both models, the level table, the changed tasks
    <out>/eval-a/          model A's eval folder (eval.json, transcripts/), as `selfplay eval`
    <out>/eval-b/          model B's
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

COMPARE_FILE = "compare.json"
ALPHA = 0.05
"""Family-wise error rate of the level calls (simultaneous intervals) and of the task lists."""
LEVEL_COLUMNS = ["env", "difficulty"]
TASK_COLUMNS = ["env", "difficulty", "task_id"]


# -- statistics ---------------------------------------------------------------------------


@functools.cache
def _log_factorials(n: int) -> np.ndarray:
    """``log(i!)`` for i = 0..n (not to be modified: it is cached)."""
    return np.array([math.lgamma(i + 1) for i in range(n + 1)])


def _hypergeometric(n_a: int, n_b: int, hits: int) -> tuple[int, np.ndarray]:
    """``(lowest x, log P(X = x) for each x)``: X, the correct samples in A, given ``hits``
    correct samples in all, is hypergeometric under the null of one solve rate."""
    lf = _log_factorials(n_a + n_b)
    low, high = max(0, hits - n_b), min(hits, n_a)
    x = np.arange(low, high + 1)
    log_pmf = lf[n_a] - lf[x] - lf[n_a - x] + lf[n_b] - lf[hits - x] - lf[n_b - hits + x]
    return low, log_pmf - (lf[n_a + n_b] - lf[hits] - lf[n_a + n_b - hits])


def _two_sided(log_pmf: np.ndarray, observed: float) -> float:
    """The probability of every table no more probable than the observed one (ties within a
    relative 1e-7, as scipy's ``fisher_exact``)."""
    return min(1.0, float(np.exp(log_pmf[log_pmf <= observed + 1e-7]).sum()))


def fisher_exact(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value of Fisher's exact test of ``hits_a / n_a`` against ``hits_b / n_b``."""
    if not (0 <= hits_a <= n_a and 0 <= hits_b <= n_b and n_a + n_b > 0):
        raise ValueError(f"fisher_exact needs 0 <= hits <= n, got {hits_a}/{n_a}, {hits_b}/{n_b}")
    low, log_pmf = _hypergeometric(n_a, n_b, hits_a + hits_b)
    return _two_sided(log_pmf, log_pmf[hits_a - low])


def smallest_fisher_p(hits: int, n_a: int, n_b: int) -> float:
    """The smallest p-value Fisher's test can give with ``hits`` correct samples in all: that
    of the less probable extreme table (the hypergeometric distribution is unimodal)."""
    _, log_pmf = _hypergeometric(n_a, n_b, hits)
    return _two_sided(log_pmf, min(log_pmf[0], log_pmf[-1]))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (reject where ``adjusted <= alpha``): the i-th
    smallest p times ``m - i`` (i from 0), made monotone and capped at 1."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = np.maximum.accumulate(p[order] * (p.size - np.arange(p.size)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, scaled)
    return adjusted


def _rate(hits: int, n: int) -> dict[str, Any]:
    from selfplay.analysis.stats import clopper_pearson

    low, high = clopper_pearson(hits, n)
    return {"correct": hits, "samples": n, "rate": hits / n, "interval": [low, high]}


def task_changes(counts, alpha: float = ALPHA):
    """``counts`` (one row per task: ``env``, ``difficulty``, ``task_id``, ``hits_a``, ``n_a``,
    ``hits_b``, ``n_b``) with Fisher's ``p``, ``testable`` (its margin allows ``p <= alpha``),
    Holm's ``p_adjusted`` over the testable tasks (1.0 for the others) and ``change``:
    "improved", "regressed" or "" (not significant)."""
    columns = ["hits_a", "n_a", "hits_b", "n_b"]
    cells = counts[columns].astype(int).to_numpy()
    p = np.array([fisher_exact(*row) for row in cells], dtype=float)
    floor = np.array([smallest_fisher_p(a + b, na, nb) for a, na, b, nb in cells], dtype=float)
    testable = floor <= alpha
    adjusted = np.ones_like(p)
    adjusted[testable] = holm(p[testable])
    rate_a, rate_b = cells[:, 0] / cells[:, 1], cells[:, 2] / cells[:, 3]
    significant = adjusted <= alpha
    change = np.where(
        significant & (rate_b > rate_a),
        "improved",
        np.where(significant & (rate_b < rate_a), "regressed", ""),
    )
    return counts.assign(p=p, testable=testable, p_adjusted=adjusted, change=change)


def level_table(changes, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Per environment and level: pass@1 of A and B (95% bootstrap intervals over tasks) and
    B - A (paired bootstrap), significant when its simultaneous interval excludes 0."""
    from selfplay.analysis.evals import RESAMPLES
    from selfplay.analysis.stats import paired_difference, pass_at_k_estimate

    groups = list(changes.groupby(LEVEL_COLUMNS, sort=True))
    confidence = 1.0 - alpha / max(1, len(groups))
    # Enough resamples that each tail of the simultaneous interval rests on 50 of them.
    resamples = max(RESAMPLES, math.ceil(50 / ((1.0 - confidence) / 2)))
    table = []
    for (env, level), group in groups:
        n_a, n_b = int(group["n_a"].iloc[0]), int(group["n_b"].iloc[0])
        if group["n_a"].nunique() != 1 or group["n_b"].nunique() != 1:
            raise ValueError(f"{env} level {level}: tasks have different numbers of samples")
        hits_a, hits_b = group["hits_a"].to_numpy(int), group["hits_b"].to_numpy(int)
        a, b = hits_a / n_a, hits_b / n_b
        plain = paired_difference(a, b, resamples=RESAMPLES)
        joint = paired_difference(a, b, resamples=resamples, confidence=confidence)
        significant = joint.low > 0 or joint.high < 0
        table.append(
            {
                "env": env,
                "level": int(level),
                "tasks": len(group),
                "samples_a": n_a,
                "samples_b": n_b,
                "pass_at_1_a": pass_at_k_estimate(hits_a, n_a, 1, resamples=RESAMPLES).to_dict(),
                "pass_at_1_b": pass_at_k_estimate(hits_b, n_b, 1, resamples=RESAMPLES).to_dict(),
                "greedy_a": float(group["greedy_a"].mean()),
                "greedy_b": float(group["greedy_b"].mean()),
                "difference": plain.to_dict(),
                "difference_simultaneous": {**joint.to_dict(), "confidence": confidence},
                "significant": bool(significant),
                "direction": ("better" if joint.low > 0 else "worse") if significant else "",
                "improved": int((group["change"] == "improved").sum()),
                "regressed": int((group["change"] == "regressed").sum()),
            }
        )
    return table


def _task_entry(row) -> dict[str, Any]:
    hits_a, hits_b = int(row.hits_a), int(row.hits_b)
    newly = hits_a == 0 if row.change == "improved" else hits_b == 0
    return {
        "env": row.env,
        "level": int(row.difficulty),
        "task_id": row.task_id,
        "prompt": row.prompt,
        "a": {**_rate(hits_a, int(row.n_a)), "greedy": bool(row.greedy_a)},
        "b": {**_rate(hits_b, int(row.n_b)), "greedy": bool(row.greedy_b)},
        "newly": bool(newly),
        "p": float(row.p),
        "p_adjusted": float(row.p_adjusted),
    }


def compare_counts(counts, alpha: float = ALPHA) -> dict[str, Any]:
    """The statistics of a comparison from per-task counts (see ``paired_counts`` for the
    columns): the level table and the significantly improved and regressed tasks."""
    changes = task_changes(counts, alpha)
    listed = changes[changes["change"] != ""].sort_values(["p_adjusted", *TASK_COLUMNS])
    return {
        "alpha": alpha,
        "task_test": "Fisher's exact test (two-sided) of c_A/N against c_B/N per task",
        "correction": "Holm (family-wise error) over the tasks whose margin allows p <= alpha",
        "level_test": "paired bootstrap interval of B - A over tasks, simultaneous over levels "
        "(Bonferroni); significant when it excludes 0",
        "tasks": len(changes),
        "tested_tasks": int(changes["testable"].sum()),
        "levels": level_table(changes, alpha),
        "improved": [_task_entry(r) for r in listed.itertuples() if r.change == "improved"],
        "regressed": [_task_entry(r) for r in listed.itertuples() if r.change == "regressed"],
    }


def paired_counts(rows_a, rows_b):
    """One row per task of both evaluations: ``env``, ``difficulty``, ``task_id``, ``prompt``,
    ``hits_a``, ``n_a``, ``hits_b``, ``n_b`` (correct sampled completions, and samples) and
    ``greedy_a``, ``greedy_b`` (the greedy completion correct). Both must hold the same tasks."""
    from selfplay.analysis.evals import per_task

    def side(rows, suffix: str):
        counts = per_task(rows).rename(columns={"hits": f"hits_{suffix}", "n": f"n_{suffix}"})
        greedy = rows[rows["temperature"] == 0]
        correct = {f"greedy_{suffix}": greedy["verdict_score"] >= 1.0}
        return counts.merge(greedy[[*TASK_COLUMNS, "prompt"]].assign(**correct), on=TASK_COLUMNS)

    a, b = side(rows_a, "a"), side(rows_b, "b")
    keys_a, keys_b = set(a["task_id"]), set(b["task_id"])
    if keys_a != keys_b:
        only = sorted(keys_a ^ keys_b)
        raise ValueError(f"the two evaluations hold different tasks, e.g. {only[:3]}")
    return a.merge(b.drop(columns="prompt"), on=TASK_COLUMNS, validate="one_to_one")


# -- running ------------------------------------------------------------------------------


def compare(
    model_a: str,
    model_b: str,
    config,
    envs: dict,
    settings,
    out: Path,
    *,
    seed_b: int | None = None,
    console=None,
    batch_size: int = 64,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_a`` and ``model_b`` (as ``selfplay eval`` names models) on the
    config's held-out tasks and compare them into the folder ``out``; returns ``compare.json``.

    ``settings`` (``selfplay.evaluate.EvalSettings``) are those of both evaluations;
    ``seed_b`` draws B's samples (default ``settings.seed``). A model that is not there is a
    ``ModelNotFound`` naming it before anything is evaluated or written.
    """
    from rich.console import Console

    from selfplay.checkpoints import build_dir_atomic
    from selfplay.config.load import mix_levels
    from selfplay.evaluate import evaluate, read_eval, resolve_eval_model
    from selfplay.models import load_model_config

    console = console or Console()
    seed_b = settings.seed if seed_b is None else seed_b
    models = {}
    for side, name in (("a", model_a), ("b", model_b)):
        path, step = resolve_eval_model(name, config, console)
        load_model_config(path)  # fail before the first evaluation, naming the model
        path = Path(path).resolve() if Path(path).exists() else path  # a hub name stays one
        models[side] = {"model": name, "path": str(path), "step": step, "eval": f"eval-{side}"}
    result: dict[str, Any] = {}
    start = time.perf_counter()

    def fill(tmp: Path) -> None:
        for side, seed in (("a", settings.seed), ("b", seed_b)):
            m = models[side]
            console.print(f"compare: evaluating {side.upper()} ({m['path']}), samples seed {seed}")
            sampling = settings if seed == settings.seed else replace(settings, sample_seed=seed)
            evaluate(
                m["path"],
                config,
                envs,
                sampling,
                tmp / m["eval"],
                step=m["step"],
                label=Path(m["model"]).name,
                console=console,
                batch_size=batch_size,
                ray_address=ray_address,
            )
        (_, rows_a), (_, rows_b) = read_eval(tmp / "eval-a"), read_eval(tmp / "eval-b")
        result.update(
            {
                "models": models,
                "settings": {**asdict(settings), "seed_b": seed_b, "batch_size": batch_size},
                "envs": mix_levels(config, envs),
                **compare_counts(paired_counts(rows_a, rows_b)),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        (tmp / COMPARE_FILE).write_text(json.dumps(result, indent=2))

    build_dir_atomic(Path(out), fill)
    return result


# -- the console --------------------------------------------------------------------------


def print_comparison(result: dict[str, Any], console, limit: int = 10) -> None:
    """Print the level table and the lists of improved and regressed tasks (``limit`` each)."""
    from rich.table import Table
    from rich.text import Text

    a, b, settings = result["models"]["a"], result["models"]["b"], result["settings"]
    console.print(f"A: {a['path']} (step {a['step']})", highlight=False)
    console.print(f"B: {b['path']} (step {b['step']})", highlight=False)
    levels = result["levels"]
    confidence = levels[0]["difference_simultaneous"]["confidence"] if levels else 1 - ALPHA
    table = Table(
        title=f"pass@1 at temperature 1 on {settings['tasks_per_level']} tasks a level, "
        f"{settings['samples']} samples each, 95% bootstrap intervals; B - A paired, at "
        f"{confidence:.2%} each (simultaneous over {len(levels)} levels)"
    )
    table.add_column("env level", no_wrap=True)
    for column in ("pass@1 A", "pass@1 B", "B - A", "significant", "+/-"):
        table.add_column(column, justify="right", no_wrap=column != "+/-")
    for row in levels:
        d = row["difference_simultaneous"]
        table.add_row(
            f"{row['env']} {row['level']}",
            _interval(row["pass_at_1_a"]),
            _interval(row["pass_at_1_b"]),
            f"{d['value']:+.2f}\n[{d['low']:+.2f},{d['high']:+.2f}]",
            {"better": "B better", "worse": "B worse"}.get(row["direction"], "no"),
            f"{row['improved']}/{row['regressed']}",
        )
    console.print(table)
    console.print(
        f"+/-: tasks B solves significantly more/less often (Fisher's exact test per task, "
        f"Holm-corrected over the {result['tested_tasks']} of {result['tasks']} tasks whose "
        f"counts could reach p <= {result['alpha']})",
        highlight=False,
    )
    lists = (("improved", "B better", "A never"), ("regressed", "B worse", "B never"))
    for key, title, never in lists:
        entries = result[key]
        if not entries:
            console.print(f"{title}: no task", highlight=False)
            continue
        shown = f", the first {limit}" if len(entries) > limit else ""
        tasks = Table(title=f"{title}: {len(entries)} task(s){shown} (new: {never} solved it)")
        tasks.add_column("task", no_wrap=True)
        for column in ("A", "B", "p adj.", "new"):
            tasks.add_column(column, justify="right", no_wrap=True)
        tasks.add_column("prompt", no_wrap=True, overflow="ellipsis")
        for e in entries[:limit]:
            tasks.add_row(
                e["task_id"],
                f"{e['a']['correct']}/{e['a']['samples']}",
                f"{e['b']['correct']}/{e['b']['samples']}",
                f"{e['p_adjusted']:.1g}",
                "new" if e["newly"] else "",
                Text(e["prompt"].replace("\n", " ")),  # not rich markup
            )
        console.print(tasks)
        if len(entries) > limit:
            console.print(f"... and {len(entries) - limit} more in {COMPARE_FILE}")


def _interval(e: dict[str, float]) -> str:
    return f"{e['value']:.2f}\n[{e['low']:.2f},{e['high']:.2f}]"
