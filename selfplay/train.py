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

import contextlib
import errno
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfplay.config import ConfigError, convert, load_config, to_dict
from selfplay.curriculum import Curriculum, CurriculumConfig, ProgramChallenger
from selfplay.dialogue import DialogueConfig
from selfplay.errors import DiskFull
from selfplay.play import SelfPlayConfig
from selfplay.resources import ResourcesConfig


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
    """Component name -> weight: correct, format, clarify, length, random, calibration; or a
    behaviour tag of ``selfplay.behaviours.TAGGERS`` (self_correction_verified, ...) as a
    shaping reward."""
    length_limit: int = 400
    """Reasoning characters beyond which the length component turns negative."""
    control: str = ""
    """A control run, to compare against in ``selfplay analyze --control``: "random" (one
    component, 1 or 0 with even odds, replaces all others), "format_only" (the format
    component alone); empty for none."""

    def __post_init__(self) -> None:
        from rewards import COMPONENTS
        from selfplay.behaviours import TAGGERS

        known = (*COMPONENTS, *TAGGERS)
        unknown = sorted(set(self.weights) - set(known))
        if unknown:
            raise ValueError(
                f"rewards.weights: unknown component {unknown[0]!r} (known: {', '.join(known)})"
            )
        if not any(self.weights.values()):
            raise ValueError(f"rewards.weights: every weight is zero or missing: {self.weights}")
        if self.control not in CONTROLS:
            raise ValueError(
                f"rewards.control must be one of {sorted(CONTROLS)} (or empty), got {self.control!r}"
            )
        if self.length_limit < 1 and self.weights.get("length"):
            raise ValueError(
                f"rewards.length_limit must be at least 1 when the length component is "
                f"weighted, got {self.length_limit}"
            )

    def effective_weights(self) -> dict[str, float]:
        """The weights training uses: the configured ones, or the control's."""
        return CONTROLS[self.control] or self.weights


CONTROLS: dict[str, dict[str, float]] = {
    "": {},
    "random": {"random": 1.0},
    "format_only": {"format": 1.0},
}


@dataclass
class ModelJudgeConfig:
    """The model Judge of ``judge: model`` (``selfplay.judges.ModelJudge``)."""

    model: str = "organism"
    """"organism" (pretrain or reuse ``organism_config``, a verifier recipe), "policy" (the
    model being trained judges, under the judge prompt), or a model folder or hub name."""
    organism_config: str = "configs/verifier.yaml"
    """The verifier organism's recipe, used when ``model`` is "organism"."""
    rubric: str = ""
    """What the Judge is asked about every answer; empty: the environment's rubric, else
    "Is the candidate answer correct?"."""
    agreement_floor: float = 0.8
    """Warn (and log ``judge/below_floor``) when agreement with ground truth falls below this."""
    think_tokens: int = 0
    """Tokens the Judge may reason for (greedy, up to its ``</think>``) before its verdict; 0:
    the verdict straight after the prompt. The verifier organism is taught to reason first."""
    batch_size: int = 32
    """Judge prompts per forward pass."""
    cache_size: int = 100_000
    """Verdicts kept, by hash of (rubric, task, answer) and the judge's weights."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.agreement_floor <= 1.0:
            raise ValueError(
                f"model_judge.agreement_floor must be in [0, 1], got {self.agreement_floor}"
            )
        if self.batch_size < 1:
            raise ValueError(f"model_judge.batch_size must be at least 1, got {self.batch_size}")
        if self.think_tokens < 0:
            raise ValueError(f"model_judge.think_tokens must be 0 or more, got {self.think_tokens}")
        if self.cache_size < 0:
            raise ValueError(f"model_judge.cache_size must be 0 or more, got {self.cache_size}")


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

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError(f"probe.every must be 0 or more, got {self.every}")
        for name in ("tasks_per_level", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"probe.{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class CheckpointConfig:
    """Checkpoints to resume a killed run from (``selfplay train CONFIG --resume``)."""

    every: int = 50
    """Write one every this many steps (0: never; a killed run then restarts from step 0).
    Self-play writes one after every iteration instead, unless this is 0."""
    keep: int = 2
    """Complete checkpoints kept; older ones are removed once a newer one is complete."""

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError(f"checkpoint.every must be 0 or more, got {self.every}")
        if self.keep < 1:
            raise ValueError(f"checkpoint.keep must be at least 1, got {self.keep}")


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
    """"program" (the environment's scorer), "majority" (the group's majority answer) or
    "model" (a language model's yes/no verdict; see ``model_judge``)."""
    model_judge: ModelJudgeConfig = field(default_factory=ModelJudgeConfig)
    """The model Judge, when ``judge`` is "model"."""
    rewards: RewardConfig = field(default_factory=RewardConfig)
    """Reward components."""
    selfplay: SelfPlayConfig = field(default_factory=SelfPlayConfig)
    """Self-play: a model Challenger writes the tasks (``selfplay.play``); off by default."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    """Held-out probes."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoints for ``--resume``."""
    system_prompt: str = ""
    """A system message before every task (training and probes), e.g. stating the completion
    format to a hub model that was never taught it; empty for none (the organism)."""
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    """Clarifying questions as a dialogue: environments answer an ``<ask>`` mid-rollout."""
    grpo: dict[str, Any] = field(default_factory=dict)
    """Passed to TRL's GRPOConfig over the CPU-friendly defaults below (TRL validates it)."""
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    """Ray resources of ``selfplay launch CONFIG --ray-address ...``; unused by ``selfplay train``."""
    seed: int = 0
    """Seed of the challenger's tasks and of TRL."""
    runs_dir: str = "runs"
    """Where runs are written: ``<runs_dir>/<run name>``."""
    name: str = ""
    """Run name (default: the config file's stem and the start time, so reruns never clash)."""

    def __post_init__(self) -> None:
        if not self.envs:
            raise ValueError("envs is empty: name at least one environment")
        for name, mix in self.envs.items():
            if mix.weight < 0:
                raise ValueError(f"envs.{name}.weight must be 0 or more, got {mix.weight}")
            if mix.levels is None:
                continue
            if not mix.levels:
                raise ValueError(
                    f"envs.{name}.levels is empty (leave it out for all the environment's levels)"
                )
            if len(set(mix.levels)) != len(mix.levels):
                raise ValueError(f"envs.{name}.levels names a level twice: {mix.levels}")
        if not any(mix.weight for mix in self.envs.values()):
            raise ValueError("envs: every weight is zero, so no task can be drawn")
        if not 0 <= self.seed < 2**32:
            # TRL seeds numpy with it, which takes only these; it would fail as training starts.
            raise ValueError(f"seed must be between 0 and 2**32 - 1, got {self.seed}")
        if not self.model:
            raise ValueError('model is empty: name "organism", a model folder or a hub name')
        if not self.runs_dir:
            raise ValueError("runs_dir is empty: name the folder runs are written under")
        if self.name and (Path(self.name).name != self.name or self.name in (".", "..")):
            raise ValueError(f"name must be a folder name (no '/'), got {self.name!r}")


GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-5,  # TRL's 1e-6 does not move a tiny model
    "num_generations": 8,
    "per_device_train_batch_size": 64,  # completions: 8 prompts x 8 generations
    "max_completion_length": 160,
    "temperature": 1.0,
    "max_steps": 100,
    "logging_steps": 1,
    "report_to": "none",  # MetricsLog writes TensorBoard itself, with probes and our metrics
    "shuffle_dataset": False,  # a shuffle buffer would hold tasks set at stale levels
    "bf16": False,
    "disable_tqdm": True,  # our own progress bar reports reward, accuracy and levels
}


