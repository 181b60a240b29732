"""The base and the trained model on the same held-out tasks: their evaluations (made with
``selfplay eval``, or reused from ``RUN/analysis/``), the conclusions drawn from them
(``selfplay.analysis.conclusions``), and the base model's log-probability of the trained
model's correct solutions."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from selfplay.analysis.conclusions import (
    Thresholds,
    behaviour_conclusions,
    conclusion_counts,
    skill_conclusions,
    solvable_only_after,
)
from selfplay.analysis.evals import summarise
from selfplay.errors import AnalysisError, CorruptTranscript

LOGPROB_SOLUTIONS = 256
"""At most this many of the trained model's correct solutions are scored under the base model."""


def ensure_eval(model: str, folder: Path, config, envs, settings, step: int, label: str, console):
    """The eval rows of ``model`` in ``folder``: reused when it holds equal settings."""
    from selfplay.evaluate import EVAL_FILE, evaluate, read_eval

    if (folder / EVAL_FILE).is_file():
        try:
            meta, rows = read_eval(folder)
        except (CorruptTranscript, ValueError) as err:  # a cache: computed again, not lost
            console.print(f"[yellow]warning:[/] the cached eval cannot be read ({err})")
        else:
            if meta["settings"] == asdict(settings) and meta["model"] == str(model):
                console.print(f"Reusing eval of {label} in {folder}")
                return meta, rows
    console.print(f"Evaluating {label} ({model}) into {folder}")
    evaluate(str(model), config, envs, settings, folder, step=step, label=label, console=console)
    return read_eval(folder)


def base_logprob(base_model: str, trained_rows, base_rows, system: str) -> dict[str, Any]:
    """The base model's mean per-token log-probability of the trained model's correct
    (sampled) solutions, beside that of its own correct samples as the reference.

    ``in_base_share``: the share of trained solutions scoring at least the 5th percentile of
    the base model's own correct solutions, i.e. solutions the base distribution already
    puts ordinary weight on.
    """
    from types import SimpleNamespace

    from selfplay.generation import chat_prompts, completion_logprobs
    from selfplay.models import load_model

    model, tokenizer = load_model(base_model)

    def scored(rows):
        correct = rows[(rows["temperature"] > 0) & (rows["verdict_score"] >= 1.0)]
        correct = correct.sample(n=min(len(correct), LOGPROB_SOLUTIONS), random_state=0)
        if correct.empty:
            return np.array([])
        tasks = [SimpleNamespace(prompt=p) for p in correct["prompt"]]
        prompts = chat_prompts(tokenizer, tasks, system)
        lps = completion_logprobs(model, tokenizer, prompts, list(correct["completion"]))
        return np.array([sum(x) / len(x) for x in lps if x])

    trained_lp, base_lp = scored(trained_rows), scored(base_rows)
    out: dict[str, Any] = {
        "trained_solutions": int(trained_lp.size),
        "base_solutions": int(base_lp.size),
        "trained_mean": float(trained_lp.mean()) if trained_lp.size else None,
        "base_mean": float(base_lp.mean()) if base_lp.size else None,
    }
    if trained_lp.size and base_lp.size:
        floor = float(np.percentile(base_lp, 5))
        out["base_p5"] = floor
        out["in_base_share"] = float((trained_lp >= floor).mean())
    return out


def base_and_trained(
    run_dir: Path,
    out_dir: Path,
    config,
    *,
    base: str | None,
    samples: int,
    tasks_per_level: int,
    thresholds: Thresholds,
    console,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(summary parts, eval rows)``: the ``evals``, ``conclusions``, ``conclusion_counts``,
    ``solvable_only_after`` and ``base_logprob`` parts of ``summary.json``, and the rows of
    each eval (``base``, ``trained``). The evals made go to ``out_dir``; ``base`` as
    ``analyze.analyze`` takes it."""
    from selfplay.config.load import load_envs
    from selfplay.evaluate import resolve_eval_model

    if not (run_dir / "final" / "config.json").is_file():
        raise AnalysisError(f"{run_dir}: the run has no final/ model (unfinished?)")
    envs = load_envs(config, str(run_dir / "config.json"))
    base_model, base_meta, base_rows, settings = _base_eval(
        base, config, envs, out_dir / "eval-base", samples, tasks_per_level, console
    )
    trained_model, step = resolve_eval_model(str(run_dir), config, console)
    _, trained_rows = ensure_eval(
        trained_model,
        out_dir / "eval-trained",
        config,
        envs,
        settings,
        step,
        "trained",
        console,
    )
    if set(base_rows["task_id"]) != set(trained_rows["task_id"]):
        raise AnalysisError(
            f"{run_dir}: the base and trained evals hold different tasks "
            "(different settings or environments); rerun without --base to evaluate both"
        )
    conclusions = skill_conclusions(base_rows, trained_rows, thresholds) + behaviour_conclusions(
        base_rows, trained_rows, thresholds
    )
    parts = {
        "evals": {
            "settings": base_meta["settings"],
            "base": {"model": base_model, "summary": summarise(base_rows)},
            "trained": {"model": trained_model, "step": step, "summary": summarise(trained_rows)},
        },
        "conclusions": conclusions,
        "conclusion_counts": conclusion_counts(conclusions),
        "solvable_only_after": solvable_only_after(base_rows, trained_rows),
        "base_logprob": base_logprob(base_model, trained_rows, base_rows, config.system_prompt),
    }
    return parts, {"base": base_rows, "trained": trained_rows}


def _base_eval(base: str | None, config, envs, folder: Path, samples, tasks_per_level, console):
    """``(base model, eval meta, eval rows, settings)``: read from ``base`` when it is an eval
    folder (whose settings then hold for both evals), else made (or reused) in ``folder``."""
    from selfplay.evaluate import EVAL_FILE, EvalSettings, read_eval, resolve_eval_model

    if base and (Path(base) / EVAL_FILE).is_file():
        base_meta, base_rows = read_eval(base)
        return base_meta["model"], base_meta, base_rows, EvalSettings(**base_meta["settings"])
    try:
        settings = EvalSettings(
            samples=samples,
            tasks_per_level=tasks_per_level,
            max_new_tokens=config.probe.max_new_tokens,
        )
    except ValueError as err:
        raise AnalysisError(str(err)) from None
    base_model, _ = resolve_eval_model(base or config.model, config, console)
    base_meta, base_rows = ensure_eval(
        base_model, folder, config, envs, settings, 0, "base", console
    )
    return base_model, base_meta, base_rows, settings
