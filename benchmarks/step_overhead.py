"""What `selfplay train` adds to a GRPO step, against plain TRL on the same work.

    python benchmarks/step_overhead.py [--config configs/quickstart.yaml] [--steps 20]

Both runs use the same model (the config's organism or model), the same GRPOConfig (batch,
generations, lengths, learning rate, seed), the same prompts in the same order (tasks from
the same ProgramChallenger with the curriculum held still) and the same reward functions
from ``rewards/``. The plain run is TRL's ``GRPOTrainer`` on a fixed ``datasets.Dataset``;
the selfplay run is ``selfplay.train.train`` (challenger stream, recorder, transcripts,
behaviour tags, metrics, TensorBoard) with probes only before and after. A step is timed
from one ``on_step_end`` to the next, so it includes generation, rewards, the update and
every callback; the first ``--warmup`` steps are left out. Printed as a table and a ratio.

The two runs sample different completions (generation order and lengths diverge after the
first update), so their step times differ by more than the overhead itself. The second
table is the direct measure: the seconds the run spent in what selfplay adds (setting tasks,
recording transcripts with tags and metrics, writing metrics), timed inside the run, as a
share of its mean step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]


class StepTimer(TrainerCallback):
    """Wall time between consecutive ends of training steps."""

    def __init__(self):
        self.times: list[float] = []
        self._last: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self._last is None:
            self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now


def plain_trl(config, envs, args, model_path: str, prompts: int) -> StepTimer:
    """TRL's GRPOTrainer on a fixed dataset of the same tasks, with the same rewards."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from rewards import build_rewards
    from selfplay.config.load import build_challenger
    from selfplay.judges import make_judge
    from selfplay.models import load_model
    from selfplay.recorder import task_row

    challenger = build_challenger(config, envs)
    tasks = [challenger.propose() for _ in range(prompts)]
    dataset = Dataset.from_list([task_row(t) for t in tasks])
    funcs, weights = build_rewards(
        config.rewards.weights, make_judge(config.judge, envs), config.rewards.length_limit
    )
    args.reward_weights = weights
    model, tokenizer = load_model(model_path)
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        callbacks=[timer],
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs/quickstart.yaml"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out")
    cli = parser.parse_args()

    from rich.console import Console

    from selfplay.config import load_config
    from selfplay.config.grpo import grpo_config
    from selfplay.config.load import load_envs, resolve_model
    from selfplay.config.run import RunConfig
    from selfplay.train import train

    console = Console(quiet=True)
    total = cli.steps + cli.warmup
    raw = yaml.safe_load(Path(cli.config).read_text())
    raw.setdefault("grpo", {})["max_steps"] = total
    raw["curriculum"] = {"mode": "fixed"}  # both runs see the same tasks
    raw["probe"] = {**raw.get("probe", {}), "every": 0, "tasks_per_level": 1}
    with tempfile.TemporaryDirectory() as tmp:
        raw["runs_dir"], raw["name"] = tmp, "overhead"
        path = Path(tmp) / "overhead.yaml"
        path.write_text(yaml.safe_dump(raw))
        config = load_config(path, RunConfig)
        envs = load_envs(config, str(path))
        model_path = resolve_model(config, console)
        prompts = (
            total
            * config.grpo.get("per_device_train_batch_size", 64)
            // config.grpo.get("num_generations", 8)
        )
        args = grpo_config(config, Path(tmp) / "plain", str(path))
        plain = plain_trl(config, envs, args, model_path, prompts)
        ours = StepTimer()
        run_dir = train(path, console=console, callbacks=[ours])
        added = json.loads((run_dir / "summary.json").read_text())["added_seconds"]

    a = plain.times[cli.warmup :]
    b = ours.times[cli.warmup :]
    print(f"{'run':12s} {'steps':>5s} {'mean s/step':>12s} {'stdev':>8s}")
    for name, times in (("plain TRL", a), ("selfplay", b)):
        print(
            f"{name:12s} {len(times):5d} {statistics.mean(times):12.3f} {statistics.stdev(times):8.3f}"
        )
    ratio = statistics.mean(b) / statistics.mean(a)
    print(
        f"selfplay / plain TRL = {ratio:.3f} ({100 * (ratio - 1):+.1f}%; the runs sample different"
        " completions, so lengths and step times differ: see the direct measure below)"
    )
    print()
    print(f"{'added by selfplay':20s} {'s/step':>8s} {'share of step':>14s}")
    step = statistics.mean(ours.times)
    for part, seconds in added.items():
        print(f"{part:20s} {seconds / total:8.4f} {seconds / total / step:14.2%}")
    all_added = sum(added.values()) / total
    print(f"{'all':20s} {all_added:8.4f} {all_added / step:14.2%}")


if __name__ == "__main__":
    main()