def grpo_config(config: RunConfig, output_dir: Path, source: str, phase: dict | None = None):
    """TRL's GRPOConfig from our defaults and the run's ``grpo:`` section, errors naming the key.

    ``phase``: options set last, over the run's (a self-play phase's sizes, checked already).
    """
    import torch
    from trl import GRPOConfig

    check_grpo_options(config.grpo, source, "grpo")
    values = {
        **GRPO_DEFAULTS,
        "seed": config.seed,
        **config.grpo,
        **_checkpointing(config),
        **(phase or {}),
    }
    steps_per_generation = values.get("steps_per_generation") or values.get(
        "gradient_accumulation_steps", 1
    )
    # Self-play phases keep no TRL checkpoints (see selfplay.play.phase_args).
    if config.checkpoint.every % steps_per_generation and not config.selfplay.enabled:
        raise ConfigError(
            f"{source}: key 'checkpoint.every' ({config.checkpoint.every}) must be a multiple of "
            f"grpo.steps_per_generation ({steps_per_generation}): a checkpoint between "
            "generations would lose the buffered completions"
        )
    values.setdefault("use_cpu", not torch.cuda.is_available())
    if values.get("sync_ref_model") and not values.get("beta"):
        # TRL's trainer refuses this, once the model is loaded and the run folder exists.
        raise ConfigError(
            f"{source}: key 'grpo.sync_ref_model': there is no reference model to sync "
            "while grpo.beta is 0; set grpo.beta above 0 or sync_ref_model to false"
        )
    try:
        with warnings.catch_warnings():
            # TRL's own default (gradient_checkpointing) trips transformers' rename warning,
            # which would print before every run and every one-line config error.
            warnings.filterwarnings("ignore", "`gradient_checkpointing", FutureWarning)
            return GRPOConfig(output_dir=str(output_dir), **values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: key 'grpo': {err}") from None


def check_grpo_options(options: dict[str, Any], source: str, key: str) -> None:
    """A ConfigError naming ``<key>.<option>`` for an option we set ourselves, one GRPOConfig
    does not have, a plain value of the wrong type, or a value out of ``GRPO_VALUES``' range."""
    import dataclasses

    from trl import GRPOConfig

    known = {f.name: f.type for f in dataclasses.fields(GRPOConfig)}
    for name, value in options.items():
        if name in _OURS:
            raise ConfigError(f"{source}: key '{key}.{name}' is set by selfplay; {_OURS[name]}")
        if name not in known:
            raise ConfigError(f"{source}: key '{key}.{name}' is not a GRPOConfig option we accept")
        # GRPOConfig does not check types itself (a string learning rate fails deep in torch):
        # check the plain ones (numbers, strings, flags, optional or listed) here.
        hint = _plain_type(known[name])
        if hint is not None:
            value = convert(hint, value, source, f"{key}.{name}")
        if name in GRPO_VALUES:
            fits, wanted = GRPO_VALUES[name]
            if not fits(value):
                raise ConfigError(f"{source}: key '{key}.{name}' must be {wanted}, got {value!r}")


def _at_least(low: float) -> tuple:
    return (lambda v: v is not None and v >= low, f"at least {low}")


def _above(low: float) -> tuple:
    return (lambda v: v is not None and v > low, f"above {low}")


def _within(low: float, high: float, none: bool = False) -> tuple:
    return (
        lambda v: (none and v is None) or (v is not None and low <= v <= high),
        f"between {low} and {high}" + (" (or null)" if none else ""),
    )


def _one_of(*choices: str) -> tuple:
    return (lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


GRPO_VALUES: dict[str, tuple] = {
    # GRPOConfig takes these unchecked; out of range, a run fails (or does nothing) only once
    # training has started, or the first time the value is used.
    "max_steps": _at_least(1),  # a task stream has no length: max_steps is the run's length
    "learning_rate": _at_least(0),
    "max_completion_length": _at_least(1),
    "temperature": _above(0),  # TRL divides the logits by it; sampling needs it above 0
    "top_p": (lambda v: 0 < v <= 1, "above 0 and at most 1"),
    "top_k": _at_least(0),
    "min_p": _within(0, 1, none=True),
    "repetition_penalty": _above(0),
    "beta": _at_least(0),
    "epsilon": _at_least(0),
    "epsilon_high": (lambda v: v is None or v >= 0, "at least 0 (or null)"),
    "num_generations": _at_least(2),  # GRPO's advantage compares completions of one prompt
    "num_iterations": _at_least(1),
    "per_device_train_batch_size": _at_least(1),
    "gradient_accumulation_steps": _at_least(1),
    "steps_per_generation": (lambda v: v is None or v >= 1, "at least 1 (or null)"),
    "generation_batch_size": (lambda v: v is None or v >= 1, "at least 1 (or null)"),
    "logging_steps": _above(0),
    "warmup_steps": _at_least(0),
    "weight_decay": _at_least(0),
    "max_grad_norm": _at_least(0),
    "adam_beta1": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "adam_beta2": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "adam_epsilon": _at_least(0),
    "top_entropy_quantile": _within(0, 1),
    "seed": _within(0, 2**32 - 1),  # numpy's seed range
    "data_seed": _within(0, 2**32 - 1, none=True),
    # TRL reads these strings only in the loss, at the first step.
    "loss_type": _one_of("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo"),
    "scale_rewards": _one_of("group", "batch", "none"),
    "importance_sampling_level": _one_of("token", "sequence"),
    "multi_objective_aggregation": _one_of("sum_then_normalize", "normalize_then_sum"),
    "vllm_mode": _one_of("colocate", "server"),
}
"""GRPOConfig option -> (test of its value, what it must be, for the error)."""


# GRPOConfig options selfplay sets itself, and where to set them instead.
_OURS = {
    "output_dir": "runs go to <runs_dir>/<name>",
    "save_strategy": "use the 'checkpoint:' section",
    "save_steps": "use 'checkpoint.every'",
    "save_total_limit": "use 'checkpoint.keep'",
    "save_only_model": "checkpoints must hold the optimizer to resume",
    "ignore_data_skip": "resuming restores the challenger instead of skipping batches",
    "resume_from_checkpoint": "use `selfplay train CONFIG --resume`",
}


def _checkpointing(config: RunConfig) -> dict[str, Any]:
    every = config.checkpoint.every
    return {
        "save_strategy": "steps" if every else "no",
        "save_steps": every or 500,
        # Pruning waits for our commit mark (selfplay.checkpoints.Checkpointer), not TRL's.
        "save_total_limit": None,
        "save_only_model": False,
        # The task stream is not replayable data: resuming restores the challenger's counter
        # and the curriculum rather than drawing and dropping the batches already trained on.
        "ignore_data_skip": True,
    }


@dataclass
class Prepared:
    """A run checked and ready to train: everything ``train`` and ``launch`` share."""

    config: RunConfig
    source: str
    run_dir: Path
    envs: dict
    args: Any
    """TRL's GRPOConfig."""
    model_path: str
    loaded: tuple | None
    """(model, tokenizer) when ``prepare`` was asked to load them."""
    judge_path: str = ""
    """The model Judge's folder or name ("policy": the trained model); empty without one."""


def prepare(
    config_path: str | Path,
    console,
    resume: bool | str | Path = False,
    control: str = "",
    load: bool = True,
    check=None,
) -> Prepared:
    """Check the config, find or name the run folder, resolve the model (pretraining the
    organism if needed), load it (``load``; else only check that its config loads) and
    create the run folder (unless resuming). ``check(prepared)``: more checks, run last,
    before the folder is created.

    Everything that can be checked is checked before anything is written, so a bad config
    leaves nothing behind and never touches an existing run.
    """
    source = str(config_path)
    config = load_config(config_path, RunConfig)
    if control:
        try:
            config.rewards = RewardConfig(**{**to_dict(config.rewards), "control": control})
        except ValueError as err:
            raise ConfigError(f"--control: {err}") from None
    stored = to_dict(config)
    if resume:
        run_dir = _run_to_resume(config, Path(config_path), stored, resume, console)
        check_writable(run_dir, source, "--resume")
    else:
        check_writable(Path(config.runs_dir), source, "runs_dir")
        stem = Path(config_path).stem + (f"-{control}" if control else "")
        name = config.name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(config.runs_dir) / name
        check_writable(run_dir, source, "name")
        if run_dir.exists() and any(run_dir.iterdir()):
            _check_same_config(run_dir, stored, source)
            raise ConfigError(
                f"{source}: run folder {run_dir} already exists "
                "(continue it with --resume, or set another name)"
            )
    envs = load_envs(config, source)
    args = grpo_config(config, run_dir / "checkpoints", source)
    if config.selfplay.enabled:
        from selfplay import play

        play.check(config, envs, source)
        play.phase_args(config, run_dir, source, "challenger")  # its errors, before any write
    if config.dialogue.enabled:
        _check_dialogue(config, envs, args, source)
    _check_judge(config, source)
    model_path = resolve_model(config, console)
    judge_path = resolve_judge_model(config, model_path, console)
    memory_preflight(config, args, model_path, source, console)
    if load:
        from selfplay.models import load_model

        loaded = load_model(model_path)
    else:
        from selfplay.models import load_model_config

        load_model_config(model_path)
        loaded = None
    ready = Prepared(config, source, run_dir, envs, args, model_path, loaded, judge_path)
    if check is not None:
        check(ready)
    if not resume:
        with disk_full_is_one_line(run_dir, "free some space and start the run again"):
            _create_run_dir(run_dir, stored)
    return ready


def check_writable(folder: Path, source: str, key: str) -> None:
    """A ConfigError naming ``key`` when ``folder`` (created later if missing) could not be
    written: it is a file, it lies under a file, or the nearest folder that exists is read-only."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        raise ConfigError(f"{source}: key '{key}': {folder} is a file, not a folder")
    if not existing.is_dir():
        raise ConfigError(f"{source}: key '{key}': {folder} is under {existing}, a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is" if existing == folder else f"would be made in {existing}, which is"
        raise ConfigError(f"{source}: key '{key}': {folder} {what} not writable")


def memory_preflight(config: RunConfig, args, model_path: str, source: str, console) -> None:
    """On a CUDA GPU: estimate the run's GPU memory (``selfplay.preflight``) and print it, or
    stop with a ConfigError naming the largest terms and a setting that fits, before anything
    is written or loaded. Without a GPU there is nothing to check."""
    from selfplay.preflight import PreflightError, check, format_estimate, gpu_total_memory

    total = gpu_total_memory()
    if total is None:
        return
    from selfplay.models import load_model_config

    try:
        estimate = check(
            load_model_config(model_path),
            args,
            total,
            prompt_length=_prompt_length(config, model_path),
        )
    except PreflightError as err:
        raise ConfigError(f"{source}: {err}") from None
    console.print(format_estimate(estimate))


def _prompt_length(config: RunConfig, model_path: str) -> int:
    """Tokens of the longest prompt among a few tasks at every level of the mix, as the
    trainer will see it (chat template and system prompt included)."""
    from transformers import AutoTokenizer

    from selfplay.generation import chat_prompts

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    envs = load_envs(config, "")
    tasks = [
        envs[name].task(config.seed, i, level)
        for name, levels in mix_levels(config, envs).items()
        for level in levels
        for i in range(4)
    ]
    texts = chat_prompts(tokenizer, tasks, config.system_prompt)
    return max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def train(
    config_path: str | Path,
    console=None,
    callbacks: list | None = None,
    resume: bool | str | Path = False,
    control: str = "",
    rollout_func=None,
) -> Path:
    """Run GRPO training for the config at ``config_path``; return the run folder.

    ``control``: "random" or "format_only" sets ``rewards.control`` over the config's, for a
    control run of the same config (named ``<stem>-<control>-<time>``).

    ``resume``: True continues the newest unfinished run of this config (the run named by
    ``name:`` when it is set), a path continues that run folder; either way from its last
    complete checkpoint (see ``selfplay.checkpoints``), and the run's stored config must equal
    this one. ``callbacks`` (TRL/transformers ``TrainerCallback``s) are added after our own,
    e.g. to time steps in ``benchmarks/step_overhead.py``. ``rollout_func``: TRL's rollout
    function in place of generation (tests script completions with it).

    Everything that can be checked is checked before anything is written, so a bad config
    leaves nothing behind and never touches an existing run.
    """
    from rich.console import Console

    console = console or Console()
    ready = prepare(config_path, console, resume, control)
    model, tokenizer = ready.loaded
    then = (
        "free some space, then continue from the last complete checkpoint with "
        f"`selfplay train {ready.source} --resume {ready.run_dir}`"
    )
    with disk_full_is_one_line(ready.run_dir, then):
        if ready.config.selfplay.enabled:
            from selfplay import play

            return play.run_selfplay(
                ready.config,
                ready.envs,
                (ready.model_path, model, tokenizer),
                ready.run_dir,
                console,
                ready.source,
                callbacks,
                resume=bool(resume),
            )
        return run(
            ready.config,
            ready.envs,
            ready.args,
            (ready.model_path, model, tokenizer),
            ready.run_dir,
            console,
            callbacks or [],
            resume=bool(resume),
            rollout_func=rollout_func,
            judge_path=ready.judge_path,
        )


LOW_SPACE = 1 << 30
"""Bytes free below which torch's bare write errors are taken to mean a full disk."""
_TORCH_WRITE_FAILED = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")
"""What torch's checkpoint writer says when a write comes up short, with no errno."""


@contextlib.contextmanager
def disk_full_is_one_line(run_dir: Path, then: str) -> Iterator[None]:
    """Turn an error that a full disk caused, inside, into a ``DiskFull`` naming the path and
    the space left, then saying ``then`` (what to do); any other error passes unchanged.

    A full disk shows as ENOSPC from Python, pyarrow or safetensors, but torch's checkpoint
    writer says only ``unexpected pos N vs M`` or ``PytorchStreamWriter failed ...``: that is
    taken for a full disk when under ``LOW_SPACE`` is left where the run writes.
    """
    try:
        yield
    except Exception as err:
        message = disk_full_message(err, run_dir)
        if message is None:
            raise
        raise DiskFull(f"{message}; {then}") from err


def disk_full_message(err: BaseException, run_dir: Path) -> str | None:
    """``<path>: the disk is full (<free> free): <what failed>`` when ``err`` or an error it
    arose from is a write that failed for want of space; None otherwise."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    free = _free_bytes(run_dir)
    for e in chain:
        full = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
        if full or "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            where = getattr(e, "filename", None) or run_dir
            return f"{where}: the disk is full ({_size(free)} free): {_first_line(e)}"
    torch_failed = [e for e in chain if any(m in str(e) for m in _TORCH_WRITE_FAILED)]
    if torch_failed and free is not None and free < LOW_SPACE:
        return f"{run_dir}: the disk is full ({_size(free)} free): {_first_line(torch_failed[0])}"
    return None


def _free_bytes(path: Path) -> int | None:
    """Bytes free to this user on the disk holding ``path`` (or its nearest existing parent)."""
    import shutil

    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown space"
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.1f} GiB"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _check_judge(config: RunConfig, source: str) -> None:
    """A ConfigError for an unknown judge, or a model judge where it cannot run yet."""
    from selfplay.judges import JUDGE_NAMES

    if config.judge not in JUDGE_NAMES:
        raise ConfigError(
            f"{source}: key 'judge': unknown judge {config.judge!r} "
            f"(choose one of: {', '.join(JUDGE_NAMES)})"
        )
    if config.judge == "model" and (config.selfplay.enabled or config.dialogue.enabled):
        key = "selfplay" if config.selfplay.enabled else "dialogue"
        raise ConfigError(
            f"{source}: key 'judge': the model judge does not support {key} yet; "
            "use judge: program or majority there"
        )


def resolve_judge_model(config: RunConfig, model_path: str, console) -> str:
    """The model Judge's folder or name (the verifier organism trained or reused, a folder, or
    "policy"); empty when the run has no model judge. Its config is checked to load."""
    if config.judge != "model":
        return ""
    spec = config.model_judge
    if spec.model == "policy":
        return "policy"
    if spec.model != "organism":
        from selfplay.models import load_model_config

        load_model_config(spec.model)
        return spec.model
    from selfplay.organism.pretrain import pretrain

    return str(pretrain(spec.organism_config, root=config.models_dir, console=console))


def _check_dialogue(config: RunConfig, envs: dict, args, source: str) -> None:
    from selfplay.dialogue import answering_envs

    try:
        if not answering_envs(envs, config.dialogue):
            raise ValueError(f"none of the environments ({', '.join(envs)}) answers questions")
    except ValueError as err:
        raise ConfigError(f"{source}: key 'dialogue': {err}") from None
    if args.use_vllm:
        raise ConfigError(
            f"{source}: key 'dialogue.enabled': dialogues generate with the trainer's model; "
            "set grpo.use_vllm to false"
        )


def _create_run_dir(run_dir: Path, stored: dict) -> None:
    """The run folder with its config.json, created whole (built aside, then renamed; an
    existing ``run_dir`` here is an empty folder the user made)."""
    from selfplay.checkpoints import build_dir_atomic

    def fill(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "config.json").write_text(json.dumps(stored, indent=2))

    build_dir_atomic(run_dir, fill)


def _check_same_config(run_dir: Path, stored: dict, source: str) -> None:
    """A ConfigError naming the keys where ``run_dir``'s config differs from ``stored``."""
    try:
        before = stored_config(run_dir)
    except ValueError as err:
        raise ConfigError(f"{source}: {run_dir} is not a selfplay run: {err}") from None
    keys = _run_differences(before, stored)
    if keys:
        raise ConfigError(
            f"{source}: run folder {run_dir} holds a different config "
            f"(differs at {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}); nothing changed"
        )


def _run_differences(before: dict, now: dict) -> list[str]:
    """Keys at which a run's stored config and a config differ, ``resources`` aside: they
    say where a run trains (a resumed run may move to another cluster), not what it is."""
    return _differences(
        {k: v for k, v in before.items() if k != "resources"},
        {k: v for k, v in now.items() if k != "resources"},
    )


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            k
            for key in sorted(set(a) | set(b), key=str)
            for k in _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        ]
    return [] if a == b else [prefix.rstrip(".") or "(root)"]


