"""Whole pipeline: the default organism lands where RL has room (slow: a few minutes)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from selfplay.organism.report import summary

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_default_organism_lands_where_rl_has_room(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfplay.cli",
            "pretrain",
            str(ROOT / "configs/organism.yaml"),
            "--models-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mean" in result.stdout and "heldout" in result.stdout  # the accuracy table
    (folder,) = tmp_path.glob("organism-*")
    rows = json.loads((folder / "organism.json").read_text())["eval"]
    train, heldout = summary(rows, "train"), summary(rows, "heldout")
    print(json.dumps({"train": train, "heldout": heldout}))
    assert 0.30 <= train["greedy"] <= 0.80, train
    assert train["sampled"] >= 0.10, train
    assert heldout["greedy"] <= 0.10, heldout
