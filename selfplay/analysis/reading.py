"""Reading a run folder for the analysis: its JSON files, the records of ``metrics.jsonl``
(``selfplay.transcripts.reading.metric_records``) split into training and probe records, the
series drawn from them and the per-level accuracy of its solver transcripts.

A JSON file that cannot be read is an ``AnalysisError`` naming it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfplay.errors import AnalysisError
from selfplay.transcripts.reading import metric_records

if TYPE_CHECKING:
    import pandas as pd

    from selfplay.transcripts import Skipped


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


def per_level_accuracy(run_dir: Path, skipped: Skipped | None = None) -> pd.DataFrame:
    """Accuracy of the solver transcripts per env, level and step (columns ``env``,
    ``difficulty``, ``step``, ``accuracy``); files that cannot be read go to ``skipped``."""
    from selfplay.transcripts import query

    columns = ["step", "env", "difficulty", "verdict_score"]
    rows = query(run_dir, role="solver", columns=columns, skipped=skipped)
    rows = rows.assign(accuracy=(rows["verdict_score"] >= 1.0).astype(float))
    return rows.groupby(["env", "difficulty", "step"], as_index=False)["accuracy"].mean()
