"""A real tiny GRPO run, with an eval of its base, for the tests that read a run folder
(``--sql``, ``selfplay export``): ``tiny_grpo_run`` in conftest makes it once per session."""

import shutil
from pathlib import Path

STEPS, PROMPTS, GENERATIONS = 3, 2, 4

RUN = """
name: {name}
model: {model}
envs:
  arithmetic: {{weight: 1, levels: [1, 2]}}
  modular: {{weight: 1, levels: [1]}}
curriculum: {{window: 4}}
rewards:
  weights: {{correct: 1.0, format: 0.5, clarify: 0.0, length: 1.0}}
  length_limit: 4
probe: {{every: {probe_every}, tasks_per_level: 2, max_new_tokens: 16}}
checkpoint: {{every: {checkpoint_every}, keep: 2}}
runs_dir: {runs}
{more}
grpo:
  max_steps: {steps}
  num_generations: {generations}
  per_device_train_batch_size: {batch}
  max_completion_length: 24
  learning_rate: 0.001
"""


def run_config(name: str, model, runs: Path, steps: int = STEPS, **more) -> str:
    """``RUN`` for ``PROMPTS`` tasks x ``GENERATIONS`` completions a step; ``more`` may set
    ``probe_every``, ``checkpoint_every`` (0: none) and ``more`` (top-level YAML lines)."""
    values = {"probe_every": 2, "checkpoint_every": 0, "more": "", **more}
    return RUN.format(
        name=name,
        model=model,
        runs=runs,
        steps=steps,
        generations=GENERATIONS,
        batch=PROMPTS * GENERATIONS,
        **values,
    )


def tiny_run(tiny, root: Path, name: str) -> Path:
    """A GRPO run of ``STEPS`` steps on the tiny organism, with an eval of its base model
    where `selfplay analyze` keeps one (``analysis/eval-base``)."""
    from selfplay.evaluate import evaluate_model
    from selfplay.train import train

    config = root / f"{name}.yaml"
    config.write_text(run_config(name, tiny[1], root))
    run = train(config)
    out = run / "analysis" / "eval-base"
    evaluate_model(tiny[1], config, out, samples=2, tasks_per_level=1, max_new_tokens=16)
    return run


def damaged_copy(run: Path, folder: Path) -> Path:
    """``run`` with its last step's transcript garbled and a torn last line of metrics."""
    copy = folder / "damaged"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "final", "tensorboard"))
    (copy / "transcripts" / f"solver-step-{STEPS - 1:06d}.parquet").write_bytes(b"not parquet")
    with (copy / "metrics.jsonl").open("a") as f:
        f.write('{"step": 9, "lo')
    return copy


SELFPLAY_RUN = """
name: {name}
model: {model}
runs_dir: {runs}
envs:
  arithmetic: {{weight: 1, levels: [1, 2]}}
rewards: {{weights: {{correct: 1.0, format: 0.5}}}}
probe: {{tasks_per_level: 2, max_new_tokens: 16}}
selfplay:
  enabled: true
  mode: {mode}
  iterations: 2
  challenger_steps: 2
  solver_steps: {solver_steps}
  prompts_per_step: 2
  proposals_per_prompt: 4
  attempts: 4
  keep_band: [0.0, 1.0]
grpo:
  num_generations: 4
  per_device_train_batch_size: 8
  max_completion_length: 24
  learning_rate: 0.002
"""


def write_run(root, model, name="sp", mode="shared", solver_steps=2, extra=""):
    """A self-play run config (2 iterations of 2 Challenger and ``solver_steps`` Solver steps)
    on the tiny Challenger organism, written to ``root/<name>.yaml``."""
    path = root / f"{name}.yaml"
    text = SELFPLAY_RUN.format(
        name=name, model=model, runs=root, mode=mode, solver_steps=solver_steps
    )
    path.write_text(text + extra)
    return path
