"""GRPO training through TRL on a tiny organism: parameters move, every completion is kept."""

import json

import pytest

from selfplay.errors import ConfigError

STEPS, PROMPTS, GENERATIONS = 3, 2, 4

RUN = """
name: tiny_run
model: {model}
envs:
  arithmetic: {{weight: 1, levels: [1, 2]}}
  modular: {{weight: 1, levels: [1]}}
curriculum: {{window: 4}}
rewards:
  # The length term varies with every completion, so advantages are never all zero.
  weights: {{correct: 1.0, format: 0.5, clarify: 0.0, length: 1.0}}
  length_limit: 4
probe: {{every: 2, tasks_per_level: 2, max_new_tokens: 16}}
runs_dir: {runs}
grpo:
  max_steps: {steps}
  num_generations: {generations}
  per_device_train_batch_size: {batch}
  max_completion_length: 24
  learning_rate: 0.001
"""


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    from selfplay.train import train

    root = tmp_path_factory.mktemp("runs")
    path = root / "tiny_run.yaml"
    path.write_text(
        RUN.format(
            model=tiny[1],
            runs=root,
            steps=STEPS,
            generations=GENERATIONS,
            batch=PROMPTS * GENERATIONS,
        )
    )
    return tiny[1], train(path)


def test_parameters_changed(trained):
    import torch
    from transformers import AutoModelForCausalLM

    base, run_dir = trained
    before = AutoModelForCausalLM.from_pretrained(base).state_dict()
    after = AutoModelForCausalLM.from_pretrained(run_dir / "final").state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "GRPO must move the parameters"


def test_transcripts_hold_every_completion(trained):
    from selfplay.transcripts import read_transcripts

    _, run_dir = trained
    files = sorted((run_dir / "transcripts").glob("*.parquet"))
    assert len(files) == STEPS
    rows = read_transcripts(run_dir)
    assert len(rows) == STEPS * PROMPTS * GENERATIONS
    assert sorted(rows["step"].unique()) == list(range(STEPS))
    # Each group is one task, sampled GENERATIONS times.
    assert (rows.groupby(["step", "group"])["task_id"].nunique() == 1).all()
    assert (rows.groupby(["step", "group"]).size() == GENERATIONS).all()
    for column in (
        "run",
        "role",
        "task_id",
        "env",
        "difficulty",
        "specified",
        "prompt",
        "answer",
        "completion",
        "completion_tokens",
        "reasoning_tokens",
        "reward_correct",
        "reward_format",
        "reward_length",
        "reward",
        "advantage",
        "verdict_kind",
        "verdict_parsed",
        "verdict_score",
        "verdict_reason",
        "self_correction_lexical",
    ):
        assert column in rows.columns, column
    assert "reward_clarify" not in rows.columns  # weight 0: left out
    total = rows["reward_correct"].fillna(0) + 0.5 * rows["reward_format"] + rows["reward_length"]
    assert (abs(rows["reward"] - total) < 1e-6).all()
    # Advantages are centred within each group.
    assert (abs(rows.groupby(["step", "group"])["advantage"].mean()) < 1e-4).all()


def test_metrics_and_probes_are_logged(trained):
    _, run_dir = trained
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*records)
    for key in (
        "reward",
        "accuracy/arithmetic",
        "curriculum/arithmetic/level",
        "length/reasoning_tokens_mean",
        "probe/arithmetic/1/greedy",
        "judge/n",
    ):
        assert key in keys, key
    probe_steps = sorted({r["step"] for r in records if "probe/arithmetic/1/greedy" in r})
    assert probe_steps == [0, 2, STEPS]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["transcript_rows"] == STEPS * PROMPTS * GENERATIONS
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_existing_run_folder_is_not_overwritten(trained, tmp_path):
    from selfplay.train import train

    _, run_dir = trained
    config = json.loads((run_dir / "config.json").read_text())
    path = tmp_path / "again.yaml"
    path.write_text(
        f"name: {run_dir.name}\nenvs: {{arithmetic: {{}}}}\nruns_dir: {run_dir.parent}\n"
    )
    with pytest.raises(ConfigError, match="already exists|holds a different config"):
        train(path)
    assert json.loads((run_dir / "config.json").read_text()) == config


def test_bad_grpo_key_names_it(tmp_path):
    from selfplay.train import train

    path = tmp_path / "bad.yaml"
    path.write_text(
        f"envs: {{arithmetic: {{}}}}\nruns_dir: {tmp_path}\ngrpo: {{num_generationz: 4}}\n"
    )
    with pytest.raises(ConfigError, match="grpo.num_generationz"):
        train(path)


def test_transcripts_load_with_datasets(trained):
    from datasets import load_dataset

    _, run_dir = trained
    files = sorted(str(p) for p in (run_dir / "transcripts").glob("*.parquet"))
    rows = load_dataset("parquet", data_files=files, split="train")
    assert rows.num_rows == STEPS * PROMPTS * GENERATIONS
    assert {"completion", "reward", "advantage", "verdict_reason"} <= set(rows.column_names)


@pytest.mark.parametrize(
    "grpo,message",
    [
        ("{learning_rate: fast}", "key 'grpo.learning_rate': expected float, got str"),
        ("{num_generations: 2.5}", "key 'grpo.num_generations': expected int"),
        ("{output_dir: /elsewhere}", "grpo.output_dir"),
    ],
)
def test_bad_grpo_value_names_the_key_and_creates_nothing(tmp_path, grpo, message):
    from selfplay.train import train

    path = tmp_path / "bad.yaml"
    path.write_text(f"envs: {{arithmetic: {{}}}}\nruns_dir: {tmp_path / 'runs'}\ngrpo: {grpo}\n")
    with pytest.raises(ConfigError, match=message):
        train(path)
    assert not (tmp_path / "runs").exists()


def test_system_prompt_goes_before_every_task(tiny):
    from envs import load_env
    from selfplay.generation import chat_prompts
    from selfplay.models import load_model
    from selfplay.recorder import task_row

    task = load_env("arithmetic").task(0, 0, 1)
    assert task_row(task)["prompt"] == [{"role": "user", "content": task.prompt}]
    row = task_row(task, system="Answer in <answer> tags.")
    assert row["prompt"][0] == {"role": "system", "content": "Answer in <answer> tags."}
    assert row["prompt"][1]["content"] == task.prompt
    carried = task_row(task, carry_task=True, system="S")["prompt"]
    assert carried[0]["role"] == "system" and "task" in carried[1]
    _, tokenizer = load_model(tiny[1])
    plain, framed = chat_prompts(tokenizer, [task]), chat_prompts(tokenizer, [task], "S:")
    assert "S:" in framed[0] and "S:" not in plain[0]
    assert framed[0].endswith(plain[0].removeprefix(tokenizer.bos_token or ""))
