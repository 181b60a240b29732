"""`selfplay compare`: two copies of one model differ by nothing (one seed) or by noise alone
(two seeds), and neither is called significant; planted changes are found exactly; bad input
is one line with exit status 2."""

import io
import json
import shutil
from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from selfplay.cli import main
from selfplay.compare import (
    compare,
    compare_counts,
    fisher_exact,
    holm,
    print_comparison,
    smallest_fisher_p,
)
from selfplay.config.load import load_envs, load_run_config
from selfplay.evaluate import EvalSettings, read_eval

# Modular arithmetic with small moduli: a tiny organism trained briefly solves some of it
# some of the time, so its samples carry real noise (a model that never solves anything
# would make "noise is not significant" pass trivially).
ORGANISM = """
name: comparable
corpus:
  envs:
    modular: {levels: [1, 2]}
model: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, max_positions: 160}
train: {steps: 300, batch_size: 8, seq_len: 64, warmup_steps: 5, learning_rate: 0.01, seed: 3}
eval: {tasks_per_level: 4, max_new_tokens: 24}
"""

RUN = """
model: {model}
runs_dir: {runs}
envs:
  modular: {{weight: 1, levels: [1, 2]}}
probe: {{max_new_tokens: 24}}
"""

SETTINGS = EvalSettings(samples=8, tasks_per_level=16, max_new_tokens=24)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """(run config path, model A, model B): one organism copied to two folders on disk."""
    from selfplay.organism.pretrain import pretrain

    root = tmp_path_factory.mktemp("compare")
    (root / "organism.yaml").write_text(ORGANISM)
    organism = pretrain(root / "organism.yaml", root=root / "models")
    a, b = root / "a", root / "b"
    shutil.copytree(organism, a)
    shutil.copytree(organism, b)
    config = root / "run.yaml"
    config.write_text(RUN.format(model=a, runs=root / "runs"))
    return config, a, b


