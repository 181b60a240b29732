"""The `selfplay` command line. Heavy libraries are imported inside each subcommand."""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


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
    """GRPO training: Challenger, Judge, curriculum, transcripts, probes."""
    from selfplay.train import train

    train(args.config, resume=args.resume)


def cmd_sample(args: argparse.Namespace) -> None:
    """Sample completions of a model on an environment's tasks and print their verdicts."""
    from envs import load_env
    from selfplay.generation import attempt
    from selfplay.models import load_model

    env = load_env(args.env)
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
        "train", help="GRPO-train a model on tasks a Challenger sets and a Judge scores"
    )
    p.add_argument("config", help="run config, e.g. configs/quickstart.yaml")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue a killed run from its last checkpoint: RUN_DIR, or by default the newest "
        "unfinished run of CONFIG (the run named by its name: key when set)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="sample a model on an environment and score the completions")
    p.add_argument("model", help="organism folder, local Hugging Face folder or hub name")
    p.add_argument("--env", default="arithmetic", help="environment name (see `selfplay envs`)")
    p.add_argument("--level", type=int, default=None, help="difficulty level (default: easiest)")
    p.add_argument("-n", type=int, default=4, help="number of tasks")
    p.add_argument("--temperature", type=float, default=1.0, help="0 for greedy")
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--seed", type=int, default=1234, help="task seed")
    p.set_defaults(func=cmd_sample)

    from selfplay import convert  # light: its heavy imports are inside the command

    convert.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `selfplay` console script."""
    from envs import UnknownEnvironment
    from selfplay.config import ConfigError

    args = build_parser().parse_args(argv)
    user_errors: tuple[type[BaseException], ...] = (UsageError, ConfigError, UnknownEnvironment)
    try:
        from selfplay.models import ModelNotFound

        user_errors += (ModelNotFound,)
        args.func(args)
    except user_errors as err:
        print(f"selfplay {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"selfplay {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
