"""The run config's schema: ``RunConfig`` and its sections, one field per knob.

Values are checked in ``__post_init__`` (a ``ValueError`` naming the dotted key); what needs
the environments or TRL is checked by ``selfplay.config.load`` and ``selfplay.config.grpo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewards import check_weights, registered_rewards
from selfplay.behaviours import TAGGERS
from selfplay.config.play import SelfPlayConfig
from selfplay.config.strict import ADDED_LATER
from selfplay.curriculum import CurriculumConfig
from selfplay.dashboards import report_to_names
from selfplay.decode import SAMPLERS
from selfplay.dialogue import DialogueConfig
from selfplay.precision import PRECISIONS
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
        check_weights(self.weights, (*registered_rewards(), *TAGGERS))
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
    precision: str = field(default="fp32", metadata={ADDED_LATER: True})
    """GRPO's arithmetic: "fp32", "bf16" (TRL's ``bf16``: autocast, weights and optimizer fp32)
    or "auto" (bf16 where the hardware has it natively, ``selfplay.precision``). Generation
    stays fp32 on the CPU, where bf16 does not pay at these sizes (``benchmarks/throughput.py``).
    ``grpo.bf16`` may not contradict it."""
    sampler: str = field(default="auto", metadata={ADDED_LATER: True})
    """How the policy samples its completions without vLLM: "fast" (``selfplay.decode``'s
    sampler: the same draws as transformers' ``generate``, less overhead), "hf" (``generate``)
    or "auto" (fast wherever it applies, else ``generate``)."""
    tasks: list[str] = field(default_factory=list, metadata={ADDED_LATER: True})
    """Train on exactly these tasks, each drawn with equal chance, instead of the curriculum's:
    ids ``env/seed/level/index`` of environments in ``envs`` (any of their levels), as
    ``selfplay eval`` and the studies name them. Empty: the curriculum sets the tasks."""
    report_to: str | list[str] = field(default="tensorboard", metadata={ADDED_LATER: True})
    """The dashboards every metric, probe and completions table goes to beside
    ``metrics.jsonl``: "tensorboard" (``tensorboard/`` in the run folder), "trackio", "wandb",
    "mlflow", a list of them, or "none" (``selfplay.dashboards``). Where a run reports, not what it is:
    a resumed run may change it."""

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
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        for i, task_id in enumerate(self.tasks):
            parse_task_id(task_id, f"tasks[{i}]")
            if task_id.split("/")[0] not in self.envs:
                raise ValueError(
                    f"tasks[{i}]: {task_id!r} is a task of {task_id.split('/')[0]!r}, "
                    f"which is not in envs ({', '.join(self.envs)})"
                )
        try:
            report_to_names(self.report_to)
        except ValueError as err:
            raise ValueError(f"report_to: {err}") from None
        if self.tasks and self.selfplay.enabled:
            raise ValueError("tasks: a fixed task list and selfplay.enabled exclude each other")


def parse_task_id(task_id: Any, where: str) -> tuple[str, int, int, int]:
    """``(env, seed, level, index)`` of a task id ``env/seed/level/index``; a ValueError naming
    ``where`` for anything else (a proposed task's id cannot be rebuilt from its name)."""
    parts = task_id.split("/") if isinstance(task_id, str) else []
    if len(parts) == 4 and parts[0] and all(p.lstrip("-").isdigit() for p in parts[1:]):
        return parts[0], int(parts[1]), int(parts[2]), int(parts[3])
    raise ValueError(f"{where}: {task_id!r} is not a task id env/seed/level/index")
