"""The self-play analysis: what the Challenger proposed, how hard, how often solved, collapse.

Read from ``metrics.jsonl`` (the ``challenger/*`` record of every Challenger step),
``summary.json`` (the collapses the run flagged) and the ``challenger`` transcripts (the
proposals themselves).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfplay.analysis.reading import read_json, series
from selfplay.errors import UsageError

if TYPE_CHECKING:
    from selfplay.transcripts import Skipped

SERIES = (
    "reward",
    "valid_rate",
    "duplicate_rate",
    "distinct_ratio",
    "difficulty_mean",
    "difficulty_spread",
    "solve_rate_mean",
    "solve_rate_spread",
    "token_entropy",
    "kept",
    "collapsed",
)
"""The per-step ``challenger/<name>`` measures the report plots and keeps."""
EXAMPLES = 6
"""Proposals shown from the first and the last Challenger step."""


def selfplay_summary(
    run_dir: Path, records: list[dict], skipped: Skipped | None = None
) -> dict[str, Any]:
    """The Challenger's series, proposal statistics, examples and collapses of a self-play
    run; challenger transcript files that cannot be read are added to ``skipped``."""
    from selfplay.challenger import REWARD_FORMULA
    from selfplay.transcripts import query

    steps = [r for r in records if "challenger/reward" in r]
    out: dict[str, Any] = {
        "formula": REWARD_FORMULA,
        "series": {name: series(steps, f"challenger/{name}") for name in SERIES},
        "collapses": _collapses(run_dir, steps),
        "challenger_steps": len(steps),
    }
    try:
        rows = query(run_dir, role="challenger", skipped=skipped)
    except UsageError:  # no challenger transcripts
        return {**out, "proposals": 0}
    out["proposals"] = len(rows)
    if rows.empty:  # every challenger file was unreadable
        return out
    out["status"] = {str(k): int(v) for k, v in rows["proposal_status"].value_counts().items()}
    first, last = rows["step"].min(), rows["step"].max()
    out["difficulty"] = {
        label: _levels(rows[rows["step"] == step])
        for label, step in (("first", first), ("last", last))
    }
    out["examples"] = {
        label: _examples(rows[rows["step"] == step])
        for label, step in (("first", first), ("last", last))
    }
    out["steps"] = {"first": int(first), "last": int(last)}
    return out


def _collapses(run_dir: Path, steps: list[dict]) -> list[dict[str, Any]]:
    """The run's own record of collapses, else the steps its metrics flag."""
    path = run_dir / "summary.json"
    if path.is_file():
        return read_json(path).get("selfplay", {}).get("collapses", [])
    return [
        {"step": r["step"], "reasons": ["flagged in metrics.jsonl"]}
        for r in steps
        if r.get("challenger/collapsed")
    ]


def _levels(rows) -> dict[str, int]:
    """Valid proposals per difficulty level."""
    valid = rows[rows["proposal_status"] == "ok"]
    counts = valid["difficulty"].astype(int).value_counts().sort_index()
    return {str(level): int(n) for level, n in counts.items()}


def _examples(rows) -> list[dict[str, Any]]:
    """The step's proposals with the highest reward first, then the rejected ones."""
    rows = rows.sort_values("reward", ascending=False, kind="stable").head(EXAMPLES)
    columns = ["step", "env", "completion", "proposal_status", "proposal_detail", "proposed_task"]
    columns += ["answer", "solve_rate", "reward"]
    return [
        {
            c: (None if _missing(r[c]) else r[c].item() if hasattr(r[c], "item") else r[c])
            for c in columns
        }
        for _, r in rows.iterrows()
    ]


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))
