"""`selfplay eval`, `selfplay analyze` and the report, end to end on a tiny trained organism."""

import json

import pandas as pd
import pytest
from browser import page_body

from selfplay.cli import main

RUN = """
name: {name}
model: {model}
envs:
  arithmetic: {{weight: 1, levels: [1, 2]}}
  modular: {{weight: 1, levels: [1]}}
rewards:
  weights: {{correct: 1.0, format: 0.5, clarify: 0.0, length: 1.0}}
  length_limit: 4
probe: {{every: 2, tasks_per_level: 2, max_new_tokens: 16}}
checkpoint: {{every: 0}}
runs_dir: {runs}
grpo:
  max_steps: 4
  num_generations: 4
  per_device_train_batch_size: 8
  max_completion_length: 24
  learning_rate: 0.001
"""


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """(base model, run config path, run folder) of a 4-step run on the tiny organism."""
    from selfplay.train import train

    root = tmp_path_factory.mktemp("analysis")
    path = root / "tiny_analysis.yaml"
    path.write_text(RUN.format(name="tiny_analysis", model=tiny[1], runs=root))
    return tiny[1], path, train(path)


@pytest.fixture(scope="module")
def analysed(run):
    from selfplay.analysis.analyze import analyze

    base, _, run_dir = run
    report = analyze(run_dir, base=str(base), samples=4, tasks_per_level=3)
    return run_dir, report, json.loads((report.parent / "summary.json").read_text())


def test_eval_writes_transcripts_with_the_training_schema(run, tmp_path, capsys):
    base, config, run_dir = run
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            str(base),
            "--config",
            str(config),
            "--samples",
            "4",
            "--tasks-per-level",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "pass@4" in printed and str(out) in printed
    meta = json.loads((out / "eval.json").read_text())
    rows = pd.read_parquet(out / "transcripts")
    assert len(rows) == meta["rows"] == 3 * 3 * (4 + 1)  # 3 levels x 3 tasks x (greedy + 4)
    assert set(rows["role"]) == {"eval"}
    assert sorted(set(rows["sample"])) == [-1, 0, 1, 2, 3]
    assert set(rows.loc[rows["sample"] == -1, "temperature"]) == {0.0}
    training = pd.read_parquet(run_dir / "transcripts")
    missing = set(training.columns) - set(rows.columns)
    assert not missing, f"eval transcripts lack training columns {missing}"
    greedy = rows[rows["sample"] == -1]
    assert greedy["greedy_gold_logprob"].notna().all()
    assert (greedy["greedy_gold_logprob"] <= 0).all()
    table = meta["summary"]["pass_at_k"]
    assert {(r["env"], r["level"]) for r in table} == {
        ("arithmetic", 1),
        ("arithmetic", 2),
        ("modular", 1),
    }
    assert list(table[0]["pass_at_k"]) == ["1", "2", "4"]


