"""Calibration: does the model know when it is right?

A completion may end its answer with ``<confidence>p</confidence>`` (``envs.format``); the
transcripts keep p in the ``confidence`` column (null where none was stated). Here p is
compared with whether the answer was right (verdict score 1, as pass@k and the accuracy
curves count it; partial credit counts as wrong):

- the *expected calibration error* (ECE): answers are put into ``BINS`` equal-width bins of
  p (``[0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]``: a p on an edge goes to the bin above it, 1.0
  to the last), and ECE is the mean over answers of ``|accuracy - mean p|`` of their bin,
  i.e. ``sum over bins of |sum(y - p)| / N``. 0 is perfectly calibrated; a model that always
  says 0.9 and is right half the time has ECE 0.4;
- the *reliability diagram*: per bin, the answers in it, their mean p and their accuracy;
- the Brier score ``mean((p - y)**2)`` beside it (what the ``calibration`` reward pays,
  negated), and the share of answers that state a confidence at all.

Every answer counts, guesses at underspecified tasks included (they are never right), so
these numbers also cover tasks the ``calibration`` reward leaves to ``clarify``. Over
training they come from the solver transcripts, in ``WINDOWS`` consecutive windows of
steps; for the base and trained evals from the sampled completions (temperature 1), with a
percentile bootstrap over tasks for the ECE, as every interval of the analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selfplay.analysis.evals import RESAMPLES, sampled
from selfplay.analysis.stats import Estimate

if TYPE_CHECKING:
    from selfplay.transcripts import Skipped, Transcripts

BINS = 10
"""Equal-width bins of the stated confidence."""
WINDOWS = 10
"""Windows of training steps the calibration over training is measured in."""
COLUMNS = ["step", "task_id", "verdict_kind", "verdict_score", "confidence"]
"""The transcript columns read."""


# -- measures -------------------------------------------------------------------------------


def bin_of(confidence, bins: int = BINS) -> np.ndarray:
    """The bin of each confidence in [0, 1]: ``floor(p * bins)``, 1.0 in the last bin.

    A hair of slack (1e-9) keeps a p on an edge in the bin it opens even where ``p * bins``
    rounds to just below the edge.
    """
    p = np.asarray(confidence, dtype=float)
    if p.size and (np.isnan(p).any() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError(f"confidences must be in [0, 1], got {p.min()} .. {p.max()}")
    return np.minimum(np.floor(p * bins + 1e-9).astype(int), bins - 1)


def reliability(confidence, correct, bins: int = BINS) -> list[dict[str, Any]]:
    """Per bin: its edges, the answers in it, their mean confidence and their accuracy
    (None for an empty bin)."""
    p, y = _checked(confidence, correct)
    which = bin_of(p, bins)
    out = []
    for b in range(bins):
        mine = which == b
        n = int(mine.sum())
        out.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": n,
                "confidence": float(p[mine].mean()) if n else None,
                "accuracy": float(y[mine].mean()) if n else None,
            }
        )
    return out


def ece(confidence, correct, bins: int = BINS) -> float | None:
    """Expected calibration error over equal-width bins; None without answers."""
    p, y = _checked(confidence, correct)
    if not p.size:
        return None
    gaps = np.bincount(bin_of(p, bins), weights=y - p, minlength=bins)
    return float(np.abs(gaps).sum() / p.size)


def ece_estimate(
    confidence, correct, tasks, bins: int = BINS, resamples: int = RESAMPLES, seed: int = 0
) -> Estimate:
    """ECE with a 95% percentile bootstrap interval over tasks (``tasks[i]``: answer i's task).

    Each resample draws the tasks with replacement and pools all their answers, so the
    answers of one task, which are not independent, move together.
    """
    p, y = _checked(confidence, correct)
    if not p.size:
        raise ValueError("ece_estimate needs at least one answer")
    keys, task = np.unique(np.asarray(tasks, dtype=object).astype(str), return_inverse=True)
    # Per task: the sum of (y - p) in each bin, and its answers.
    gaps = np.zeros((keys.size, bins))
    np.add.at(gaps, (task, bin_of(p, bins)), y - p)
    counts = np.bincount(task, minlength=keys.size).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, keys.size, size=(resamples, keys.size))
    weights = np.stack([np.bincount(row, minlength=keys.size) for row in draws]).astype(float)
    values = np.abs(weights @ gaps).sum(axis=1) / (weights @ counts)
    low, high = np.quantile(values, [0.025, 0.975])
    return Estimate(float(np.abs(gaps.sum(axis=0)).sum() / p.size), float(low), float(high))


def _checked(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(confidence, dtype=float)
    y = np.asarray(correct, dtype=float)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"confidence and correct must be 1-D of one length: {p.shape}, {y.shape}")
    return p, y


# -- over transcript rows -------------------------------------------------------------------


def answers(rows):
    """The rows that answered (``verdict_kind`` "answer"), stated confidence or not."""
    return rows[rows["verdict_kind"] == "answer"]


def stated(rows):
    """The answers that state a readable confidence."""
    mine = answers(rows)
    return mine[mine["confidence"].notna()]


def measures(rows, with_table: bool = False) -> dict[str, Any]:
    """Answers, the share stating a confidence, and over those: ECE, Brier score, mean
    confidence and accuracy (None without any); ``with_table``: the reliability table too."""
    said = stated(rows)
    n, k = len(answers(rows)), len(said)
    p = said["confidence"].to_numpy(float)
    y = (said["verdict_score"] >= 1.0).to_numpy(float)
    out: dict[str, Any] = {
        "answers": n,
        "stated": k,
        "stated_share": k / n if n else None,
        "ece": ece(p, y),
        "brier": float(((p - y) ** 2).mean()) if k else None,
        "mean_confidence": float(p.mean()) if k else None,
        "accuracy": float(y.mean()) if k else None,
    }
    if with_table:
        out["reliability"] = reliability(p, y)
    return out


def over_training(rows, windows: int = WINDOWS) -> dict[str, Any]:
    """The measures in ``windows`` consecutive windows of steps (about equally many steps
    each), with the reliability table of the first and the last window and of all steps."""
    steps = np.sort(rows["step"].unique())
    parts = [s for s in np.array_split(steps, min(windows, steps.size)) if s.size]
    table = []
    for part in parts:
        mine = rows[rows["step"].between(part[0], part[-1])]
        table.append({"steps": [int(part[0]), int(part[-1])], **measures(mine)})
    first = rows[rows["step"].between(parts[0][0], parts[0][-1])]
    last = rows[rows["step"].between(parts[-1][0], parts[-1][-1])]
    return {
        "windows": table,
        "first": {"steps": table[0]["steps"], **measures(first, with_table=True)},
        "last": {"steps": table[-1]["steps"], **measures(last, with_table=True)},
        "all": measures(rows, with_table=True),
    }


def _over_training(dataset: Transcripts) -> dict[str, Any] | None:
    """``over_training`` of the solver transcripts; None when no row states a confidence."""
    from selfplay.transcripts import parse_filters, select

    if "confidence" not in dataset.schema.names:
        return None
    rows = select(dataset, parse_filters(role="solver"), COLUMNS)
    return over_training(rows) if len(stated(rows)) else None


def of_eval(rows) -> dict[str, Any]:
    """The measures over an eval's sampled completions, the ECE with its interval."""
    mine = sampled(rows)
    out = measures(mine, with_table=True)
    said = stated(mine)
    if len(said):
        y = (said["verdict_score"] >= 1.0).to_numpy(float)
        estimate = ece_estimate(said["confidence"].to_numpy(float), y, said["task_id"])
        out["ece_ci"] = estimate.to_dict()
    return out


def calibration_summary(
    run_dir: Path, evals: dict[str, Any] | None = None, skipped: Skipped | None = None
) -> dict | None:
    """The ``calibration`` block of ``summary.json``: over training (the solver transcripts;
    files that cannot be read are added to ``skipped``) and for each eval in ``evals``
    (name -> its rows); None when no row states a confidence.
    """
    from selfplay.transcripts import parse_filters, with_transcripts

    out: dict[str, Any] = {"bins": BINS}
    training = with_transcripts(run_dir, parse_filters(role="solver"), _over_training, skipped)
    if training is not None:
        out["training"] = training
    evals = {k: v for k, v in (evals or {}).items() if "confidence" in v.columns}
    if any(len(stated(sampled(rows))) for rows in evals.values()):
        # Every eval, so that one whose model never states a confidence shows that.
        out["evals"] = {name: of_eval(rows) for name, rows in evals.items()}
    return out if len(out) > 1 else None
