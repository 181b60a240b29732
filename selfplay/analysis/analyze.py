"""`selfplay analyze RUN`: what a researcher can honestly conclude from a run.

Reads the run folder (``metrics.jsonl``, transcripts, ``config.json``), evaluates the base
model and the trained one on the same held-out tasks (``selfplay eval``, cached under
``RUN/analysis/``), and writes ``RUN/analysis/summary.json`` (every number and verdict) and
``RUN/analysis/report.html`` (one self-contained file, plots embedded). The parts:

- training curves: reward, accuracy per environment and per level, reasoning length,
  behaviour rates, curriculum levels (from ``metrics.jsonl`` and the transcripts);
- pass@k base vs trained, and the elicited / newly-acquired verdicts
  (``selfplay.analysis.verdicts``), the tasks solvable only after training, and the base
  model's log-probability of the trained model's correct solutions;
- metric artefacts (``artefacts``): exact match against its continuous counterparts over
  the probe points of the run (the probes run at every checkpoint interval);
- the "aha" timeline (``aha``): verified and lexical self-correction rates over steps, the
  change point of the verified rate, correlations, and the first verified corrections;
- calibration (``selfplay.analysis.calibration``), when some completion states a
  confidence after its answer: the expected calibration error and reliability table over
  training and for the base and trained evals;
- the reward-hacking watch (``selfplay.analysis.hacking``), when the run's judge is not the
  ground truth: the Judge's reward against the ground truth over steps, the step where they
  diverge, and transcripts the Judge paid although their answer is wrong;
- control runs (``--control``): probe curves of the run beside runs of the same config with
  random or format-only rewards.

A transcript file that cannot be read (``selfplay.explorer.Skipped``) and a truncated last
line of ``metrics.jsonl`` are left out, each named on a warning line and under ``skipped``
in the summary and the report; a ``config.json`` or another ``metrics.jsonl`` line that
cannot be read is an ``AnalysisError`` naming the file (and line).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selfplay.analysis.stats import change_point, jump_share, pearson
from selfplay.analysis.verdicts import DEFAULT_THRESHOLDS, Thresholds
from selfplay.errors import AnalysisError

if TYPE_CHECKING:
    from selfplay.explorer import Skipped

ANALYSIS_DIR = "analysis"

JUMP_SHARE = 0.5
"""A curve "jumps" at an interval holding at least this share of its total change."""
MIN_EXACT_CHANGE = 0.1
"""Exact match must change by at least this much (first to last probe) to be called a jump."""
VERIFIED = "behaviour/self_correction_verified_rate"
LEXICAL = "behaviour/self_correction_lexical_rate"
AHA_P_VALUE = 0.05
"""A change point of the verified self-correction rate counts when its p-value is below this."""
FIRST_CORRECTIONS = 3
"""Verified corrections shown: the first ones of the run and the first after the change point."""
LOGPROB_SOLUTIONS = 256
"""At most this many of the trained model's correct solutions are scored under the base model."""


# -- reading a run ----------------------------------------------------------------------


def newest_run(config_path: Path) -> Path:
    """The newest finished run of a run config (the run its ``name:`` names, when set)."""
    from selfplay.train import load_run_config

    config = load_run_config(config_path)
    root = Path(config.runs_dir)
    if config.name:
        candidates = [root / config.name]
    else:
        candidates = sorted(root.glob(f"{config_path.stem}-*"), reverse=True)
    for run in candidates:
        if (run / "summary.json").is_file():
            return run
    raise AnalysisError(f"{config_path}: no finished run of this config under {root}")


def read_json(path: Path) -> Any:
    """The JSON in ``path``; one that cannot be read or parsed is an ``AnalysisError``
    naming it."""
    try:
        return json.loads(path.read_bytes().decode())
    except (OSError, ValueError) as err:  # a UnicodeDecodeError is a ValueError
        raise AnalysisError(f"{path}: not JSON: {err}") from None


def read_metrics(
    run_dir: Path, skipped_lines: list[dict] | None = None
) -> tuple[list[dict], list[dict]]:
    """``(training records, probe records)`` of ``metrics.jsonl`` (the Solver's steps in
    self-play; ``metric_records`` has the Challenger's too)."""
    return split_metrics(metric_records(run_dir, skipped_lines), run_dir)