def stored_config(run_dir: Path) -> dict:
    """The plain config a run stored in its ``config.json``; a ValueError naming the file when
    it is missing, unreadable or not a JSON mapping (a disk or a copy can damage it)."""
    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except OSError as err:
        raise ValueError(f"{path} cannot be read: {err.strerror}") from None
    except ValueError as err:  # JSONDecodeError or UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not valid JSON: not a mapping but a {type(data).__name__}")
    return data


def _run_to_resume(
    config: RunConfig, path: Path, stored: dict, resume: bool | str | Path, console=None
) -> Path:
    """The run folder ``--resume`` continues, checked to hold this config and be unfinished.

    Looking for the newest unfinished run of this config, a sibling run whose ``config.json``
    is damaged is skipped with a warning: it cannot be this config's run, and must not stop
    the search. The run resumed itself must have a readable one (a ConfigError names it).
    """
    source = str(path)
    root = Path(config.runs_dir)
    if resume is not True:
        run_dir = Path(resume)
    elif config.name:
        run_dir = root / config.name
    else:
        # Unnamed runs are <config stem>-<start time>: the newest one with this config.
        candidates = sorted(root.glob(f"{path.stem}-*"), reverse=True)
        matching = []
        for p in candidates:
            if not (p / "config.json").exists() or (p / "summary.json").exists():
                continue
            try:
                before = stored_config(p)
            except ValueError as err:
                if console is not None:
                    console.print(
                        f"warning: not resuming {p}: {err}",
                        style="yellow",
                        markup=False,
                        soft_wrap=True,
                    )
                continue
            if not _run_differences(before, stored):
                matching.append(p)
        if not matching:
            raise ConfigError(f"{source}: no unfinished run of this config under {root} to resume")
        run_dir = matching[0]
    if not run_dir.is_dir():
        raise ConfigError(f"{source}: --resume: run folder {run_dir} does not exist")
    _check_same_config(run_dir, stored, source)
    if (run_dir / "summary.json").exists():
        raise ConfigError(f"{source}: run {run_dir} already finished; nothing to resume")
    return run_dir


