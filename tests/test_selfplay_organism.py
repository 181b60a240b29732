"""Whole pipeline: the self-play organism, then configs/selfplay_organism.yaml (slow: minutes)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_selfplay_organism_recipe(tmp_path):
    config = yaml.safe_load((ROOT / "configs/selfplay_organism.yaml").read_text())
    config.update(
        organism_config=str(ROOT / config["organism_config"]),
        models_dir=str(tmp_path / "models"),
        runs_dir=str(tmp_path),
        name="selfplay",
    )
    path = tmp_path / "selfplay.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "selfplay"
    done = json.loads((run / "summary.json").read_text())
    play = config["selfplay"]
    assert done["steps"] == play["iterations"] * (play["challenger_steps"] + play["solver_steps"])
    steps = done["selfplay"]["challenger_steps"]
    assert len(steps) == play["iterations"] * play["challenger_steps"]
    # The organism learnt to propose in pretraining: most of what it writes is a valid task
    # of a level it was taught, and the Solver neither always nor never solves them.
    valid = sum(s["valid_rate"] for s in steps) / len(steps)
    solved = sum(s["solve_rate_mean"] for s in steps) / len(steps)
    print(json.dumps({"valid_rate": valid, "solve_rate": solved, "seconds": done["train_seconds"]}))
    assert valid >= 0.5, valid
    assert 0.1 <= solved <= 0.9, solved
    assert not any(i.get("solver_skipped") for i in done["selfplay"]["iterations"])
    probes = {p["step"] for p in done["probes"]}
    assert len(probes) == play["iterations"] + 1
