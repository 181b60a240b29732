"""Evaluation of an organism: greedy and sampled accuracy per environment and level."""

from __future__ import annotations

from selfplay.accuracy import greedy_and_sampled


def evaluate(model, tokenizer, envs: dict, config, console=None) -> list[dict]:
    """Rows of ``{env, level, split, n, greedy, sampled}`` over trained and held-out levels."""
    import torch

    rows = []
    groups = [
        (name, level, split)
        for name, recipe in config.corpus.envs.items()
        for split, levels in (("train", recipe.levels), ("heldout", recipe.heldout_levels))
        for level in levels
    ]
    generator_state = torch.get_rng_state()
    torch.manual_seed(config.eval.seed)
    for name, level, split in groups:
        env = envs[name]
        tasks = [env.task(config.eval.seed, i, level) for i in range(config.eval.tasks_per_level)]
        row = {"env": name, "level": level, "split": split, "n": len(tasks)}
        row.update(
            greedy_and_sampled(
                model, tokenizer, env, tasks, max_new_tokens=config.eval.max_new_tokens
            )
        )
        rows.append(row)
        if console is not None:
            console.print(
                f"  eval {name} level {level} ({split}): greedy {row['greedy']:.2f} "
                f"sampled {row['sampled']:.2f}"
            )
    torch.set_rng_state(generator_state)
    return rows


def summary(rows: list[dict], split: str) -> dict[str, float]:
    """Mean greedy and sampled accuracy over all rows of one split."""
    chosen = [r for r in rows if r["split"] == split]
    if not chosen:
        return {"greedy": float("nan"), "sampled": float("nan")}
    return {m: sum(r[m] for r in chosen) / len(chosen) for m in ("greedy", "sampled")}


def accuracy_table(rows: list[dict], title: str = "Accuracy"):
    """A rich Table of the evaluation rows plus a mean line per split."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("env", "level", "split", "n", "greedy", "sampled (T=1)"):
        table.add_column(column, justify="right" if column not in ("env", "split") else "left")
    for r in rows:
        table.add_row(
            r["env"],
            str(r["level"]),
            r["split"],
            str(r["n"]),
            f"{r['greedy']:.1%}",
            f"{r['sampled']:.1%}",
        )
    for split in ("train", "heldout"):
        s = summary(rows, split)
        if s["greedy"] == s["greedy"]:
            table.add_row(
                "[bold]mean[/]", "", split, "", f"{s['greedy']:.1%}", f"{s['sampled']:.1%}"
            )
    return table