def load_run_config(path: str | Path) -> RunConfig:
    """A run config from a YAML file, or from a run folder (its stored ``config.json``)."""
    path = Path(path)
    if path.is_dir():
        stored = path / "config.json"
        if not stored.is_file():
            raise ConfigError(f"{path}: a folder but not a run (no config.json)")
        from selfplay.config import from_dict

        try:
            data = stored_config(path)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return from_dict(RunConfig, data, source=str(stored))
    return load_config(path, RunConfig)


def load_envs(config: RunConfig, source: str, equip=None) -> dict:
    """The mix's environments; an unknown name, a bad option or a level (``levels``,
    ``start_level``) that is not the environment's is a ConfigError naming the key.

    ``equip(env)`` gives the environments that run programs their executor: by default this
    process's shared sandbox (``selfplay.sandbox.equip``).
    """
    from envs import load_env

    if equip is None:
        from selfplay.sandbox import equip

    envs = {}
    for name, mix in config.envs.items():
        try:
            env = load_env(name, **mix.options)
        except (KeyError, ValueError, ImportError) as err:
            raise ConfigError(f"{source}: key 'envs.{name}': {err}") from None
        _check_ladder(name, mix, list(env.levels), source)
        envs[name] = equip(env)
    return envs


def _check_ladder(name: str, mix: EnvMix, levels: list[int], source: str) -> None:
    """A ConfigError for a ladder the environment cannot set tasks on, found now rather than
    when the curriculum first reaches the bad level (hours into a run)."""
    ladder = mix.levels if mix.levels is not None else levels
    for level in ladder:
        if level not in levels:
            raise ConfigError(
                f"{source}: key 'envs.{name}.levels': level {level} is not one of "
                f"{name}'s levels {levels}"
            )
    if ladder != sorted(ladder, key=levels.index):
        # The curriculum moves one rung up the ladder when the solver does well.
        raise ConfigError(
            f"{source}: key 'envs.{name}.levels': {ladder} must go from easiest to hardest, "
            f"in the order of {name}'s levels {levels}"
        )
    if mix.start_level is not None and mix.start_level not in ladder:
        raise ConfigError(
            f"{source}: key 'envs.{name}.start_level': {mix.start_level} is not on the "
            f"ladder {ladder}"
        )


