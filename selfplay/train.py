"""`selfplay train`: GRPO on tasks a Challenger sets and a Judge scores, with every completion kept.

The learner is TRL's ``GRPOTrainer``, unchanged. Where this departs from plain GRPO on a
fixed dataset:

1. The prompts are not a fixed dataset. A ``ProgramChallenger`` streams tasks whose
   environment is drawn by weight and whose difficulty the ``Curriculum`` sets; TRL reads
   the stream as an ``IterableDataset`` (no shuffle buffer, so a level change takes effect
   on the next batch).
2. Rewards are components (``rewards/``) computed from a Judge's verdicts, each logged on
   its own and combined by TRL with ``reward_weights``.
3. A ``Recorder`` sees every scored batch: it turns each completion into a transcript row
   (verdict, reward components, total, group advantage computed as TRL does, behaviour
   tags), writes the step's Parquet file, feeds the solve outcomes back to the curriculum
   and hands behaviour, length, clarify, judge and curriculum metrics to TRL's logger.
4. A held-out probe set (every level of every environment) is evaluated before training,
   every ``probe.every`` steps and at the end, greedy and sampled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfplay.config import ConfigError, convert, load_config, to_dict
from selfplay.curriculum import Curriculum, CurriculumConfig, ProgramChallenger


@dataclass
class EnvMix:
    """One environment in the training mix."""

    weight: float = 1.0
    """Relative share of tasks."""
    levels: list[int] | None = None
    """The curriculum's ladder of levels (default: all the environment's levels)."""
    start_level: int | None = None
    """Level to start at (default: the first of the ladder)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword options passed to ``load_env``."""


@dataclass
class RewardConfig:
    """Reward components and their weights (a weight of 0 leaves a component out)."""

    weights: dict[str, float] = field(
        default_factory=lambda: {"correct": 1.0, "format": 0.1, "clarify": 1.0, "length": 0.0}
    )
    """Component name -> weight: correct, format, clarify, length."""
    length_limit: int = 400
    """Reasoning characters beyond which the length component turns negative."""


@dataclass
class ProbeConfig:
    """The held-out probe set: fixed tasks at every level of every environment in the mix."""

    every: int = 25
    """Evaluate every this many steps (and before and after training); 0 only before and after."""
    tasks_per_level: int = 32
    """Tasks per environment and level."""
    seed: int = 999
    """Seed of the probe tasks (distinct from training and organism seeds)."""
    max_new_tokens: int = 192
    """Completion budget for probe generations."""


@dataclass
class RunConfig:
    """A training run."""

    envs: dict[str, EnvMix]
    """Environment name -> its place in the mix."""
    model: str = "organism"
    """"organism" (pretrain or reuse ``organism_config``), a model folder, or a hub name."""
    organism_config: str = "configs/organism.yaml"
    """The organism recipe used when ``model`` is "organism"."""
    models_dir: str = "models"
    """Where organisms are kept (as ``selfplay pretrain --models-dir``)."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    """How difficulty follows the solver."""
    judge: str = "program"
    """"program" (the environment's scorer) or "majority" (the group's majority answer)."""
    rewards: RewardConfig = field(default_factory=RewardConfig)
    """Reward components."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    """Held-out probes."""
    grpo: dict[str, Any] = field(default_factory=dict)
    """Passed to TRL's GRPOConfig over the CPU-friendly defaults below (TRL validates it)."""
    seed: int = 0
    """Seed of the challenger's tasks and of TRL."""
    runs_dir: str = "runs"
    """Where runs are written: ``<runs_dir>/<run name>``."""
    name: str = ""
    """Run name (default: the config file's stem and the start time, so reruns never clash)."""


GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-5,  # TRL's 1e-6 does not move a tiny model
    "num_generations": 8,
    "per_device_train_batch_size": 64,  # completions: 8 prompts x 8 generations
    "max_completion_length": 160,
    "temperature": 1.0,
    "max_steps": 100,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",  # MetricsLog writes TensorBoard itself, with probes and our metrics
    "shuffle_dataset": False,  # a shuffle buffer would hold tasks set at stale levels
    "bf16": False,
    "disable_tqdm": True,  # our own progress bar reports reward, accuracy and levels
}


def grpo_config(config: RunConfig, output_dir: Path, source: str):
    """TRL's GRPOConfig from our defaults and the run's ``grpo:`` section, errors naming the key."""
    import dataclasses

    import torch
    from trl import GRPOConfig

    known = {f.name: f.type for f in dataclasses.fields(GRPOConfig)}
    for key, value in config.grpo.items():
        if key not in known or key == "output_dir":
            raise ConfigError(f"{source}: key 'grpo.{key}' is not a GRPOConfig option we accept")
        # GRPOConfig does not check types itself (a string learning rate fails deep in torch):
        # check the plain ones (numbers, strings, flags, optional or listed) here.
        hint = _plain_type(known[key])
        if hint is not None:
            convert(hint, value, source, f"grpo.{key}")
    values = {**GRPO_DEFAULTS, "seed": config.seed, **config.grpo}
    values.setdefault("use_cpu", not torch.cuda.is_available())
    try:
        return GRPOConfig(output_dir=str(output_dir), **values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: key 'grpo': {err}") from None


def train(config_path: str | Path, console=None, callbacks: list | None = None) -> Path:
    """Run GRPO training for the config at ``config_path``; return the run folder.

    ``callbacks`` (TRL/transformers ``TrainerCallback``s) are added after our own, e.g. to time
    steps in ``benchmarks/step_overhead.py``.

    Everything that can be checked is checked before the run folder is created, so a bad
    config leaves nothing behind and never touches an existing run.
    """
    from rich.console import Console

    from selfplay.models import load_model

    console = console or Console()
    source = str(config_path)
    config = load_config(config_path, RunConfig)
    name = config.name or f"{Path(config_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(config.runs_dir) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{source}: run folder {run_dir} already exists (use another name)")
    envs = load_envs(config, source)
    args = grpo_config(config, run_dir / "trainer", source)
    model_path = resolve_model(config, console)
    model, tokenizer = load_model(model_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(to_dict(config), indent=2))
    return run(
        config, envs, args, (model_path, model, tokenizer), run_dir, console, callbacks or []
    )


