"""How many Challenger-style programs per second the sandbox runs.

    python benchmarks/sandbox_speed.py [--workers 2] [--programs 500] [--kind short|medium]

Each program defines a function and the sandbox evaluates a call of it (``run_many``, so the
programs are spread over the workers). ``short`` sorts the squares of 20 numbers; ``medium``
sieves the primes below 20,000 and counts residues with ``collections.Counter``. The batch
runs once with 1 worker and once with ``--workers``. Per-program times are ``Result.seconds``:
fork to reap, as the worker measures it. Target: at least 50 short programs/s with 2 workers.
Prints a table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from selfplay.sandbox import Sandbox

SHORT = """
def f(xs):
    return sorted(x * x for x in xs)
"""

MEDIUM = """
from collections import Counter

def f(n, xs):
    sieve = [True] * (n + 1)
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = [False] * len(sieve[i * i :: i])
    primes = [i for i in range(2, n + 1) if sieve[i]]
    return len(primes), Counter(x % 7 for x in xs).most_common(3)
"""


def jobs(kind: str, programs: int, seed: int = 0) -> list[tuple[str, str]]:
    """``programs`` (code, expression) pairs, each with its own arguments."""
    rng = random.Random(seed)
    out = []
    for _ in range(programs):
        xs = [rng.randint(-99, 99) for _ in range(20)]
        out.append((SHORT, f"f({xs})") if kind == "short" else (MEDIUM, f"f(20000, {xs})"))
    return out


def bench(workers: int, batch: list[tuple[str, str]]) -> tuple[float, float, list[float]]:
    """(start-up seconds, batch seconds, per-program seconds) with ``workers`` workers."""
    start = time.perf_counter()
    with Sandbox(workers=workers) as sandbox:
        started = time.perf_counter() - start
        sandbox.run_many(batch[: workers * 2])  # warm up
        start = time.perf_counter()
        results = sandbox.run_many(batch)
        seconds = time.perf_counter() - start
    failed = [r for r in results if r.status != "ok"]
    assert not failed, failed[0]
    return started, seconds, [r.seconds for r in results]


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--programs", type=int, default=500)
    parser.add_argument("--kind", choices=("short", "medium"), default="short")
    args = parser.parse_args()

    batch = jobs(args.kind, args.programs)
    table = Table(title=f"Sandbox speed ({args.kind} programs, run_many)")
    for column in (
        "workers",
        "programs",
        "start-up s",
        "seconds",
        "programs/s",
        "median ms",
        "p95 ms",
        "target",
        "met",
    ):
        table.add_column(column, justify="right")
    for workers in sorted({1, args.workers}):
        started, seconds, each = bench(workers, batch)
        rate = len(batch) / seconds
        targeted = args.kind == "short" and workers >= 2
        table.add_row(
            str(workers),
            f"{len(batch):,}",
            f"{started:.2f}",
            f"{seconds:.2f}",
            f"{rate:,.0f}",
            f"{statistics.median(each) * 1e3:.1f}",
            f"{statistics.quantiles(each, n=20)[-1] * 1e3:.1f}",
            ">= 50/s" if targeted else "",
            ("yes" if rate >= 50 else "NO") if targeted else "",
        )
    Console(width=max(Console().width, 110)).print(table)


if __name__ == "__main__":
    main()