def split_metrics(records: list[dict], run_dir: Path) -> tuple[list[dict], list[dict]]:
    """``(training records, probe records)`` of ``records`` (of ``run_dir``'s metrics)."""
    train, probes = [], []
    for record in records:
        if "reward" in record:
            train.append(record)
        elif any(k.startswith("probe/") for k in record):
            probes.append(record)
    if not train:
        raise AnalysisError(f"{run_dir / 'metrics.jsonl'}: no training steps recorded")
    return train, probes


def metric_records(run_dir: Path, skipped_lines: list[dict] | None = None) -> list[dict]:
    """Every record of ``metrics.jsonl``, in order.

    A last line that is not a record is what a run killed mid-write leaves: it is left out,
    with ``{"file", "line", "error"}`` added to ``skipped_lines`` (without a list, a
    ``UserWarning``). Any other such line is an ``AnalysisError`` naming file and line.
    """
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise AnalysisError(f"{run_dir}: not a run folder (no metrics.jsonl)")
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        raise AnalysisError(f"{path}: cannot read: {err}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _metric_record(line)
        except ValueError as err:
            if number < len(lines):
                raise AnalysisError(f"{path}:{number}: {err}") from None
            note = {"file": str(path), "line": number, "error": str(err)}
            if skipped_lines is None:
                warnings.warn(skipped_line_message(note), stacklevel=2)
            else:
                skipped_lines.append(note)
            continue
        records.append(record)
    return records


def _metric_record(line: bytes) -> dict:
    try:
        record = json.loads(line.decode())
    except ValueError as err:  # a UnicodeDecodeError is a ValueError
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        raise ValueError(f"not a record with a step: {line[:80]!r}")
    return record


def skipped_line_message(note: dict) -> str:
    """One line: the ``metrics.jsonl`` line ``note`` says was left out, and why."""
    return (
        f"skipped the truncated last line of {note['file']} (line {note['line']}: {note['error']})"
    )


def probe_series(probes: list[dict]) -> dict[tuple[str, int], dict[str, list]]:
    """Per (env, level): ``steps`` and one list per measure (NaN where a probe lacks it)."""
    keys: dict[tuple[str, int], set[str]] = {}
    for record in probes:
        for key in record:
            parts = key.split("/")
            if len(parts) == 4 and parts[0] == "probe":
                keys.setdefault((parts[1], int(parts[2])), set()).add(parts[3])
    out = {}
    for (env, level), measures in sorted(keys.items()):
        rows = [r for r in probes if f"probe/{env}/{level}/greedy" in r]
        series: dict[str, list] = {"steps": [r["step"] for r in rows]}
        for m in sorted(measures):
            series[m] = [r.get(f"probe/{env}/{level}/{m}", math.nan) for r in rows]
        out[(env, level)] = series
    return out


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of ``key`` over the records that have it."""
    pairs = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
    return [s for s, _ in pairs], [float(v) for _, v in pairs]


# -- metric artefacts -------------------------------------------------------------------


def artefacts(probe: dict[tuple[str, int], dict[str, list]]) -> list[dict[str, Any]]:
    """Per environment and level: does exact match jump, and do its continuous counterparts?

    Over the probe points, the interval where greedy exact match rises (or falls) most is
    found. Exact match *jumps* there when it changes by at least ``MIN_EXACT_CHANGE`` from
    first to last probe and that interval holds at least ``JUMP_SHARE`` of its movement
    (``stats.jump_share``: the step over the total variation). A continuous measure jumps at
    the same interval by the same share, moving the same way (gold log-probability up when
    exact match goes up; edit distance down). A jump in exact match with every continuous
    measure smooth there is a *likely metric artefact*; a jump in both is a *genuine
    transition*.
    """
    out = []
    for (env, level), s in probe.items():
        exact = s.get("greedy", [])
        entry: dict[str, Any] = {"env": env, "level": level, "probes": len(exact)}
        if len(exact) < 3:
            out.append({**entry, "finding": "too few probes"})
            continue
        deltas = np.diff(exact)
        total = exact[-1] - exact[0]
        i = int(np.argmax(deltas * (1 if total >= 0 else -1))) + 1
        share = jump_share(exact, i)
        entry.update(
            interval=[s["steps"][i - 1], s["steps"][i]],
            exact_change=total,
            exact_share=share,
        )
        continuous = {}
        for m, sign in (("gold_logprob", 1.0), ("edit_distance", -1.0)):
            values = s.get(m)
            if values is not None and not any(math.isnan(v) for v in values):
                continuous[m] = jump_share(values, i, direction=sign * (deltas[i - 1] or 1.0))
        entry["continuous_share"] = continuous
        if "brier" in s:  # calibration beside them: does the model know when it is right?
            entry["brier_first_last"] = [s["brier"][0], s["brier"][-1]]
        if abs(total) < MIN_EXACT_CHANGE or share < JUMP_SHARE:
            finding = "no jump in exact match"
        elif not continuous:
            finding = "jump (no continuous measure recorded)"
        elif any(v >= JUMP_SHARE for v in continuous.values()):
            finding = "genuine transition"
        else:
            finding = "likely metric artefact"
        out.append({**entry, "finding": finding})
    return out


# -- aha moments ------------------------------------------------------------------------


def aha(train: list[dict], run_dir: Path, skipped: Skipped | None = None) -> dict[str, Any]:
    """The verified self-correction rate over steps, its change point, and its company;
    transcript files that cannot be read are added to ``skipped``."""
    records = [r for r in train if VERIFIED in r]  # every series over the same steps
    steps = [r["step"] for r in records]
    verified = [float(r[VERIFIED]) for r in records]
    lexical = [float(r.get(LEXICAL, math.nan)) for r in records]
    accuracy = [
        float(np.mean([v for k, v in r.items() if k.startswith("accuracy/")] or [math.nan]))
        for r in records
    ]
    length = [float(r.get("length/reasoning_tokens_mean", math.nan)) for r in records]
    out: dict[str, Any] = {
        "steps": steps,
        "verified": verified,
        "lexical": lexical,
        "verified_mean": float(np.mean(verified)) if verified else None,
        "lexical_mean": float(np.mean(lexical)) if lexical else None,
        "lexical_without_verified_steps": sum(
            1 for v, x in zip(verified, lexical, strict=True) if x > 0 and v == 0
        ),
        "correlation_accuracy": _correlation(verified, accuracy),
        "correlation_length": _correlation(verified, length),
    }
    cp = change_point(verified, steps) if verified else None
    out["change_point"] = cp.to_dict() if cp else None
    rises = cp is not None and cp.p_value < AHA_P_VALUE and cp.after > cp.before
    out["rises"] = bool(rises)
    out["finding"] = (
        f"verified self-correction rises at step {cp.step:g}: {cp.before:.4f} -> {cp.after:.4f} "
        f"(change-point p = {cp.p_value:.3f})"
        if rises
        else "no significant rise of verified self-correction"
        + (f" (best change point p = {cp.p_value:.3f})" if cp else "")
    )
    out["first_corrections"] = _first_corrections(run_dir, cp.step if rises else None, skipped)
    return out


def _correlation(x: list[float], y: list[float]) -> float | None:
    """Pearson over the steps where both are recorded."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if not (math.isnan(a) or math.isnan(b))]
    return pearson([a for a, _ in pairs], [b for _, b in pairs])


def _first_corrections(
    run_dir: Path, after: float | None, skipped: Skipped | None
) -> list[dict[str, Any]]:
    from selfplay.errors import UsageError
    from selfplay.explorer import query

    columns = ["step", "env", "difficulty", "task_id", "prompt", "answer", "completion", "reward"]
    try:
        rows = query(
            run_dir,
            behaviour="self_correction_verified",
            role="solver",
            columns=columns,
            skipped=skipped,
        )
    except UsageError as err:  # e.g. a run with no transcripts
        raise AnalysisError(f"{run_dir}: cannot read transcripts: {err}") from err
    rows = rows.sort_values("step", kind="stable")
    chosen = rows.head(FIRST_CORRECTIONS)
    if after is not None:
        chosen = (
            chosen.merge(rows[rows["step"] >= after].head(FIRST_CORRECTIONS), how="outer")
            .drop_duplicates()
            .sort_values("step", kind="stable")
        )
    return _records(chosen)


def _records(frame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


# -- evaluations ------------------------------------------------------------------------


def ensure_eval(model: str, folder: Path, config, envs, settings, step: int, label: str, console):
    """The eval rows of ``model`` in ``folder``: reused when it holds equal settings."""
    from dataclasses import asdict

    from selfplay.evaluate import EVAL_FILE, evaluate, read_eval
    from selfplay.transcripts import CorruptTranscript

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


# -- the whole analysis -----------------------------------------------------------------


def analyze(
    run_dir: str | Path,
    *,
    base: str | None = None,
    samples: int = 16,
    tasks_per_level: int = 64,
    controls: tuple[str, ...] = (),
    evaluate_models: bool = True,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    console=None,
) -> Path:
    """Analyse a run; write ``summary.json`` and ``report.html``; return the report path.

    ``base``: the base model (a model folder, "organism") or an eval folder of it (whose
    settings are then used); default the model the run's config names. ``samples`` and
    ``tasks_per_level``: of the evaluations (``selfplay.evaluate.EvalSettings``). ``evaluate_models=False`` skips the evaluations (the
    report then has the training curves, artefacts and aha sections only).
    """
    from rich.console import Console

    from selfplay.analysis.evals import summarise
    from selfplay.analysis.html import write_report
    from selfplay.analysis.verdicts import (
        behaviour_verdicts,
        skill_verdicts,
        solvable_only_after,
        verdict_counts,
    )
    from selfplay.checkpoints import write_json_atomic
    from selfplay.evaluate import EVAL_FILE, EvalSettings, read_eval, resolve_eval_model
    from selfplay.explorer import Skipped
    from selfplay.train import load_envs, load_run_config

    console = console or Console()
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise AnalysisError(f"{run_dir}: not a run folder (no config.json)")
    stored = read_json(run_dir / "config.json")
    config = load_run_config(run_dir)
    skipped, skipped_lines = Skipped(), []  # what could not be read: named, left out
    records = metric_records(run_dir, skipped_lines)
    train, probes = split_metrics(records, run_dir)
    out_dir = run_dir / ANALYSIS_DIR
    out_dir.mkdir(exist_ok=True)
    probe = probe_series(probes)
    summary: dict[str, Any] = {
        "run": str(run_dir),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": stored,
        "thresholds": {
            **thresholds.to_dict(),
            "jump_share": JUMP_SHARE,
            "min_exact_change": MIN_EXACT_CHANGE,
            "aha_p_value": AHA_P_VALUE,
        },
        "training": _training(train),
        "artefacts": artefacts(probe),
        "aha": aha(train, run_dir, skipped),
        "controls": [_control(Path(c), probe, skipped_lines) for c in controls],
    }
    if config.selfplay.enabled:
        from selfplay.analysis.challenger import selfplay_summary

        summary["selfplay"] = selfplay_summary(run_dir, records, skipped)
    eval_rows: dict[str, Any] = {}
    if evaluate_models:
        if not (run_dir / "final" / "config.json").is_file():
            raise AnalysisError(f"{run_dir}: the run has no final/ model (unfinished?)")
        envs = load_envs(config, str(run_dir / "config.json"))
        if base and (Path(base) / EVAL_FILE).is_file():
            base_meta, base_rows = read_eval(base)
            settings = EvalSettings(**base_meta["settings"])
            base_model = base_meta["model"]
        else:
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
                base_model, out_dir / "eval-base", config, envs, settings, 0, "base", console
            )
        trained_model, step = resolve_eval_model(str(run_dir), config, console)
        trained_meta, trained_rows = ensure_eval(
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
        verdicts = skill_verdicts(base_rows, trained_rows, thresholds) + behaviour_verdicts(
            base_rows, trained_rows, thresholds
        )
        summary["evals"] = {
            "settings": base_meta["settings"],
            "base": {"model": base_model, "summary": summarise(base_rows)},
            "trained": {"model": trained_model, "step": step, "summary": summarise(trained_rows)},
        }
        summary["verdicts"] = verdicts
        summary["verdict_counts"] = verdict_counts(verdicts)
        summary["solvable_only_after"] = solvable_only_after(base_rows, trained_rows)
        summary["base_logprob"] = base_logprob(
            base_model, trained_rows, base_rows, config.system_prompt
        )
        eval_rows = {"base": base_rows, "trained": trained_rows}
    from selfplay.analysis.hacking import hacking_summary

    hacking = hacking_summary(run_dir, records, skipped)
    if hacking is not None:  # only a run whose judge is not the ground truth
        summary["hacking"] = hacking
    calibration = _calibration(run_dir, eval_rows, skipped)
    if calibration is not None:  # only when some completion states a confidence
        summary["calibration"] = calibration
    per_level = _per_level(run_dir, skipped)  # the last read: now ``skipped`` is complete
    summary["skipped"] = skipped_lines + skipped.to_json()
    for note in skipped_lines:
        console.print(f"warning: {skipped_line_message(note)}", markup=False, soft_wrap=True)
    if skipped:
        console.print(f"warning: {skipped.message()}", markup=False, soft_wrap=True)
    write_json_atomic(out_dir / "summary.json", summary)
    return write_report(
        out_dir / "report.html", summary, run_dir, train, probe, per_level=per_level
    )


def _per_level(run_dir: Path, skipped: Skipped):
    from selfplay.analysis.html import per_level_accuracy
    from selfplay.errors import UsageError

    try:
        return per_level_accuracy(run_dir, skipped)
    except UsageError as err:  # e.g. a run with no solver transcripts
        raise AnalysisError(f"{run_dir}: cannot read transcripts: {err}") from err


def _calibration(
    run_dir: Path, eval_rows: dict[str, Any], skipped: Skipped
) -> dict[str, Any] | None:
    from selfplay.analysis.calibration import calibration_summary
    from selfplay.errors import UsageError

    try:
        return calibration_summary(run_dir, eval_rows, skipped)
    except UsageError as err:  # e.g. a run with no solver transcripts
        raise AnalysisError(f"{run_dir}: cannot read transcripts: {err}") from err


def _training(train: list[dict]) -> dict[str, Any]:
    from selfplay.report import mean_of

    tenth = max(1, len(train) // 10)
    keys = [
        "reward",
        "length/reasoning_tokens_mean",
        "behaviour/self_correction_verified_rate",
        "behaviour/self_correction_lexical_rate",
        "clarify/recall",
        "clarify/precision",
    ]
    keys += sorted({k for r in train for k in r if k.startswith("accuracy/")})
    return {
        "steps": train[-1]["step"],
        "first_tenth": {k: mean_of(train[:tenth], k) for k in keys},
        "last_tenth": {k: mean_of(train[-tenth:], k) for k in keys},
    }


def _control(run: Path, probe: dict, skipped_lines: list[dict]) -> dict[str, Any]:
    """A control run's probes beside this run's: the last probe, per environment and level."""
    if not (run / "config.json").is_file():
        raise AnalysisError(f"--control {run}: not a run folder (no config.json)")
    config = read_json(run / "config.json")
    if not isinstance(config, dict):
        raise AnalysisError(f"{run / 'config.json'}: not a run config (a JSON object)")
    _, probes = read_metrics(run, skipped_lines)
    theirs = probe_series(probes)
    rows = []
    for key, s in probe.items():
        if key in theirs and s.get("greedy") and theirs[key].get("greedy"):
            rows.append(
                {
                    "env": key[0],
                    "level": key[1],
                    "run_first": s["greedy"][0],
                    "run_last": s["greedy"][-1],
                    "control_first": theirs[key]["greedy"][0],
                    "control_last": theirs[key]["greedy"][-1],
                }
            )
    return {
        "run": str(run),
        "control": config.get("rewards", {}).get("control") or "none",
        "probes": rows,
        "series": {f"{e}/{lv}": s for (e, lv), s in theirs.items()},
    }