def load_envs(config: RunConfig, source: str) -> dict:
    """The mix's environments; an unknown name or bad option is a ConfigError naming the key."""
    from envs import load_env

    envs = {}
    for name, mix in config.envs.items():
        try:
            envs[name] = load_env(name, **mix.options)
        except (KeyError, ValueError, ImportError) as err:
            raise ConfigError(f"{source}: key 'envs.{name}': {err}") from None
    return envs


def build_challenger(config: RunConfig, envs: dict) -> ProgramChallenger:
    """A ProgramChallenger over the mix, with a fresh curriculum at the start levels."""
    ladders = {n: m.levels or list(envs[n].levels) for n, m in config.envs.items()}
    starts = {n: m.start_level or ladders[n][0] for n, m in config.envs.items()}
    curriculum = Curriculum(config.curriculum, ladders, starts)
    weights = {n: m.weight for n, m in config.envs.items()}
    return ProgramChallenger(envs, weights, curriculum, seed=config.seed)


def run(
    config: RunConfig, envs: dict, args, loaded: tuple, run_dir: Path, console, callbacks: list
) -> Path:
    """The training loop proper: build the roles, probe, train, probe, report."""
    from trl import GRPOTrainer

    from rewards import build_rewards
    from selfplay.judges import make_judge
    from selfplay.recorder import MetricsLog, ProbeCallback, Recorder, probe_tasks, task_stream

    challenger = build_challenger(config, envs)
    curriculum = challenger.curriculum
    judge = make_judge(config.judge, envs)
    model_path, model, tokenizer = loaded
    funcs, weights = build_rewards(config.rewards.weights, judge, config.rewards.length_limit)
    args.reward_weights = weights

    recorder = Recorder(
        run_dir,
        run_name=run_dir.name,
        # Its own judge: the rewards' judge is shared by two components, so its stats() would
        # count each batch twice; this one sees each batch once and logs judge/* from it.
        judge=make_judge(config.judge, envs),
        curriculum=curriculum,
        tokenizer=tokenizer,
        names=[f.__name__ for f in funcs],
        weights=weights,
        scale_rewards=args.scale_rewards,
        num_generations=args.num_generations,
    )
    probes = probe_tasks(envs, config.probe)
    metrics = MetricsLog(run_dir / "metrics.jsonl", console, total_steps=args.max_steps)
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[recorder.wrap(f) for f in funcs],
        args=args,
        train_dataset=task_stream(challenger),
        callbacks=[
            ProbeCallback(probes, envs, tokenizer, config.probe, metrics),
            metrics,
            *callbacks,
        ],
    )
    # Our MetricsLog prints a compact line per step; TRL's printer would dump the raw dict.
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    console.print(
        f"Training {model_path} on {', '.join(envs)} for {args.max_steps} steps -> {run_dir}"
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.save_model(str(run_dir / "final"))
    summary = {
        "train_seconds": round(seconds, 1),
        "steps": trainer.state.global_step,
        "transcript_rows": recorder.writer.rows_written,
        "transcript_bytes": recorder.writer.bytes_written,
        "curriculum": curriculum.state_dict(),
        "probes": metrics.probes,
        # What this project adds to TRL's loop, in seconds over the whole run (probes apart).
        "added_seconds": {
            "challenger": round(challenger.seconds, 3),
            "recorder": round(recorder.seconds, 3),
            "metrics": round(metrics.seconds, 3),
        },
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    from selfplay.report import before_after_table, peak_memory

    console.print(before_after_table(metrics.probes, recorder.tag_history))
    console.print(
        f"Done in {seconds:.0f}s; {recorder.writer.rows_written} transcript rows "
        f"({_per_row(recorder.writer)} bytes/row) in {run_dir / 'transcripts'}; {peak_memory()}"
    )
    return run_dir


def _plain_type(hint: Any) -> Any:
    """``hint`` as a type when it is built only from int, float, bool, str, None and list."""
    import typing

    if isinstance(hint, str):  # a postponed annotation
        hint = {"int": int, "float": float, "bool": bool, "str": str}.get(hint)
    plain = (int, float, bool, str, type(None))
    parts = typing.get_args(hint) or (hint,)
    if typing.get_origin(hint) is list:
        return hint if all(a in plain for a in parts) else None
    return hint if hint is not None and all(a in plain for a in parts) else None


def resolve_model(config: RunConfig, console) -> str:
    """The model path: the organism (trained or reused) or the configured folder or name."""
    if config.model != "organism":
        return config.model
    from selfplay.organism.pretrain import pretrain

    return str(pretrain(config.organism_config, root=config.models_dir, console=console))


def _per_row(writer) -> str:
    return f"{writer.bytes_written / writer.rows_written:.0f}" if writer.rows_written else "n/a"
