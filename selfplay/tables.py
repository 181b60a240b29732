"""Terminal tables for a finished run."""

from __future__ import annotations


def before_after_table(probes: list[dict], history: list[dict]):
    """Held-out probe pass@1 per environment and level before and after training, plus the
    clarify precision and recall and mean reasoning length of the first and last tenth of steps."""
    from rich.table import Table

    first, last = min(p["step"] for p in probes), max(p["step"] for p in probes)
    before = {(p["env"], p["level"]): p for p in probes if p["step"] == first}
    after = {(p["env"], p["level"]): p for p in probes if p["step"] == last}
    table = Table(title=f"Held-out probes: step {first} -> step {last}")
    for column in (
        "env",
        "level",
        "greedy before",
        "greedy after",
        "sampled before",
        "sampled after",
    ):
        table.add_column(column, justify="left" if column == "env" else "right")
    for key in sorted(before):
        b, a = before[key], after.get(key, {})
        table.add_row(
            key[0],
            str(key[1]),
            f"{b['greedy']:.1%}",
            _pct(a.get("greedy")),
            f"{b['sampled']:.1%}",
            _pct(a.get("sampled")),
        )
    tenth = max(1, len(history) // 10)
    for label, metric in (
        ("clarify precision", "clarify/precision"),
        ("clarify recall", "clarify/recall"),
        ("reasoning tokens", "length/reasoning_tokens_mean"),
    ):
        early, late = mean_of(history[:tenth], metric), mean_of(history[-tenth:], metric)
        fmt = _tokens if "tokens" in metric else _pct
        table.add_row(f"[bold]{label}[/]", "train", fmt(early), fmt(late), "", "")
    return table


def _tokens(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def mean_of(rows: list[dict], key: str) -> float | None:
    """The mean of ``key`` over the records that have it (None when none has)."""
    values = [r[key] for r in rows if key in r]
    return sum(values) / len(values) if values else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def peak_memory() -> str:
    """This process's peak resident memory (RSS), for the end of a command's output."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    mib = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    return f"peak memory (RSS): {mib:,.0f} MiB"
