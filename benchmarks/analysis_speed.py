"""How fast the analysis runs: behaviour tagging, pass@k, and a filtered transcript query.

    python benchmarks/analysis_speed.py [--rows 1000000] [--tag-rows 20000] [--repeats 3]

1. **Tagging**: ``selfplay.behaviours.tag`` over organism-style completions (worked
   arithmetic and countdown solutions, a fifth with a corrected step, a few malformed),
   rows per second on one core (the process is pinned to one CPU where it can be).
   Target: at least 20,000 rows/s. A second row, for comparison, tags the hand-labelled
   traces of ``tests/data/behaviour_traces.jsonl`` (prose, markdown, LaTeX: the layouts
   pretrained models write, about twice as long), repeated to the same number of rows.
2. **pass@k**: ``selfplay.analysis.evals.pass_at_k_table`` on an eval table of ``--rows``
   sampled completions (4,096 tasks x 256 samples for 10^6), every k = 1, 2, 4, ... 256 with
   2,000-resample bootstrap intervals: grouping the rows per task, the estimator and the
   intervals, end to end.
3. **Query**: ``selfplay.transcripts.query`` over a run folder of ``--rows`` transcript rows
   (100 Parquet files, realistic columns and completion texts), filtered by step range,
   environment, level and a behaviour tag; and the all-equal-reward-groups filter.
   Target: under 1 s.

Each timing is the best of ``--repeats``. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(repeats: int, func) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def completions(n: int, seed: int = 0):
    """(text, task, verdict) triples as the organism writes them."""
    from envs import load_env
    from selfplay.organism.corpus import CorpusConfig, EnvRecipe, completion

    rng = random.Random(seed)
    names = ("arithmetic", "countdown")
    config = CorpusConfig({n: EnvRecipe(levels=[1]) for n in names}, self_correction_rate=0.2)
    envs = {name: load_env(name) for name in names}
    out = []
    for i in range(n):
        env = envs["arithmetic" if i % 3 else "countdown"]
        task = env.task(seed, i, rng.choice(env.levels[:3]))
        text = completion(env, task, config, rng)
        if i % 50 == 0:
            text = text[: len(text) // 2]  # a truncated, malformed completion
        out.append((text, task, env.score(text, task)))
    return out


def labelled_completions(n: int):
    """(text, task, verdict) triples of the labelled traces, cycled to ``n`` rows."""
    import json

    from envs import Task, load_env

    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "behaviour_traces.jsonl"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        task = Task(
            row["id"], row["env"], row["difficulty"], row["prompt"], row["answer"],
            metadata=row["metadata"],
        )  # fmt: skip
        out.append((row["completion"], task, load_env(row["env"]).score(row["completion"], task)))
    return [out[i % len(out)] for i in range(n)]


def bench_tagging(items: list, repeats: int) -> tuple[float, int]:
    from selfplay.behaviours import tag

    seconds, _ = best_of(repeats, lambda: [tag(t, task, v) for t, task, v in items])
    return seconds, len(items)


def eval_frame(rows: int, samples: int = 256, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    tasks = rows // samples
    p = rng.beta(0.5, 2.0, size=tasks)  # per-task solve probability
    correct = rng.random((tasks, samples)) < p[:, None]
    levels = np.arange(tasks) % 4 + 1
    return pd.DataFrame(
        {
            "env": np.where(np.arange(tasks) % 2, "arithmetic", "countdown").repeat(samples),
            "difficulty": levels.repeat(samples),
            "task_id": np.array([f"t{i}" for i in range(tasks)]).repeat(samples),
            "temperature": np.ones(tasks * samples),
            "verdict_score": correct.ravel().astype(float),
        }
    )


def bench_passk(rows: int, repeats: int) -> tuple[float, int]:
    from selfplay.analysis.evals import pass_at_k_table

    frame = eval_frame(rows)
    seconds, table = best_of(repeats, lambda: pass_at_k_table(frame))
    assert table and all(len(row["pass_at_k"]) == 9 for row in table)
    return seconds, len(frame)


def write_run(folder: Path, rows: int, files: int = 100, seed: int = 0) -> None:
    """A run folder of ``rows`` transcript rows in ``files`` step files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    out = folder / "transcripts"
    out.mkdir(parents=True)
    per = rows // files
    texts = np.array(
        [
            f"<think>{a}+{b}={a + b}\n{a + b}*2={2 * (a + b)}</think><answer>{a}</answer>"
            for a, b in rng.integers(0, 999, size=(512, 2))
        ]
    )
    for step in range(files):
        reward = rng.integers(0, 2, size=per).astype(float)
        table = pa.table(
            {
                "run": ["bench"] * per,
                "step": np.full(per, step),
                "role": ["solver"] * per,
                "group": np.arange(per) // 8,
                "task_id": [f"arithmetic/0/{k % 5 + 1}/{k // 8}" for k in range(per)],
                "env": np.where(np.arange(per) % 3, "arithmetic", "countdown"),
                "difficulty": (np.arange(per) // 8) % 5 + 1,
                "prompt": ["Compute 12+34."] * per,
                "answer": ["46"] * per,
                "completion": texts[rng.integers(0, len(texts), size=per)],
                "reward": reward,
                "advantage": reward - reward.mean(),
                "verdict_score": reward,
                "self_correction_verified": rng.random(per) < 0.02,
                "self_correction_lexical": rng.random(per) < 0.05,
                "verification": rng.random(per) < 0.05,
                "backtracking": np.zeros(per, dtype=bool),
                "asked": np.zeros(per, dtype=bool),
                "clarify_outcome": ["true_negative"] * per,
            }
        )
        pq.write_table(table, out / f"solver-step-{step:06d}.parquet", compression="zstd")


def bench_query(rows: int, repeats: int) -> list[tuple[str, float, int]]:
    from selfplay.transcripts import query

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        write_run(run, rows)
        found = []
        for label, kwargs in (
            (
                "query: steps 20:80, env, level, behaviour",
                dict(
                    steps="20:80", env="arithmetic", level=3, behaviour="self_correction_verified"
                ),
            ),
            ("query: all-equal-reward groups", dict(equal_reward_groups=True, steps="0:49")),
        ):
            seconds, frame = best_of(repeats, lambda kwargs=kwargs: query(run, **kwargs))
            found.append((f"{label} ({len(frame):,} rows out)", seconds, rows))
        return found


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="pass@k samples, query rows")
    parser.add_argument("--tag-rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    console = Console(width=max(Console().width, 110))
    results = []
    seconds, n = bench_tagging(completions(args.tag_rows), args.repeats)
    rate = n / seconds
    results.append(
        ("behaviour tagging (tag per row)", seconds, n, rate, ">= 20,000 rows/s", rate >= 20_000)
    )
    seconds, n = bench_tagging(labelled_completions(args.tag_rows), args.repeats)
    results.append(("behaviour tagging, labelled model layouts", seconds, n, n / seconds, "", None))
    seconds, n = bench_passk(args.rows, args.repeats)
    results.append(("pass@k, k=1..256, with bootstrap CIs", seconds, n, n / seconds, "", None))
    for label, seconds, n in bench_query(args.rows, args.repeats):
        results.append((label, seconds, n, n / seconds, "< 1 s", seconds < 1.0))

    table = Table(title=f"Analysis speed (one core, best of {args.repeats})")
    for column in ("measure", "rows", "seconds", "rows/s", "target", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for label, seconds, n, rate, target, met in results:
        table.add_row(
            label,
            f"{n:,}",
            f"{seconds:.3f}",
            f"{rate:,.0f}",
            target,
            "" if met is None else ("yes" if met else "NO"),
        )
    console.print(table)


if __name__ == "__main__":
    main()
