"""The argument parser of `selfplay`: one small function per subcommand; options that several
subcommands share come from one parent parser each, so they are spelt (and documented) once."""

from __future__ import annotations

import argparse

from selfplay import convert
from selfplay.cli import commands, views

MODEL_HELP = (
    "'organism' (the config's), a run folder (its final/), a checkpoint folder, "
    "or any Hugging Face model folder"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="selfplay",
        description="Self-play curricula and GRPO for studying how reasoning emerges.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("envs", help="list environments with a sample task each")
    p.set_defaults(func=commands.cmd_envs)
    _add_pretrain(sub)
    _add_train(sub)
    _add_launch(sub)
    _add_sample(sub)
    _add_eval(sub)
    _add_compare(sub)
    _add_analyze(sub)
    _add_study(sub)
    views.register(sub)
    _add_export(sub)
    convert.register(sub)  # light: its heavy imports are inside the command
    return parser


def _resume(what: str, metavar: str = "RUN_DIR") -> argparse.ArgumentParser:
    """``--resume [RUN_DIR]`` (train, launch; ``STUDY_DIR`` for study)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar=metavar,
        help=what,
    )
    return parent


def _ray_address(what: str) -> argparse.ArgumentParser:
    """``--ray-address ADDRESS`` (launch, eval, compare, study)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--ray-address", default=None, metavar="ADDRESS", help=what)
    return parent


def _eval_options(ray_help: str) -> argparse.ArgumentParser:
    """The held-out tasks and sampling of an evaluation (eval and compare)."""
    parent = argparse.ArgumentParser(add_help=False, parents=[_ray_address(ray_help)])
    parent.add_argument("--config", required=True, help="run config whose envs and levels to use")
    parent.add_argument("--samples", "-n", type=int, default=16, help="samples per task (max 4096)")
    parent.add_argument("--tasks-per-level", type=int, default=64, help="held-out tasks per level")
    parent.add_argument(
        "--max-new-tokens", type=int, default=None, help="default: the config's probe budget"
    )
    return parent


def _add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="train (or reuse) the base-model organism of a config")
    p.add_argument("config", help="organism config, e.g. configs/organism.yaml")
    p.add_argument(
        "--models-dir", default="models", help="where organisms are kept (default: models)"
    )
    p.add_argument("--force", action="store_true", help="retrain even if this config was trained")
    p.set_defaults(func=commands.cmd_pretrain)


def _add_train(sub) -> None:
    resume = _resume(
        "continue a killed run from its last checkpoint: RUN_DIR, or by default the newest "
        "unfinished run of CONFIG (the run named by its name: key when set)"
    )
    p = sub.add_parser(
        "train",
        parents=[resume],
        help="GRPO-train a model on tasks a Challenger sets and a Judge scores",
        description="GRPO through TRL on tasks a Challenger sets and a Judge scores. With "
        "'selfplay: {enabled: true}' in the config the Challenger is a model trained too: "
        "Challenger and Solver phases alternate (configs/selfplay_organism.yaml).",
    )
    p.add_argument(
        "config", help="run config, e.g. configs/quickstart.yaml or configs/selfplay_organism.yaml"
    )
    p.add_argument(
        "--control",
        choices=["random", "format_only"],
        default=None,
        help="a control run of the same config: rewards replaced by a coin flip (random) or by "
        "the format component alone (format_only); compare with `selfplay analyze --control`",
    )
    p.add_argument(
        "--report-to",
        metavar="NAMES",
        default=None,
        help="dashboards, over the config's report_to: tensorboard, trackio, wandb, mlflow, "
        "several joined by commas, or none (the `track`, `wandb` and `mlflow` extras)",
    )
    p.set_defaults(func=commands.cmd_train)


def _add_launch(sub) -> None:
    resume = _resume("continue a killed run from its last checkpoint, as `selfplay train --resume`")
    ray = _ray_address(
        "host:port of a running cluster, 'auto' (the cluster this machine belongs to) or "
        "'local' (start Ray on this machine); omitted: train in this process"
    )
    p = sub.add_parser(
        "launch",
        parents=[resume, ray],
        help="the same training run on a Ray cluster: data-parallel workers, judge actors",
        description="Train CONFIG on Ray: resources.workers training workers (Ray Train's "
        "TorchTrainer; TRL under Accelerate, data parallel), judges in resources.judge_actors "
        "actors. Without --ray-address it is `selfplay train CONFIG`. The runs_dir must be on "
        "storage every node sees.",
    )
    p.add_argument("config", help="run config with a resources: section (defaults apply)")
    p.set_defaults(func=commands.cmd_launch)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="sample a model on an environment and score the completions")
    p.add_argument("model", help="organism folder, local Hugging Face folder or hub name")
    p.add_argument("--env", default="arithmetic", help="environment name (see `selfplay envs`)")
    p.add_argument("--level", type=int, default=None, help="difficulty level (default: easiest)")
    p.add_argument("-n", type=int, default=4, help="number of tasks")
    p.add_argument("--temperature", type=float, default=1.0, help="0 for greedy")
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--seed", type=int, default=1234, help="task seed")
    p.set_defaults(func=commands.cmd_sample)


