"""The subcommands of `selfplay`: each a ``cmd_<name>(args)``. Heavy libraries are imported
inside each one, so ``selfplay --help`` stays fast."""

from __future__ import annotations

import argparse
import math
import sys

from selfplay.errors import UsageError


def cmd_envs(args: argparse.Namespace) -> None:
    """List registered environments with one sample task and its answer each."""
    from envs import load_env, registered_envs

    for name, cls in sorted(registered_envs().items()):
        try:
            env = load_env(name)
            task = env.task(seed=0, index=0, difficulty=env.levels[0])
        except ImportError as err:  # an optional extra that is not installed
            print(f"{name:14s} (unavailable: {err})")
            continue
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        target = env.target(task)
        print(f"{name:14s} levels {list(env.levels)}  {doc}")
        print(f"{'':14s} prompt: {_short(task.prompt)}")
        print(f"{'':14s} target: {_short(target)}")


def cmd_pretrain(args: argparse.Namespace) -> None:
    """Train or reuse the organism of a config and print its accuracy table."""
    from selfplay.organism.pretrain import pretrain

    pretrain(args.config, root=args.models_dir, force=args.force)


def cmd_train(args: argparse.Namespace) -> None:
    """GRPO training: Challenger, Judge, curriculum (or self-play), transcripts, probes."""
    from selfplay.train import train

    names = args.report_to.split(",") if args.report_to is not None else None
    train(args.config, resume=args.resume, control=args.control or "", report_to=names)


def cmd_launch(args: argparse.Namespace) -> None:
    """The training run on Ray: data-parallel workers, judge actors (see selfplay.launch)."""
    from selfplay.launch import launch

    launch(args.config, args.ray_address, resume=args.resume)


def cmd_sample(args: argparse.Namespace) -> None:
    """Sample completions of a model on an environment's tasks and print their verdicts."""
    from envs import load_env
    from selfplay.generation import attempt
    from selfplay.models import load_model
    from selfplay.sandbox import equip

    if args.n < 1:
        raise UsageError(f"-n {args.n}: sample at least 1 task")
    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens {args.max_new_tokens}: must be at least 1")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UsageError(f"--temperature {args.temperature}: must be 0 (greedy) or more")
    env = equip(load_env(args.env))
    level = args.level if args.level is not None else env.levels[0]
    if level not in env.levels:
        raise UsageError(f"--level {level}: environment {args.env!r} has levels {list(env.levels)}")
    model, tokenizer = load_model(args.model)
    tasks = [env.task(args.seed, i, level) for i in range(args.n)]
    for a in attempt(
        model,
        tokenizer,
        env,
        tasks,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
    ):
        print(f"[{a.task.task_id}] {a.task.prompt}")
        print(f"  completion: {_short(a.completion, 300)}")
        print(
            f"  verdict: score {a.verdict.score:g} ({a.verdict.reason}); expected {a.task.answer}"
        )


