"""Whole pipeline: the default organism, then the quickstart's GRPO run (slow: minutes each)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selfplay.organism.accuracy import summary

ROOT = Path(__file__).parents[1]


def selfplay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "selfplay.cli", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.mark.slow
def test_default_organism_lands_where_rl_has_room(models):
    result = selfplay("pretrain", str(ROOT / "configs/organism.yaml"), "--models-dir", str(models))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mean" in result.stdout and "heldout" in result.stdout  # the accuracy table
    (folder,) = models.glob("organism-*")
    rows = json.loads((folder / "organism.json").read_text())["eval"]
    train, heldout = summary(rows, "train"), summary(rows, "heldout")
    print(json.dumps({"train": train, "heldout": heldout}))
    assert 0.30 <= train["greedy"] <= 0.80, train
    assert train["sampled"] >= 0.10, train
    assert heldout["greedy"] <= 0.10, heldout


@pytest.mark.slow
def test_quickstart_training_run(models, tmp_path):
    config = yaml.safe_load((ROOT / "configs/quickstart.yaml").read_text())
    config.update(models_dir=str(models), runs_dir=str(tmp_path), name="quickstart")
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(config))
    result = selfplay("train", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Held-out probes" in result.stdout
    assert "peak memory (RSS)" in result.stdout
    run = tmp_path / "quickstart"
    done = json.loads((run / "summary.json").read_text())
    steps, batch = config["grpo"]["max_steps"], config["grpo"]["per_device_train_batch_size"]
    assert done["transcript_rows"] == steps * batch
    probes = done["probes"]
    first, last = min(p["step"] for p in probes), max(p["step"] for p in probes)

    def mean(step):
        chosen = [p["sampled"] for p in probes if p["step"] == step]
        return sum(chosen) / len(chosen)

    print(json.dumps({"sampled_before": mean(first), "sampled_after": mean(last)}))
    assert mean(last) > mean(first), "held-out sampled accuracy must rise"
    # make quickstart ends with the analysis: report, summary and the conclusion table
    result = selfplay("analyze", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Elicited or newly acquired" in result.stdout
    assert "report: " in result.stdout
    summary_json = json.loads((run / "analysis" / "summary.json").read_text())
    print(json.dumps(summary_json["conclusion_counts"]))
    assert (run / "analysis" / "report.html").stat().st_size > 10_000
    assert {v["what"] for v in summary_json["conclusions"]} >= {"solve", "self_correction"}