def _add_eval(sub) -> None:
    options = _eval_options(
        "evaluate in the config's resources.eval_actors Ray actors, a level at a time "
        "(host:port, 'auto' or 'local'); the same rows as one process"
    )
    p = sub.add_parser(
        "eval",
        parents=[options],
        help="sample a model N times per held-out task of a config; pass@k per env and level",
        description="Complete every held-out task (each environment and level of CONFIG's mix) "
        "once greedily and N times at temperature 1, write the completions as eval transcripts "
        "(role eval) with eval.json, and print pass@k with bootstrap intervals. Equal settings "
        "draw equal tasks, so a base and a trained model can be compared.",
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--seed", type=int, default=4242, help="seed of the held-out tasks")
    p.add_argument("--out", default=None, help="output folder (default: evals/<model>-n<N>)")
    p.set_defaults(func=commands.cmd_eval)


def _add_compare(sub) -> None:
    options = _eval_options(
        "evaluate in the config's resources.eval_actors Ray actors, as `selfplay eval`"
    )
    p = sub.add_parser(
        "compare",
        parents=[options],
        help="compare two models on the same held-out tasks: pass@1 per level, changed tasks",
        description="Evaluate MODEL_A and MODEL_B as `selfplay eval` does, on the same "
        "held-out tasks of CONFIG, then print per environment and level pass@1 of each, B-A "
        "with a paired bootstrap interval (simultaneous over levels) and whether it is "
        "significant, and the tasks B solves significantly more or less often (Fisher's exact "
        "test per task, Holm-corrected). Writes compare.json and both evals to --out.",
    )
    for name in ("model_a", "model_b"):
        p.add_argument(name, metavar=name.upper(), help=MODEL_HELP)
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
    p.add_argument("--batch-size", type=int, default=64, help="completions generated together")
    p.add_argument("--out", default=None, help="output folder (default: <runs_dir>/compare-<time>)")
    p.add_argument(
        "--show", type=int, default=10, help="tasks printed per list (all are in compare.json)"
    )
    p.set_defaults(func=commands.cmd_compare)


def _add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="report on a run: conclusions, pass@k, artefacts, aha moments (report.html)",
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
    p.set_defaults(func=commands.cmd_analyze)


def _add_study(sub) -> None:
    from selfplay.studies.kinds import KINDS

    measures = "; ".join(f"{k}: {', '.join(m.MEASURES)}" for k, m in KINDS.items())
    resume = _resume(
        "finish a killed study, rerunning only the arm runs without a result: STUDY_DIR, "
        "or by default the newest study of this config",
        metavar="STUDY_DIR",
    )
    ray = _ray_address(
        "run the arm runs as parallel Ray tasks: host:port, 'auto' or 'local' (start "
        "Ray on this machine); omitted: one after another in this process"
    )
    p = sub.add_parser(
        "study",
        parents=[resume, ray],
        help="reproduce a published claim: arms x seeds, a rule fixed in advance (study.html)",
        description="Run every arm of the study config at every seed (one after another, or "
        "as parallel Ray tasks with --ray-address), summarise each measure over seeds with a "
        "95% t interval, apply the config's rule and write study.json and study.html under "
        "<studies_dir>/<name>-<time>/: the claim and its source, the measures, the conclusion "
        "(replicated, not replicated or inconclusive) and the smallest effect each condition "
        f"could have detected. Measures per kind: {measures}.",
    )
    p.add_argument("config", help="study config, e.g. configs/studies/grokking.yaml")
    p.add_argument(
        "--quick",
        action="store_true",
        help="toy sizes (the config's quick: section): checks the machinery in minutes, not "
        "the claim",
    )
    p.set_defaults(func=commands.cmd_study)


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a run as a Hugging Face dataset folder (transcripts, metrics, evals)",
        description="Write RUN's transcripts, metrics and eval rows to DIR as a Hugging Face "
        "dataset: Parquet files under DIR/data/<config>/ and a dataset card, README.md, whose "
        "header declares the configs transcripts (the default), metrics and evals (when the "
        "run has them) and whose text gives the run's config, model, counts and the meaning "
        "of each column. datasets.load_dataset(DIR) reads it, load_dataset(DIR, 'metrics') "
        "the metrics. DIR is built beside itself and renamed into place when whole; the run "
        "folder is only read.",
    )
    p.add_argument("run", metavar="RUN", help="run folder (the one holding transcripts/)")
    p.add_argument("dir", metavar="DIR", help="dataset folder to write: new, or empty")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace DIR when it exists and is not empty (once the new folder is whole)",
    )
    p.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="then upload DIR to the Hub dataset repo REPO (created if missing; needs a token, "
        "e.g. from `hf auth login`); if the upload fails, DIR stays written",
    )
    p.set_defaults(func=commands.cmd_export)
