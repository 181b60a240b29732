"""The "aha" timeline: verified and lexical self-correction rates over the steps of a run,
the change point of the verified rate, its correlations, and the first verified corrections
(read from the solver transcripts)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selfplay.analysis.stats import change_point, pearson
from selfplay.errors import AnalysisError, UsageError

if TYPE_CHECKING:
    from selfplay.transcripts import Skipped

VERIFIED = "behaviour/self_correction_verified_rate"
LEXICAL = "behaviour/self_correction_lexical_rate"
AHA_P_VALUE = 0.05
"""A change point of the verified self-correction rate counts when its p-value is below this."""
FIRST_CORRECTIONS = 3
"""Verified corrections shown: the first ones of the run and the first after the change point."""


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
    from selfplay.transcripts import query

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
