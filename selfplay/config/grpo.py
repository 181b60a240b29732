"""TRL's ``GRPOConfig`` from a run config: our CPU-friendly defaults, the run's ``grpo:``
section over them, and the checks TRL does not make (a value it would take and fail on once
training has started), each a ``ConfigError`` naming the key."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from selfplay.config.run import RunConfig
from selfplay.config.strict import ConfigError, convert

GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-5,  # TRL's 1e-6 does not move a tiny model
    "num_generations": 8,
    "per_device_train_batch_size": 64,  # completions: 8 prompts x 8 generations
    "max_completion_length": 160,
    "temperature": 1.0,
    "max_steps": 100,
    "logging_steps": 1,
    "report_to": "none",  # MetricsLog reports to the run's dashboards itself, ours with TRL's
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
    # Self-play phases keep no TRL checkpoints (see phase_args below).
    if config.checkpoint.every % steps_per_generation and not config.selfplay.enabled:
        raise ConfigError(
            f"{source}: key 'checkpoint.every' ({config.checkpoint.every}) must be a multiple of "
            f"grpo.steps_per_generation ({steps_per_generation}): a checkpoint between "
            "generations would lose the buffered completions"
        )
    values.setdefault("use_cpu", not torch.cuda.is_available())
    values["bf16"] = _bf16(config, values, source)
    if values["use_cpu"] and not {"gradient_checkpointing", "activation_checkpointing"} & set(
        config.grpo
    ):
        # TRL turns it on to save GPU memory; on the CPU it only recomputes the forward pass
        # in the backward (40% of a quickstart step's backward: benchmarks/grpo_step.py).
        values["gradient_checkpointing"] = False
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


def _bf16(config: RunConfig, values: dict[str, Any], source: str) -> bool:
    """TRL's ``bf16``: ``grpo.bf16`` where a config sets it (then ``precision`` must be left at
    fp32, its default), else as ``precision`` says for the device TRL trains on."""
    from selfplay.precision import uses_bf16

    if "bf16" in config.grpo:
        if config.precision != "fp32":
            raise ConfigError(
                f"{source}: keys 'precision' ({config.precision!r}) and 'grpo.bf16' "
                f"({config.grpo['bf16']!r}) both set the arithmetic; set precision alone"
            )
        return bool(config.grpo["bf16"])
    return uses_bf16(config.precision, cuda=not values["use_cpu"])


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
    "report_to": "use the top-level 'report_to' key (it reports probes and our metrics too)",
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


def phase_args(config, run_dir: Path, source: str, role: str):
    """GRPOConfig of one phase: the run's ``grpo:`` with the phase's sizes, no TRL checkpoints."""
    play = config.selfplay
    if role == "solver":
        sizes = {"max_steps": max(1, play.solver_steps)}
    else:
        sizes = {
            "max_steps": play.challenger_steps,
            "num_generations": play.proposals_per_prompt,
            "per_device_train_batch_size": play.prompts_per_step * play.proposals_per_prompt,
            "max_completion_length": play.max_proposal_tokens,
            **play.challenger_grpo,
        }
    return grpo_config(config, run_dir / "checkpoints", source, {**sizes, "save_strategy": "no"})


# Challenger-phase options that selfplay sets from its own keys.
PHASE_KEYS = {
    "max_steps": "selfplay.challenger_steps",
    "num_generations": "selfplay.proposals_per_prompt",
    "per_device_train_batch_size": "selfplay.prompts_per_step",
    "max_completion_length": "selfplay.max_proposal_tokens",
}
