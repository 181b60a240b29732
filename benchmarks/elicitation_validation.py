"""Validate the elicited / newly-acquired conclusions on organisms whose pretraining we wrote.

    python benchmarks/elicitation_validation.py [--rate 0.05] [--steps 150] [--out runs/validation]

Two organisms are pretrained from ``configs/organism.yaml``, identical but for the share of
corpus traces that make a wrong step and correct it (``corpus.self_correction_rate``):
``--rate`` ("with": the behaviour is in the base model, rarely) and 0 ("without": it is not).
Both are GRPO-trained the same way (arithmetic levels 1-3 drawn uniformly, correctness and
format rewards, ``--steps`` steps; with ``--shaping W`` also a reward of W for a verified
self-correction, which makes amplification of a behaviour the base model has certain), then each base and each trained model is evaluated on the
same held-out tasks (``selfplay eval`` settings ``--samples`` and ``--tasks``), and the
conclusions of ``selfplay.analysis.conclusions`` are computed per level and pooled over levels.

Truth by construction: self-correction in the "with" organism can only be *elicited* (it is
in the corpus) or *not learned* (when training does not amplify it: under correctness alone
GRPO can suppress it); in the "without" organism it can only be *newly acquired* or *not
learned*. The table also says whether the base model measurably has the behaviour (its reach
lower bound at or above the floor, or upper bound below it), against what the corpus put in.
Every stage is reused when its output exists, so an interrupted run picks up where it was.

Measured (verified self-correction, pooled over levels; see the issue-5 closing note):
correctness only, the organism suppresses the behaviour (rate 0.3: 1.7% -> 0.3% of samples,
"not learned"; at rate 0.05 or 0.1 the organism never measurably has it). With
``--rate 0.3 --shaping 1.0`` the conclusions come out as constructed: "with" elicited
(1.8% -> 3.9%), "without" not learned (0 -> 0). About 25 minutes on a 2-core CPU with
both organisms to pretrain, a few seconds when every stage is reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {"with": {"elicited", "not learned"}, "without": {"newly acquired", "not learned"}}
"""What the construction allows; with a shaping reward amplification is certain, so "with"
must come out elicited."""


def run_config(model: Path, steps: int, out: Path, label: str, shaping: float) -> dict:
    weights = {"correct": 1.0, "format": 0.1, "clarify": 0.0, "length": 0.0}
    if shaping:
        weights["self_correction_verified"] = shaping
    return {
        "model": str(model),
        "envs": {"arithmetic": {"levels": [1, 2, 3]}},
        "curriculum": {"mode": "uniform"},
        "rewards": {"weights": weights},
        "probe": {"every": 0, "tasks_per_level": 16},
        "checkpoint": {"every": 0},
        "grpo": {
            "max_steps": steps,
            "learning_rate": 1.0e-4,
            "num_generations": 8,
            "per_device_train_batch_size": 64,
            "max_completion_length": 160,
        },
        "runs_dir": str(out),
        "name": f"train-{label}",
    }


def stage(label: str, rate: float, args, console) -> dict:
    from selfplay.analysis.conclusions import behaviour_conclusions, skill_conclusions
    from selfplay.config.load import load_envs, load_run_config
    from selfplay.evaluate import EvalSettings, evaluate, read_eval
    from selfplay.organism.pretrain import pretrain
    from selfplay.train import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    organism = yaml.safe_load((ROOT / "configs/organism.yaml").read_text())
    organism["corpus"]["self_correction_rate"] = rate
    organism_yaml = out / f"organism-{label}.yaml"
    organism_yaml.write_text(yaml.safe_dump(organism))
    timings = {}
    start = time.perf_counter()
    base_model = pretrain(organism_yaml, root=ROOT / "models", console=console)
    timings["pretrain_s"] = time.perf_counter() - start

    config_yaml = out / f"run-{label}.yaml"
    config_yaml.write_text(
        yaml.safe_dump(run_config(base_model, args.steps, out, label, args.shaping))
    )
    run_dir = out / f"train-{label}"
    start = time.perf_counter()
    if not (run_dir / "final" / "config.json").is_file():
        train(config_yaml, console=console)
    timings["train_s"] = time.perf_counter() - start

    config = load_run_config(config_yaml)
    envs = load_envs(config, str(config_yaml))
    settings = EvalSettings(samples=args.samples, tasks_per_level=args.tasks)
    frames = {}
    for side, model in (("base", base_model), ("trained", run_dir / "final")):
        folder = out / f"eval-{label}-{side}"
        start = time.perf_counter()
        if not (folder / "eval.json").is_file():
            evaluate(str(model), config, envs, settings, folder, label=side, console=console)
        timings[f"eval_{side}_s"] = time.perf_counter() - start
        frames[side] = read_eval(folder)[1]
    base, trained = frames["base"], frames["trained"]
    return {
        "rate": rate,
        "organism": str(base_model),
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "skills": skill_conclusions(base, trained),
        "behaviours": behaviour_conclusions(base, trained),  # per level, then "all" levels
    }


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from selfplay.analysis.conclusions import Thresholds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.05, help="self-correction rate, 'with'")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=32, help="held-out tasks per level")
    parser.add_argument(
        "--shaping",
        type=float,
        default=0.0,
        help="weight of a verified-self-correction shaping reward (0: correctness only)",
    )
    parser.add_argument("--out", default="runs/validation")
    parser.add_argument(
        "--only", choices=["with", "without"], default=None, help="run one organism only"
    )
    args = parser.parse_args()
    console = Console()
    results = {
        label: stage(label, rate, args, console)
        for label, rate in (("with", args.rate), ("without", 0.0))
        if args.only in (None, label)
    }
    (Path(args.out) / "validation.json").write_text(json.dumps(results, indent=1))

    allowed = {**ALLOWED, "with": {"elicited"}} if args.shaping else ALLOWED
    table = Table(title="Self-correction conclusions (verified corrections; truth by construction)")
    for column in (
        "organism",
        "level",
        "base has it",
        "base rate [90% CI]",
        "trained rate [90% CI]",
        "gain",
        "conclusion",
        "allowed",
    ):
        table.add_column(column)
    for label, result in results.items():
        rows = [v for v in result["behaviours"] if v["what"] == "self_correction"]
        for v in rows:
            b, t, g = v["base_reach"], v["trained_reach"], v["gain"]
            floor = Thresholds().behaviour_floor
            has = "yes" if b["low"] >= floor else "no" if b["high"] < floor else "unclear"
            table.add_row(
                f"{label} ({result['rate']:g})",
                str(v["level"]),
                has,
                f"{b['value']:.4f} [{b['low']:.4f}, {b['high']:.4f}]",
                f"{t['value']:.4f} [{t['low']:.4f}, {t['high']:.4f}]",
                f"{g['value']:+.4f}",
                v["conclusion"],
                "yes" if v["conclusion"] in allowed[label] else "NO",
            )
    console.print(table)
    skills = Table(title="Solve conclusions (pass@N of base vs trained)")
    for column in (
        "organism",
        "level",
        "base pass@1",
        "trained pass@1",
        "base pass@N",
        "conclusion",
    ):
        skills.add_column(column)
    for label, result in results.items():
        for v in result["skills"]:
            skills.add_row(
                label,
                str(v["level"]),
                f"{v['base_pass1']:.3f}",
                f"{v['trained_pass1']:.3f}",
                f"{v['base_reach']['value']:.3f}",
                v["conclusion"],
            )
    console.print(skills)
    for label, result in results.items():
        console.print(f"{label}: timings {result['timings']}")


if __name__ == "__main__":
    main()