def mix_levels(config: RunConfig, envs: dict) -> dict[str, list[int]]:
    """Each environment's levels in the mix: its ``levels`` ladder, or all the env has."""
    return {
        n: m.levels if m.levels is not None else list(envs[n].levels)
        for n, m in config.envs.items()
    }


def build_challenger(config: RunConfig, envs: dict) -> ProgramChallenger:
    """A ProgramChallenger over the mix, with a fresh curriculum at the start levels."""
    ladders = mix_levels(config, envs)
    starts = {
        n: m.start_level if m.start_level is not None else ladders[n][0]
        for n, m in config.envs.items()
    }
    curriculum = Curriculum(config.curriculum, ladders, starts)
    weights = {n: m.weight for n, m in config.envs.items()}
    return ProgramChallenger(envs, weights, curriculum, seed=config.seed)


def run(
    config: RunConfig,
    envs: dict,
    args,
    loaded: tuple,
    run_dir: Path,
    console,
    callbacks: list,
    resume: bool = False,
    rollout_func=None,
    make_judge=None,
    judge_path: str = "",
) -> Path:
    """The training loop proper: build the roles, probe, train, probe, report.

    In a launched run (``selfplay.launch``) every training worker runs this; the first one
    (world rank 0) writes the transcripts, metrics, checkpoints' state, ``final/`` and the
    summary, and runs the probes. ``make_judge(name, envs)``: where judges come from (judge
    actors in a launched run; ``selfplay.judges.make_judge`` by default). ``judge_path``: the
    model Judge of ``judge: model`` (see ``resolve_judge_model``).
    """
    from trl import GRPOTrainer

    from envs import task_to_json
    from rewards import build_rewards
    from selfplay.behaviours import TAGGERS
    from selfplay.checkpoints import Checkpointer, latest_checkpoint
    from selfplay.recorder import MetricsLog, ProbeCallback, Recorder, probe_tasks, task_stream

    if make_judge is None:
        from selfplay.judges import make_judge
    main = _is_main_process()
    challenger = build_challenger(config, envs)
    curriculum = challenger.curriculum
    model_path, model, tokenizer = loaded
    if config.judge == "model":
        from selfplay.verifier import model_judges

        # Two judges over one model and cache: the second judges the batch from the cache.
        judge, record_judge = model_judges(config, envs, judge_path, (model, tokenizer), console)
    else:
        judge, record_judge = make_judge(config.judge, envs), make_judge(config.judge, envs)
    funcs, weights = build_rewards(
        config.rewards.effective_weights(), judge, config.rewards.length_limit, TAGGERS
    )
    args.reward_weights = weights

    recorder = Recorder(
        run_dir,
        run_name=run_dir.name,
        # Its own judge: the rewards' judge is shared by two components, so its stats() would
        # count each batch twice; this one sees each batch once and logs judge/* from it.
        judge=record_judge,
        truth=envs if config.judge != "program" else None,
        curriculum=curriculum,
        tokenizer=tokenizer,
        names=[f.__name__ for f in funcs],
        weights=weights,
        scale_rewards=args.scale_rewards,
        num_generations=args.num_generations,
    )
    probes = probe_tasks(envs, config.probe)
    metrics = MetricsLog(run_dir / "metrics.jsonl", console, total_steps=args.max_steps)
    checkpoint = latest_checkpoint(run_dir / "checkpoints") if resume else None
    earlier_seconds = 0.0
    if resume:
        earlier_seconds = _restore(
            run_dir, checkpoint, challenger, recorder, metrics, console, rewind_files=main
        )
    start = time.perf_counter()

    def state(step: int) -> dict:
        """What a resume needs beyond TRL's checkpoint; see selfplay.checkpoints."""
        return {
            "step": step,
            "train_seconds": earlier_seconds + time.perf_counter() - start,
            "challenger": {
                "index": challenger.index,
                "seconds": challenger.seconds,
                # Drawn by the data loader's read-ahead but not trained on: a resumed run
                # hands these out first, as the unbroken run trains on them next.
                "untrained": [
                    [i, task_to_json(t)] for i, t in challenger.untrained(recorder.next_draw)
                ],
            },
            "curriculum": curriculum.state_dict(),
            "transcripts": {
                "rows_written": recorder.writer.rows_written,
                "bytes_written": recorder.writer.bytes_written,
                "next_step": step,
            },
            "recorder": {"seconds": recorder.seconds},
            "metrics": {"lines": metrics.lines, "seconds": metrics.seconds},
            "probes": metrics.probes,
        }

    if config.dialogue.enabled:
        from selfplay.dialogue import make_rollout_func

        rollout_func = make_rollout_func(
            envs, tokenizer, config.dialogue, chat_template_kwargs=args.chat_template_kwargs
        )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[recorder.wrap(f) for f in funcs],
        args=args,
        train_dataset=task_stream(
            challenger, carry_task=config.dialogue.enabled, system=config.system_prompt
        ),
        rollout_func=rollout_func,
        callbacks=[
            # A resumed run has its probe at the checkpoint's step already (when one was due).
            ProbeCallback(
                probes,
                envs,
                tokenizer,
                config.probe,
                metrics,
                at_start=not checkpoint,
                system=config.system_prompt,
            ),
            metrics,
            Checkpointer(state, keep=config.checkpoint.keep),
            *callbacks,
        ],
    )
    # Our MetricsLog prints a compact line per step; TRL's printer would dump the raw dict.
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    console.print(
        f"Training {model_path} on {', '.join(envs)} for {args.max_steps} steps -> {run_dir}"
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = earlier_seconds + time.perf_counter() - start
    if not main:
        trainer.accelerator.wait_for_everyone()
        return run_dir
    _save_final(trainer, run_dir / "final")
    trainer.accelerator.wait_for_everyone()
    finish(
        run_dir,
        console,
        seconds=seconds,
        steps=trainer.state.global_step,
        recorder=recorder,
        metrics=metrics,
        added={"challenger": challenger.seconds},
        curriculum=curriculum.state_dict(),
    )
    return run_dir


def finish(
    run_dir: Path, console, *, seconds: float, steps: int, recorder, metrics, added, **more
) -> None:
    """Write ``summary.json`` (with ``more``'s parts) and print the probes and the totals.

    ``added``: seconds this project spent beside the recorder and the metrics, by part.
    """
    from selfplay.checkpoints import write_json_atomic
    from selfplay.report import before_after_table, peak_memory

    summary = {
        "train_seconds": round(seconds, 1),
        "steps": steps,
        "transcript_rows": recorder.writer.rows_written,
        "transcript_bytes": recorder.writer.bytes_written,
        **more,
        "probes": metrics.probes,
        # What this project adds to TRL's loop, in seconds over the whole run (probes apart).
        "added_seconds": {
            **{part: round(s, 3) for part, s in added.items()},
            "recorder": round(recorder.seconds, 3),
            "metrics": round(metrics.seconds, 3),
        },
    }
    write_json_atomic(run_dir / "summary.json", summary)
    console.print(before_after_table(metrics.probes, recorder.tag_history))
    console.print(
        f"Done in {seconds:.0f}s; {recorder.writer.rows_written} transcript rows "
        f"({_per_row(recorder.writer)} bytes/row) in {run_dir / 'transcripts'}; {peak_memory()}"
    )


def _restore(
    run_dir: Path, checkpoint, challenger, recorder, metrics, console, rewind_files=True
) -> float:
    """Put a resumed run back at ``checkpoint`` (None: at step 0); return its seconds so far.

    ``rewind_files``: undo what the killed run wrote after it (one process of a launched
    run does this; every process restores its own state).
    """
    from envs import task_from_json
    from selfplay.checkpoints import load_state, rewind, step_history

    if checkpoint is None:
        undone = rewind(run_dir, 0, 0) if rewind_files else {"transcripts_discarded": 0}
        console.print(
            f"No complete checkpoint in {run_dir}: starting it again from step 0 "
            f"({undone['transcripts_discarded']} transcript files moved to discarded/)"
        )
        metrics.purge_step = 0
        return 0.0
    state = load_state(checkpoint)
    undone = (
        rewind(run_dir, state["step"], state["metrics"]["lines"])
        if rewind_files
        else {"transcripts_discarded": 0, "metrics_lines_cut": 0}
    )
    challenger.index = state["challenger"]["index"]
    challenger.replay.extend(
        (i, task_from_json(t)) for i, t in state["challenger"].get("untrained", [])
    )
    recorder.next_draw = challenger.replay[0][0] if challenger.replay else challenger.index
    challenger.seconds = state["challenger"]["seconds"]
    challenger.curriculum.load_state_dict(state["curriculum"])
    recorder.writer.rows_written = state["transcripts"]["rows_written"]
    recorder.writer.bytes_written = state["transcripts"]["bytes_written"]
    recorder.seconds = state["recorder"]["seconds"]
    recorder.tag_history = step_history(metrics.path)
    metrics.lines = state["metrics"]["lines"]
    metrics.seconds = state["metrics"]["seconds"]
    metrics.probes = state["probes"]
    metrics.purge_step = state["step"] + 1
    console.print(
        f"Resuming {run_dir} from {checkpoint.name}: {undone['transcripts_discarded']} transcript "
        f"files of later steps moved to discarded/, {undone['metrics_lines_cut']} metrics lines cut"
    )
    return state["train_seconds"]


def _save_final(trainer, final: Path) -> None:
    """The trained model in ``final/``, written aside and renamed into place (replacing one left
    by a run killed between saving it and writing summary.json)."""
    from selfplay.checkpoints import build_dir_atomic

    build_dir_atomic(final, lambda tmp: trainer.save_model(str(tmp)))


def _is_main_process() -> bool:
    """Whether this is the process that writes the run (world rank 0; the only one outside
    a launched run)."""
    from selfplay.recorder import world

    return world()[0] == 0


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
