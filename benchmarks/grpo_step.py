"""Where a GRPO step's time goes, old settings beside new, in one process.

    python benchmarks/grpo_step.py [--config configs/quickstart.yaml] [--steps 30]
        [--settings before now now+bf16]

Each setting runs ``selfplay train`` on the config (its organism, batch, lengths and seed; the
curriculum held still so every setting sees the same tasks, probes off) for ``--steps`` steps
after ``--warmup`` steps, and the step is split into:

- **generation**: TRL's ``_generate`` (our rollout function where the fast sampler is on);
- **scoring**: TRL's ``_calculate_rewards`` (the Judge, the reward components, the recorder:
  transcripts, behaviour tags, curriculum updates);
- **batch prep**: the rest of ``_generate_and_score_completions`` (tokens to tensors, the old
  policy's log-probabilities where TRL needs them, advantages);
- **loss forward**, **backward** (``compute_loss``; ``accelerator.backward``);
- **optimizer** (between the ``on_pre_optimizer_step`` and ``on_optimizer_step`` callbacks);
- **rest**: the step's wall time less all of the above (the challenger's tasks, the data
  loader, logging, our metrics and callbacks).

Settings (``SETTINGS``): ``before`` is a step as it was before issue 18 (HF ``generate``,
TRL's gradient checkpointing, fp32); ``now`` today's defaults (the fast sampler where it
applies, which draws the same tokens in fp32, so ``before`` and ``now`` do the same work;
no gradient checkpointing on the CPU); ``+bf16`` adds ``precision: bf16`` (TRL's autocast;
weights and optimizer fp32), which changes the arithmetic and so the samples; ``+compile``
TRL's ``torch_compile``. The bf16 and fp32 matmul limits measured in the same run are printed
under the table. Timings on 2 cores are noisy and a second job slows every row: read the
ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {
    "before": {"sampler": "hf", "grpo": {"gradient_checkpointing": True}},
    "now": {},
    "now+bf16": {"precision": "bf16"},
    "now+compile": {"grpo": {"torch_compile": True}},
}
"""Each setting's run config over the benchmarked one's: ``before`` is a GRPO step as it was
before issue 18 (HF generate, TRL's gradient checkpointing, fp32); ``now`` today's defaults
(the fast sampler where it applies, no gradient checkpointing on the CPU, fp32)."""

PARTS = ("generation", "scoring", "batch prep", "loss forward", "backward", "optimizer", "rest")


class Clock(TrainerCallback):
    """Step wall times and the optimizer's share, from the trainer's callbacks."""

    def __init__(self, seconds: dict):
        self.seconds = seconds
        self.steps: list[float] = []
        self._last: float | None = None
        self._opt: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self._last is None:
            self._last = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._opt = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.seconds["optimizer"] += time.perf_counter() - self._opt

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.steps.append(now - self._last)
        self._last = now
        self.seconds["steps"].append(dict(self.seconds))


def instrument(seconds: dict) -> None:
    """Time TRL's generation, scoring, batch preparation, loss and backward into ``seconds``."""
    from accelerate import Accelerator
    from trl import GRPOTrainer

    def timed(owner, name: str, part: str):
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    timed(GRPOTrainer, "_generate", "generation")
    timed(GRPOTrainer, "_calculate_rewards", "scoring")
    timed(GRPOTrainer, "_generate_and_score_completions", "prepare")
    timed(GRPOTrainer, "compute_loss", "loss forward")
    timed(Accelerator, "backward", "backward")


def run(config: dict, setting: str, steps: int, warmup: int, seconds: dict) -> dict:
    """Train ``steps + warmup`` steps with ``setting``; mean seconds per step of each part."""
    from rich.console import Console

    from selfplay.train import train

    raw = json.loads(json.dumps(config))
    extra = SETTINGS[setting]
    raw.update({k: v for k, v in extra.items() if k != "grpo"})
    raw["grpo"] = {**raw.get("grpo", {}), **extra.get("grpo", {}), "max_steps": steps + warmup}
    raw["curriculum"] = {"mode": "fixed"}
    raw["probe"] = {**raw.get("probe", {}), "every": 0, "tasks_per_level": 1}
    raw["checkpoint"] = {"every": 0}
    seconds.clear()
    seconds.update({p: 0.0 for p in (*PARTS, "prepare")})
    seconds["steps"] = []
    clock = Clock(seconds)
    with tempfile.TemporaryDirectory() as tmp:
        raw["runs_dir"], raw["name"] = tmp, setting
        path = Path(tmp) / "step.yaml"
        path.write_text(yaml.safe_dump(raw))
        run_dir = train(path, console=Console(quiet=True), callbacks=[clock])
        logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lengths = [m for m in logged if "completions/mean_length" in m][warmup:]
    marks = seconds["steps"]
    start = marks[warmup - 1] if warmup else {p: 0.0 for p in seconds if p != "steps"}
    end = marks[-1]
    n = len(marks) - warmup
    out = {p: (end[p] - start[p]) / n for p in (*PARTS, "prepare")}
    out["batch prep"] = out.pop("prepare") - out["generation"] - out["scoring"]
    out["step"] = statistics.mean(clock.steps[warmup:])
    out["rest"] = out["step"] - sum(out[p] for p in PARTS if p != "rest")
    for key in ("mean_length", "max_length"):
        out[key] = statistics.mean(m[f"completions/{key}"] for m in lengths)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs/quickstart.yaml"))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out")
    parser.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), default=["before", "now", "now+bf16"]
    )
    cli = parser.parse_args()
    if cli.warmup < 1:
        parser.error("--warmup must be at least 1")

    import torch
    from rich.console import Console
    from rich.table import Table

    from selfplay.precision import native_bf16

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import matmul_limit

    console = Console()
    console.print(
        native_bf16()[1], f"; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    limits = {"fp32": matmul_limit(torch.float32), "bf16": matmul_limit(torch.bfloat16)}
    config = yaml.safe_load(Path(cli.config).read_text())
    seconds: dict = defaultdict(float)
    instrument(seconds)
    results = {s: run(config, s, cli.steps, cli.warmup, seconds) for s in cli.settings}

    table = Table(title=f"GRPO step of {Path(cli.config).name}, s/step over {cli.steps} steps")
    table.add_column("part")
    for setting in cli.settings:
        table.add_column(setting, justify="right")
    for part in (*PARTS, "step"):
        table.add_row(part, *(f"{results[s][part]:.3f}" for s in cli.settings))
    base = results[cli.settings[0]]["step"]
    table.add_row(
        f"speed-up vs {cli.settings[0]}",
        *(f"{base / results[s]['step']:.2f}x" for s in cli.settings),
    )
    for key in ("mean_length", "max_length"):
        table.add_row(
            f"completion tokens, {key.split('_')[0]}",
            *(f"{results[s][key]:.1f}" for s in cli.settings),
        )
    console.print(table)
    console.print(
        f"matmul limit (2048², same run): fp32 {limits['fp32']:.0f} GFLOP/s, "
        f"bf16 {limits['bf16']:.0f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