def _eval_settings(args: argparse.Namespace, config):
    """``EvalSettings`` from the options ``eval`` and ``compare`` share; bad values are usage errors."""
    from selfplay.evaluate import EvalSettings

    try:
        return EvalSettings(
            samples=args.samples,
            tasks_per_level=args.tasks_per_level,
            seed=args.seed,
            max_new_tokens=(
                config.probe.max_new_tokens if args.max_new_tokens is None else args.max_new_tokens
            ),
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def cmd_eval(args: argparse.Namespace) -> None:
    """Sample a model many times on a config's held-out tasks; print pass@k per level."""
    from rich.console import Console

    from selfplay.evaluate import evaluate_model

    console = Console()
    meta, out = evaluate_model(
        args.model,
        args.config,
        args.out,
        samples=args.samples,
        tasks_per_level=args.tasks_per_level,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        console=console,
        ray_address=args.ray_address,
    )
    console.print(pass_at_k_rich(meta["summary"]["pass_at_k"]))
    console.print(
        f"{meta['rows']} completions of {meta['tasks']} tasks in {meta['seconds']:.0f} s; "
        f"eval transcripts in {out}"
    )


def cmd_compare(args: argparse.Namespace) -> None:
    """Evaluate two models on the same held-out tasks; pass@1 per level, changed tasks."""
    import time
    from pathlib import Path

    from rich.console import Console

    from selfplay.compare import compare, print_comparison
    from selfplay.config.load import load_envs, load_run_config

    console = Console()
    config = load_run_config(args.config)
    envs = load_envs(config, args.config)
    settings = _eval_settings(args, config)
    if args.batch_size < 1 or args.show < 0:
        raise UsageError(
            f"--batch-size must be at least 1 and --show at least 0, got "
            f"{args.batch_size} and {args.show}"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path(config.runs_dir) / f"compare-{stamp}"
    result = compare(
        args.model_a,
        args.model_b,
        config,
        envs,
        settings,
        out,
        seed_b=args.seed_b,
        console=console,
        batch_size=args.batch_size,
        ray_address=args.ray_address,
    )
    print_comparison(result, console, limit=args.show)
    console.print(f"compare.json and both evals in {out}")


def cmd_analyze(args: argparse.Namespace) -> None:
    """Evaluate base and trained, write report.html and summary.json, print the conclusions."""
    import json
    from pathlib import Path

    from rich.console import Console

    from selfplay.analysis.analyze import analyze, newest_run
    from selfplay.analysis.render.conclusions import conclusion_table

    console = Console()
    run = Path(args.run)
    if run.is_file():
        run = newest_run(run)
    report = analyze(
        run,
        base=args.base,
        samples=args.samples,
        tasks_per_level=args.tasks_per_level,
        controls=tuple(args.control),
        evaluate_models=not args.no_eval,
        console=console,
    )
    summary = json.loads((report.parent / "summary.json").read_text())
    if "conclusions" in summary:
        console.print(conclusion_table(summary))
    console.print(f"aha: {summary['aha']['finding']}")
    console.print(f"report: {report}")


def cmd_study(args: argparse.Namespace) -> None:
    """Run a study config's arms, apply its rule, write study.json and study.html."""
    import json

    from rich.console import Console

    from selfplay.studies.render import terminal_table
    from selfplay.studies.run import run_study

    console = Console()
    folder = run_study(
        args.config,
        quick=args.quick,
        resume=args.resume,
        ray_address=args.ray_address,
        console=console,
    )
    study = json.loads((folder / "study.json").read_text())
    console.print(terminal_table(study))
    console.print(f"conclusion: {study['conclusion']}")
    console.print(f"study: {folder / 'study.html'}", soft_wrap=True, markup=False)


def cmd_export(args: argparse.Namespace) -> None:
    """Write a run as a Hugging Face dataset folder, then push it with --push-to-hub."""
    from selfplay.interop.hub import check_repo_id, export, push_to_hub

    if args.push_to_hub is not None:
        check_repo_id(args.push_to_hub)  # before anything is written
    counts = export(args.run, args.dir, force=args.force)
    rows = counts["transcripts"]
    parts = [f"{rows['rows']} transcript rows ({rows['steps']} steps)"]
    parts += [
        f"{counts[name]['rows']} {name} rows" for name in ("metrics", "evals") if name in counts
    ]
    for note in counts["left_out"]:
        print(f"selfplay export: warning: {note}", file=sys.stderr)
    print(f"{args.dir}: {', '.join(parts)}; datasets.load_dataset({str(args.dir)!r}) reads it")
    if args.push_to_hub is not None:
        print(f"pushed to {push_to_hub(args.dir, args.push_to_hub)}")


def pass_at_k_rich(table: list[dict]):
    """A rich table of pass@k (value and interval) per environment and level."""
    from rich.table import Table

    ks = list(table[0]["pass_at_k"]) if table else []
    out = Table(title="pass@k at temperature 1 (95% bootstrap intervals over tasks for k=1 and N)")
    for column in ("env", "level", "tasks", "greedy", *(f"pass@{k}" for k in ks)):
        out.add_column(column, justify="left" if column == "env" else "right")
    for row in table:
        estimates = list(row["pass_at_k"].values())
        # Intervals for pass@1 and pass@N; the k between them as values, to keep it narrow.
        cells = [
            f"{e['value']:.2f} [{e['low']:.2f},{e['high']:.2f}]"
            if i in (0, len(estimates) - 1)
            else f"{e['value']:.2f}"
            for i, e in enumerate(estimates)
        ]
        out.add_row(
            row["env"], str(row["level"]), str(row["tasks"]), f"{row['greedy']:.2f}", *cells
        )
    return out


def _short(text: str, limit: int = 120) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"