def test_eval_of_a_run_folder_uses_its_final_model_and_the_same_tasks(run, tmp_path):
    from selfplay.evaluate import read_eval

    base, config, run_dir = run
    args = ["--config", str(config), "--samples", "2", "--tasks-per-level", "2"]
    assert main(["eval", str(base), *args, "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", str(run_dir), *args, "--out", str(tmp_path / "b")]) == 0
    meta_a, rows_a = read_eval(tmp_path / "a")
    meta_b, rows_b = read_eval(tmp_path / "b")
    assert meta_b["model"].endswith("final") and meta_b["step"] == 4
    assert sorted(set(rows_a["task_id"])) == sorted(set(rows_b["task_id"]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--samples", "0"], "samples must be between 1 and 4096"),
        (["--tasks-per-level", "0"], "tasks_per_level must be at least 1"),
    ],
)
def test_eval_bad_settings_are_one_line(run, tmp_path, capsys, argv, message):
    base, config, _ = run
    code = main(["eval", str(base), "--config", str(config), *argv, "--out", str(tmp_path / "x")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_summary_holds_every_part(analysed):
    run_dir, report, summary = analysed
    assert report == run_dir / "analysis" / "report.html"
    solve = [c for c in summary["conclusions"] if c["what"] == "solve"]
    assert {(c["env"], c["level"]) for c in solve} == {
        ("arithmetic", 1),
        ("arithmetic", 2),
        ("modular", 1),
    }
    assert all(
        c["conclusion"] in {"elicited", "newly acquired", "not learned", "inconclusive"}
        for c in summary["conclusions"]
    )
    whats = {c["what"] for c in summary["conclusions"]}
    assert {"self_correction", "verification", "stating_confidence"} <= whats
    assert summary["thresholds"]["floor"] == 0.05
    assert summary["evals"]["settings"]["samples"] == 4
    # probes ran at 0, 2 and 4 with the continuous measures: artefacts compare them
    findings = {(a["env"], a["level"]): a for a in summary["artefacts"]}
    assert findings[("arithmetic", 1)]["probes"] == 3
    assert "gold_logprob" in findings[("arithmetic", 1)]["continuous_share"]
    assert summary["aha"]["steps"] == [1, 2, 3, 4]
    assert summary["aha"]["finding"]
    assert summary["base_logprob"]["base_solutions"] >= 0
    # the evals are kept and reused
    assert (run_dir / "analysis" / "eval-base" / "eval.json").is_file()
    assert (run_dir / "analysis" / "eval-trained" / "eval.json").is_file()


def test_report_has_a_calibration_section_only_with_data(analysed, tmp_path):
    from selfplay.analysis.calibration import of_eval, over_training
    from selfplay.analysis.reading import probe_series, read_metrics
    from selfplay.analysis.render.report import write_report

    run_dir, report, summary = analysed
    assert "calibration" not in summary  # the tiny organism never states a confidence
    without = report.read_text()
    assert "<h2>Calibration" not in without
    # Rows that say 0.9 and are right two times in three: the section, with its plot.
    rows = pd.DataFrame(
        {
            "step": [1 + i // 6 for i in range(24)],
            "task_id": [f"arithmetic/9/1/{i // 3}" for i in range(24)],
            "verdict_kind": "answer",
            "verdict_score": [float(i % 3 > 0) for i in range(24)],
            "confidence": 0.9,
            "temperature": 1.0,
        }
    )
    block = {
        "bins": 10,
        "training": over_training(rows),
        "evals": {"base": of_eval(rows), "trained": of_eval(rows)},
    }
    train, probes = read_metrics(run_dir)
    page = write_report(
        tmp_path / "report.html",
        {**summary, "calibration": block},
        run_dir,
        train,
        probe_series(probes),
    ).read_text()
    assert "<h2>Calibration: the confidence stated after the answer</h2>" in page
    assert page.count("<img") == without.count("<img") + 1
    assert "0.233 [" in page  # the eval's ECE, |2/3 - 0.9|, with its interval


def test_analyze_reuses_evals_and_accepts_an_eval_folder_as_base(analysed, capsys):
    run_dir, _, summary = analysed
    code = main(["analyze", str(run_dir), "--base", str(run_dir / "analysis" / "eval-base")])
    assert code == 0
    out = capsys.readouterr().out
    assert "Reusing eval of trained" in out and "report:" in out
    again = json.loads((run_dir / "analysis" / "summary.json").read_text())
    assert again["conclusions"] == summary["conclusions"]


def test_analyze_refuses_what_is_not_a_run(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(analysed, tmp_path):
    _, report, _ = analysed
    body, dom = page_body(report, tmp_path / "profile")
    assert 'data-errors="0"' in body, body
    assert 'data-rendered="ok"' in body, body
    images = int(body.split('data-images="')[1].split('"')[0])
    assert images >= 7, body  # training curves, pass@k, exact vs continuous, aha
    assert "Elicited or newly acquired" in dom and "Aha moments" in dom


def test_a_control_run_is_the_same_config_with_other_rewards(run, analysed, capsys):
    from selfplay.analysis.analyze import analyze
    from selfplay.train import train

    base, config, run_dir = run
    text = config.read_text().replace("name: tiny_analysis", "name: ''")
    unnamed = config.with_name("tiny_control.yaml")
    unnamed.write_text(text)
    control = train(unnamed, control="random")
    assert control.name.startswith("tiny_control-random-")
    stored = json.loads((control / "config.json").read_text())
    assert stored["rewards"]["control"] == "random"
    records = [json.loads(x) for x in (control / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/random/mean" in r for r in records)
    assert not any("rewards/correct/mean" in r for r in records)
    report = analyze(run_dir, controls=(str(control),), evaluate_models=False)
    summary = json.loads((report.parent / "summary.json").read_text())
    (entry,) = summary["controls"]
    assert entry["control"] == "random" and entry["probes"]


def test_completion_logprobs_match_a_full_forward_pass(tiny):
    import torch

    from selfplay.generation import completion_logprobs, teacher_forced
    from selfplay.models import load_model

    model, tokenizer = load_model(tiny[1])
    prompts = ["Compute 1+2.", "Compute 12+34, a longer prompt."]
    completions = ["<think>1+2=3</think><answer>3</answer>", "<answer>46</answer>"]
    batched = completion_logprobs(model, tokenizer, prompts, completions)  # left-padded
    forced = teacher_forced(model, tokenizer, prompts, completions)
    for prompt, completion, got, (logprobs, hits) in zip(
        prompts, completions, batched, forced, strict=True
    ):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + c])).logits[0, :-1]
        reference = torch.log_softmax(logits.float(), -1)
        want = [reference[len(p) - 1 + j, c[j]].item() for j in range(len(c))]
        assert got == pytest.approx(want, abs=1e-5) and logprobs == got
        assert all(x <= 0 for x in got)
        # Per-token accuracy: the token is the most likely one where the full pass says so.
        assert hits == [reference[len(p) - 1 + j].argmax().item() == c[j] for j in range(len(c))]
        assert len(hits) == len(c)


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("abc", "abc", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("12", "21", 2)],
)
def test_levenshtein(a, b, distance):
    from selfplay.continuous import levenshtein

    assert levenshtein(list(a), list(b)) == distance == levenshtein(list(b), list(a))


def test_random_control_reward_is_a_fixed_coin_per_completion():
    from envs import load_env, task_to_json
    from rewards import build_rewards
    from selfplay.judges import make_judge

    env = load_env("arithmetic")
    task = env.task(0, 0, 1)
    (random_reward,), weights = build_rewards({"random": 1.0}, make_judge("program", {}), 400)
    texts = [f"<answer>{i}</answer>" for i in range(400)]
    columns = {"task": [task_to_json(task)] * len(texts)}
    first = random_reward(prompts=[""] * len(texts), completions=texts, **columns)
    again = random_reward(prompts=[""] * len(texts), completions=texts, **columns)
    assert first == again and set(first) == {0.0, 1.0} and weights == [1.0]
    assert 0.4 < sum(first) / len(first) < 0.6


def test_eval_model_names_resolve_to_a_folder_and_a_step(run, tmp_path):
    from selfplay.config.load import load_run_config
    from selfplay.evaluate import resolve_eval_model

    _, config_path, run_dir = run
    config = load_run_config(config_path)
    assert resolve_eval_model(str(run_dir), config, None) == (str(run_dir / "final"), 4)
    checkpoint = tmp_path / "checkpoints" / "checkpoint-12"
    assert resolve_eval_model(str(checkpoint), config, None) == (str(checkpoint), 12)
    assert resolve_eval_model("some/model", config, None) == ("some/model", 0)


def test_eval_is_reproducible(run, tmp_path):
    base, config, _ = run
    args = ["--config", str(config), "--samples", "3", "--tasks-per-level", "2"]
    assert main(["eval", str(base), *args, "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", str(base), *args, "--out", str(tmp_path / "b")]) == 0
    a = pd.read_parquet(tmp_path / "a" / "transcripts")
    b = pd.read_parquet(tmp_path / "b" / "transcripts")
    assert list(a["completion"]) == list(b["completion"])
    sampled = a[a["sample"] >= 0]
    assert sampled["completion"].nunique() > 1  # there was randomness to pin down
