"""The `selfplay` command line. Heavy libraries are imported inside each subcommand."""

from __future__ import annotations

import argparse
import math
import sys

from selfplay.errors import UsageError

EXIT_USAGE = 2
EXIT_DISK_FULL = 1


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

    train(args.config, resume=args.resume, control=args.control or "")


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
    from pathlib import Path

    from rich.console import Console

    from selfplay.config.load import load_envs, load_run_config
    from selfplay.evaluate import evaluate, resolve_eval_model

    console = Console()
    config = load_run_config(args.config)
    envs = load_envs(config, args.config)
    settings = _eval_settings(args, config)
    path, step = resolve_eval_model(args.model, config, console)
    out = Path(args.out) if args.out else Path("evals") / f"{Path(path).name}-n{args.samples}"
    meta = evaluate(
        path, config, envs, settings, out, step=step, console=console, ray_address=args.ray_address
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="selfplay",
        description="Self-play curricula and GRPO for studying how reasoning emerges.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list environments with a sample task each")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("pretrain", help="train (or reuse) the base-model organism of a config")
    p.add_argument("config", help="organism config, e.g. configs/organism.yaml")
    p.add_argument(
        "--models-dir", default="models", help="where organisms are kept (default: models)"
    )
    p.add_argument("--force", action="store_true", help="retrain even if this config was trained")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser(
        "train",
        help="GRPO-train a model on tasks a Challenger sets and a Judge scores",
        description="GRPO through TRL on tasks a Challenger sets and a Judge scores. With "
        "'selfplay: {enabled: true}' in the config the Challenger is a model trained too: "
        "Challenger and Solver phases alternate (configs/selfplay_organism.yaml).",
    )
    p.add_argument(
        "config", help="run config, e.g. configs/quickstart.yaml or configs/selfplay_organism.yaml"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue a killed run from its last checkpoint: RUN_DIR, or by default the newest "
        "unfinished run of CONFIG (the run named by its name: key when set)",
    )
    p.add_argument(
        "--control",
        choices=["random", "format_only"],
        default=None,
        help="a control run of the same config: rewards replaced by a coin flip (random) or by "
        "the format component alone (format_only); compare with `selfplay analyze --control`",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "launch",
        help="the same training run on a Ray cluster: data-parallel workers, judge actors",
        description="Train CONFIG on Ray: resources.workers training workers (Ray Train's "
        "TorchTrainer; TRL under Accelerate, data parallel), judges in resources.judge_actors "
        "actors. Without --ray-address it is `selfplay train CONFIG`. The runs_dir must be on "
        "storage every node sees.",
    )
    p.add_argument("config", help="run config with a resources: section (defaults apply)")
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="host:port of a running cluster, 'auto' (the cluster this machine belongs to) or "
        "'local' (start Ray on this machine); omitted: train in this process",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue a killed run from its last checkpoint, as `selfplay train --resume`",
    )
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("sample", help="sample a model on an environment and score the completions")
    p.add_argument("model", help="organism folder, local Hugging Face folder or hub name")
    p.add_argument("--env", default="arithmetic", help="environment name (see `selfplay envs`)")
    p.add_argument("--level", type=int, default=None, help="difficulty level (default: easiest)")
    p.add_argument("-n", type=int, default=4, help="number of tasks")
    p.add_argument("--temperature", type=float, default=1.0, help="0 for greedy")
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--seed", type=int, default=1234, help="task seed")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "eval",
        help="sample a model N times per held-out task of a config; pass@k per env and level",
        description="Complete every held-out task (each environment and level of CONFIG's mix) "
        "once greedily and N times at temperature 1, write the completions as eval transcripts "
        "(role eval) with eval.json, and print pass@k with bootstrap intervals. Equal settings "
        "draw equal tasks, so a base and a trained model can be compared.",
    )
    p.add_argument(
        "model",
        help="'organism' (the config's), a run folder (its final/), a checkpoint folder, "
        "or any Hugging Face model folder",
    )
    p.add_argument("--config", required=True, help="run config whose envs and levels to use")
    p.add_argument("--samples", "-n", type=int, default=16, help="samples per task (max 4096)")
    p.add_argument("--tasks-per-level", type=int, default=64, help="held-out tasks per level")
    p.add_argument("--seed", type=int, default=4242, help="seed of the held-out tasks")
    p.add_argument(
        "--max-new-tokens", type=int, default=None, help="default: the config's probe budget"
    )
    p.add_argument("--out", default=None, help="output folder (default: evals/<model>-n<N>)")
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="evaluate in the config's resources.eval_actors Ray actors, a level at a time "
        "(host:port, 'auto' or 'local'); the same rows as one process",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "compare",
        help="compare two models on the same held-out tasks: pass@1 per level, changed tasks",
        description="Evaluate MODEL_A and MODEL_B as `selfplay eval` does, on the same "
        "held-out tasks of CONFIG, then print per environment and level pass@1 of each, B-A "
        "with a paired bootstrap interval (simultaneous over levels) and whether it is "
        "significant, and the tasks B solves significantly more or less often (Fisher's exact "
        "test per task, Holm-corrected). Writes compare.json and both evals to --out.",
    )
    for name in ("model_a", "model_b"):
        p.add_argument(
            name,
            metavar=name.upper(),
            help="'organism' (the config's), a run folder (its final/), a checkpoint folder, "
            "or any Hugging Face model folder",
        )
    p.add_argument("--config", required=True, help="run config whose envs and levels to use")
    p.add_argument("--samples", "-n", type=int, default=16, help="samples per task (max 4096)")
    p.add_argument("--tasks-per-level", type=int, default=64, help="held-out tasks per level")
    p.add_argument(
        "--seed", type=int, default=4242, help="seed of the held-out tasks and of A's samples"
    )
    p.add_argument(
        "--seed-b",
        type=int,
        default=None,
        help="seed of B's samples on the same tasks (default: --seed); with two copies of one "
        "model, a different seed shows what sampling noise alone looks like",
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=None, help="default: the config's probe budget"
    )
    p.add_argument("--batch-size", type=int, default=64, help="completions generated together")
    p.add_argument("--out", default=None, help="output folder (default: <runs_dir>/compare-<time>)")
    p.add_argument(
        "--show", type=int, default=10, help="tasks printed per list (all are in compare.json)"
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="evaluate in the config's resources.eval_actors Ray actors, as `selfplay eval`",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "analyze",
        help="report on a run: verdicts, pass@k, artefacts, aha moments (report.html)",
        description="Evaluate the run's base model and its final model on the same held-out "
        "tasks, decide for each environment, level and behaviour whether the skill was "
        "elicited or newly acquired, look for metric artefacts and aha moments, and write "
        "RUN/analysis/report.html and RUN/analysis/summary.json.",
    )
    p.add_argument("run", help="run folder, or a run config (its newest finished run)")
    p.add_argument(
        "--base",
        default=None,
        help="base model folder, or an eval folder of it (default: the run config's model)",
    )
    p.add_argument("--samples", "-n", type=int, default=16, help="samples per task")
    p.add_argument("--tasks-per-level", type=int, default=64, help="held-out tasks per level")
    p.add_argument(
        "--control",
        action="append",
        default=[],
        metavar="RUN",
        help="a control run of the same config (train --control) to compare; repeatable",
    )
    p.add_argument(
        "--no-eval", action="store_true", help="skip evaluations: curves, artefacts, aha only"
    )
    p.set_defaults(func=cmd_analyze)

    from selfplay import views

    views.register(sub)

    from selfplay import convert  # light: its heavy imports are inside the command

    convert.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `selfplay` console script."""
    from selfplay.errors import DiskFull, UserError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as err:  # every bad-input error derives from it (selfplay.errors)
        print(f"selfplay {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except DiskFull as err:  # not the user's input, but as plain: one line, no traceback
        print(f"selfplay {args.command}: error: {err}", file=sys.stderr)
        return EXIT_DISK_FULL
    except KeyboardInterrupt:
        print(f"selfplay {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
