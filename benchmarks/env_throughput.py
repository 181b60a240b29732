"""Generation and scoring throughput of every built-in environment, printed as a table.

    python benchmarks/env_throughput.py [--tasks 2000]

Rewards are computed for every completion of every GRPO step, so a slow scorer shows up
directly in step time; this measures tasks built and completions scored per second.
"""

from __future__ import annotations

import argparse
import time

from envs import load_env

BUILTINS = ("arithmetic", "countdown", "modular", "clarify")


def measure(name: str, level: int, n: int) -> tuple[float, float]:
    """(tasks generated per second, completions scored per second) at one level."""
    env = load_env(name)
    start = time.perf_counter()
    tasks = [env.task(0, i, level) for i in range(n)]
    made = n / (time.perf_counter() - start)
    completions = [f"<think>step</think>{env.target(t)}" for t in tasks]
    start = time.perf_counter()
    for task, completion in zip(tasks, completions, strict=True):
        env.score(completion, task)
    return made, n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per environment and level")
    args = parser.parse_args()
    print(f"{'env':12s} {'level':>5s} {'generate/s':>12s} {'score/s':>12s}")
    for name in BUILTINS:
        for level in load_env(name).levels:
            made, scored = measure(name, level, args.tasks)
            print(f"{name:12s} {level:5d} {made:12,.0f} {scored:12,.0f}")


if __name__ == "__main__":
    main()
