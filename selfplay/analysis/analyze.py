"""`selfplay analyze RUN`: what a researcher can honestly conclude from a run.

Reads the run folder (``metrics.jsonl``, transcripts, ``config.json``; ``reading``), evaluates
the base model and the trained one on the same held-out tasks (``selfplay eval``, cached under
``RUN/analysis/``), and writes ``RUN/analysis/summary.json`` (every number and conclusion) and
``RUN/analysis/report.html`` (one self-contained file, plots embedded; ``render.report``). This
module only gathers the parts, each computed in its own module:

- training curves: reward, accuracy per environment and per level, reasoning length,
  behaviour rates, curriculum levels (from ``metrics.jsonl`` and the transcripts);
- pass@k base vs trained, and the elicited / newly-acquired conclusions (``model_evals``,
  ``conclusions``), the tasks solvable only after training, and the base model's
  log-probability of the trained model's correct solutions;
- metric artefacts (``artefacts``): exact match against its continuous counterparts over
  the probe points of the run (the probes run at every checkpoint interval);
- the "aha" timeline (``aha``): verified and lexical self-correction rates over steps, the
  change point of the verified rate, correlations, and the first verified corrections;
- self-play (``play``), for a self-play run: what the Challenger proposed, and collapses;
- calibration (``calibration``), when some completion states a confidence after its answer:
  the expected calibration error and reliability table over training and for the base and
  trained evals;
- the reward-hacking watch (``hacking``), when the run's judge is not the ground truth: the
  Judge's reward against the ground truth over steps, the step where they diverge, and
  transcripts the Judge paid although their answer is wrong;
- control runs (``--control``): probe curves of the run beside runs of the same config with
  random or format-only rewards.

A transcript file that cannot be read (``selfplay.transcripts.Skipped``) and a truncated last
line of ``metrics.jsonl`` are left out, each named on a warning line and under ``skipped``
in the summary and the report; a ``config.json`` or another ``metrics.jsonl`` line that
cannot be read is an ``AnalysisError`` naming the file (and line).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfplay.analysis.aha import AHA_P_VALUE, aha
from selfplay.analysis.artefacts import JUMP_SHARE, MIN_EXACT_CHANGE, artefacts
from selfplay.analysis.calibration import calibration_summary
from selfplay.analysis.conclusions import DEFAULT_THRESHOLDS, Thresholds
from selfplay.analysis.hacking import hacking_summary
from selfplay.analysis.model_evals import base_and_trained
from selfplay.analysis.play import selfplay_summary
from selfplay.analysis.reading import (
    per_level_accuracy,
    probe_series,
    read_json,
    read_metrics,
    split_metrics,
)
from selfplay.analysis.render.report import write_report
from selfplay.errors import AnalysisError, UsageError
from selfplay.transcripts.reading import metric_records, skipped_line_message

if TYPE_CHECKING:
    import pandas as pd

    from selfplay.transcripts import Skipped

ANALYSIS_DIR = "analysis"


def newest_run(config_path: Path) -> Path:
    """The newest finished run of a run config (the run its ``name:`` names, when set)."""
    from selfplay.config.load import load_run_config

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
    ``tasks_per_level``: of the evaluations (``selfplay.evaluate.EvalSettings``).
    ``evaluate_models=False`` skips the evaluations (the report then has the training
    curves, artefacts and aha sections only).
    """
    from rich.console import Console

    from selfplay.checkpoints import write_json_atomic
    from selfplay.config.load import load_run_config
    from selfplay.transcripts import Skipped

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
        "thresholds": _thresholds(thresholds),
        "training": _training(train),
        "artefacts": artefacts(probe),
        "aha": aha(train, run_dir, skipped),
        "controls": [_control(Path(c), probe, skipped_lines) for c in controls],
    }
    if config.selfplay.enabled:
        summary["selfplay"] = selfplay_summary(run_dir, records, skipped)
    eval_rows: dict[str, Any] = {}
    if evaluate_models:
        parts, eval_rows = base_and_trained(
            run_dir,
            out_dir,
            config,
            base=base,
            samples=samples,
            tasks_per_level=tasks_per_level,
            thresholds=thresholds,
            console=console,
        )
        summary.update(parts)
    summary.update(_judge_and_confidence(run_dir, records, eval_rows, skipped))
    per_level = _per_level(run_dir, skipped)  # the last read: now ``skipped`` is complete
    summary["skipped"] = skipped_lines + skipped.to_json()
    _warn_skipped(skipped_lines, skipped, console)
    write_json_atomic(out_dir / "summary.json", summary)
    return write_report(
        out_dir / "report.html", summary, run_dir, train, probe, per_level=per_level
    )


def _thresholds(thresholds: Thresholds) -> dict[str, Any]:
    """Every threshold the analysis compares against, for the summary and the report."""
    return {
        **thresholds.to_dict(),
        "jump_share": JUMP_SHARE,
        "min_exact_change": MIN_EXACT_CHANGE,
        "aha_p_value": AHA_P_VALUE,
    }


def _judge_and_confidence(
    run_dir: Path, records: list[dict], eval_rows: dict[str, Any], skipped: Skipped
) -> dict[str, Any]:
    """The ``hacking`` part, for a run whose judge is not the ground truth, and the
    ``calibration`` part, when some completion states a confidence."""
    out = {}
    hacking = hacking_summary(run_dir, records, skipped)
    if hacking is not None:
        out["hacking"] = hacking
    try:
        calibration = calibration_summary(run_dir, eval_rows, skipped)
    except UsageError as err:  # e.g. a run with no solver transcripts
        raise AnalysisError(f"{run_dir}: cannot read transcripts: {err}") from err
    if calibration is not None:
        out["calibration"] = calibration
    return out


def _per_level(run_dir: Path, skipped: Skipped) -> pd.DataFrame:
    try:
        return per_level_accuracy(run_dir, skipped)
    except UsageError as err:  # e.g. a run with no solver transcripts
        raise AnalysisError(f"{run_dir}: cannot read transcripts: {err}") from err


def _warn_skipped(skipped_lines: list[dict], skipped: Skipped, console) -> None:
    """One warning line for each part of the run that could not be read and was left out."""
    for note in skipped_lines:
        console.print(f"warning: {skipped_line_message(note)}", markup=False, soft_wrap=True)
    if skipped:
        console.print(f"warning: {skipped.message()}", markup=False, soft_wrap=True)


def _training(train: list[dict]) -> dict[str, Any]:
    from selfplay.tables import mean_of

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