@pytest.fixture(scope="module")
def scrambled(twins, tmp_path_factory):
    """A copy of the organism with every weight redrawn at random: it never answers."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("scrambled") / "model"
    shutil.copytree(twins[1], folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    return folder


def _compare(twins, out, seed_b=None):
    config_path, a, b = twins
    config = load_run_config(config_path)
    envs = load_envs(config, str(config_path))
    return compare(str(a), str(b), config, envs, SETTINGS, out, seed_b=seed_b)


def _nothing_significant(result):
    assert [row["significant"] for row in result["levels"]] == [False, False]
    assert result["improved"] == [] and result["regressed"] == []
    assert all(row["improved"] == row["regressed"] == 0 for row in result["levels"])


def test_two_copies_with_one_seed_are_identical_and_nothing_is_significant(twins, tmp_path):
    result = _compare(twins, tmp_path / "same")
    _nothing_significant(result)
    for row in result["levels"]:
        assert row["pass_at_1_a"] == row["pass_at_1_b"]
        assert row["difference"] == {"value": 0.0, "low": 0.0, "high": 0.0}
        assert row["tasks"] == 16 and row["samples_a"] == row["samples_b"] == 8
    assert any(row["pass_at_1_a"]["value"] > 0 for row in result["levels"])

    _, rows_a = read_eval(tmp_path / "same" / "eval-a")
    _, rows_b = read_eval(tmp_path / "same" / "eval-b")
    assert len(rows_a) == 2 * 16 * (1 + 8)
    keys = ["task_id", "sample", "completion", "verdict_score"]
    pd.testing.assert_frame_equal(rows_a[keys], rows_b[keys])
    stored = json.loads((tmp_path / "same" / "compare.json").read_text())
    assert stored["models"]["a"]["path"] == str(twins[1])
    assert stored["models"]["b"]["path"] == str(twins[2])
    assert stored["settings"]["seed_b"] == stored["settings"]["seed"] == SETTINGS.seed


def test_sampling_noise_alone_is_not_called_significant(twins, tmp_path):
    result = _compare(twins, tmp_path / "noise", seed_b=SETTINGS.seed + 1)
    meta_a, rows_a = read_eval(tmp_path / "noise" / "eval-a")
    meta_b, rows_b = read_eval(tmp_path / "noise" / "eval-b")
    assert meta_b["settings"]["sample_seed"] == SETTINGS.seed + 1
    assert meta_a["settings"]["sample_seed"] is None
    assert meta_b["settings"]["seed"] == meta_a["settings"]["seed"]
    # The same tasks, other samples: the comparison really sees noise.
    pd.testing.assert_frame_equal(
        rows_a[["task_id", "prompt", "sample"]], rows_b[["task_id", "prompt", "sample"]]
    )
    assert (rows_a["completion"] != rows_b["completion"]).mean() > 0.5
    hits = [r.groupby("task_id")["verdict_score"].sum() for r in (rows_a, rows_b)]
    assert (hits[0] != hits[1]).sum() >= 3, "too little noise for the test to mean anything"
    assert any(row["difference"]["value"] != 0 for row in result["levels"])
    _nothing_significant(result)


def _planted():
    """Three levels of per-task counts, A's drawn at random and B's equal to them, except:
    one task newly solved, one newly failed, one moderately better (p < 0.05 alone, not
    after correction), and a whole level moved up by 3 of 16 samples a task."""
    rng = np.random.default_rng(0)
    rows = []
    for env, level in (("arithmetic", 1), ("arithmetic", 2), ("modular", 1)):
        for i in range(24):
            hits_a = int(rng.integers(2, 11)) if env == "modular" else int(rng.integers(0, 17))
            hits_b = hits_a + 3 if env == "modular" else hits_a
            rows.append(
                {
                    "env": env,
                    "difficulty": level,
                    "task_id": f"{env}/{level}/{i}",
                    "prompt": f"task {i}",
                    "hits_a": hits_a,
                    "n_a": 16,
                    "hits_b": hits_b,
                    "n_b": 16,
                    "greedy_a": False,
                    "greedy_b": False,
                }
            )
    counts = pd.DataFrame(rows).set_index("task_id", drop=False)
    counts.loc["arithmetic/1/5", ["hits_a", "hits_b"]] = [0, 14]
    counts.loc["arithmetic/2/7", ["hits_a", "hits_b"]] = [15, 0]
    counts.loc["arithmetic/1/9", ["hits_a", "hits_b"]] = [3, 10]
    return counts.reset_index(drop=True)


def test_planted_changes_are_found_exactly():
    counts = _planted()
    result = compare_counts(counts)
    assert [e["task_id"] for e in result["improved"]] == ["arithmetic/1/5"]
    assert [e["task_id"] for e in result["regressed"]] == ["arithmetic/2/7"]
    assert result["improved"][0]["newly"] and result["regressed"][0]["newly"]
    assert (
        result["improved"][0]["a"]["correct"] == 0 and result["improved"][0]["b"]["correct"] == 14
    )
    # The moderate change is significant alone but not after Holm's correction.
    assert fisher_exact(3, 16, 10, 16) < 0.05

    levels = {(r["env"], r["level"]): r for r in result["levels"]}
    assert {key: r["direction"] for key, r in levels.items()} == {
        ("arithmetic", 1): "",
        ("arithmetic", 2): "",
        ("modular", 1): "better",
    }
    assert levels[("modular", 1)]["difference"]["value"] == pytest.approx(3 / 16)
    assert levels[("modular", 1)]["improved"] == 0  # +3 of 16 is too little for one task
    assert (levels[("arithmetic", 1)]["improved"], levels[("arithmetic", 2)]["regressed"]) == (1, 1)
    simultaneous = levels[("arithmetic", 1)]["difference_simultaneous"]
    assert simultaneous["confidence"] == pytest.approx(1 - 0.05 / 3)

    console = Console(file=io.StringIO(), width=120)
    models = {side: {"path": f"model-{side}", "step": 0} for side in "ab"}
    print_comparison(
        {"models": models, "settings": {"samples": 16, "tasks_per_level": 24}, **result}, console
    )
    printed = console.file.getvalue()
    assert "B better: 1 task(s) (new: A never solved it)" in printed
    assert "arithmetic/1/5 │ 0/16 │ 14/16" in printed and "arithmetic/2/7 │ 15/16 │ 0/16" in printed
    assert "arithmetic/1/9" not in printed

    # Swapping the models swaps the lists and the direction.
    swapped = counts.rename(
        columns={
            "hits_a": "hits_b",
            "hits_b": "hits_a",
            "greedy_a": "greedy_b",
            "greedy_b": "greedy_a",
        }
    )
    back = compare_counts(swapped)
    assert [e["task_id"] for e in back["improved"]] == ["arithmetic/2/7"]
    assert [e["task_id"] for e in back["regressed"]] == ["arithmetic/1/5"]
    assert [r["direction"] for r in back["levels"]] == ["", "", "worse"]


def _fisher_by_hand(hits_a, n_a, hits_b, n_b):
    """Two-sided Fisher p in exact fractions: the tables with the same margins no more
    probable than the observed one."""
    total = hits_a + hits_b

    def pmf(x):
        return Fraction(comb(n_a, x) * comb(n_b, total - x), comb(n_a + n_b, total))

    support = range(max(0, total - n_b), min(total, n_a) + 1)
    return float(sum(pmf(x) for x in support if pmf(x) <= pmf(hits_a)))


def test_fisher_exact_and_holm_by_hand():
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70)  # Fisher's tea tasting
    for hits_a in range(6):
        for hits_b in range(8):
            assert fisher_exact(hits_a, 5, hits_b, 7) == pytest.approx(
                _fisher_by_hand(hits_a, 5, hits_b, 7), rel=1e-9
            )
    assert fisher_exact(0, 16, 16, 16) == pytest.approx(2 / comb(32, 16), rel=1e-9)
    assert smallest_fisher_p(0, 16, 16) == smallest_fisher_p(1, 16, 16) == 1.0
    assert smallest_fisher_p(4, 8, 8) == pytest.approx(2 * 70 / 1820)  # cannot reach 0.05
    assert smallest_fisher_p(5, 8, 8) == pytest.approx(2 * 56 / 4368)  # can
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="0 <= hits <= n"):
        fisher_exact(5, 4, 0, 4)


@pytest.mark.parametrize("which", ["a", "b"])
def test_a_missing_model_is_one_line_and_writes_nothing(twins, tmp_path, capsys, which):
    config, a, b = twins
    models = ["/no/such/model", str(b)] if which == "a" else [str(a), "/no/such/model"]
    out = tmp_path / "out"
    assert main(["compare", *models, "--config", str(config), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "'/no/such/model': no such model folder" in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "evaluating" not in captured.out, "a missing B must stop the run before A is evaluated"
    assert not out.exists() and not any(tmp_path.glob(".out*"))


def test_an_unknown_environment_names_the_key(twins, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(f"model: {twins[1]}\nenvs: {{nosuch: {{}}}}\n")
    assert main(["compare", str(twins[1]), str(twins[2]), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "key 'envs.nosuch'" in err and err.count("\n") == 1


def test_cli_finds_a_better_model_and_writes_the_folder(twins, scrambled, capsys):
    """A: the organism with its weights scrambled, which never answers; B: the organism."""
    config, _, b = twins
    args = ["--config", str(config), "-n", "8", "--tasks-per-level", "16", "--max-new-tokens", "24"]
    assert main(["compare", str(scrambled), str(b), *args, "--batch-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "pass@1 at temperature 1 on 16 tasks a level, 8 samples each" in printed
    assert (
        "B better" in printed and "B better: no task" in printed and "B worse: no task" in printed
    )
    (out,) = (config.parent / "runs").glob("compare-*")  # the default folder
    result = json.loads((out / "compare.json").read_text())
    assert f"compare.json and both evals in {out}" in printed.replace("\n", "")
    assert [row["direction"] for row in result["levels"]] == ["better", "better"]
    for row in result["levels"]:
        assert row["pass_at_1_a"]["value"] == 0.0 < row["difference_simultaneous"]["low"]
    assert result["settings"]["batch_size"] == 32
    for side in ("eval-a", "eval-b"):
        meta, rows = read_eval(out / side)
        assert len(rows) == meta["rows"] == 2 * 16 * 9
