"""A bad run config or option is refused before anything is written or loaded: one line that
names the file and key, exit status 2, no run folder. A full disk mid-run is one line too.

The configs name a model that does not exist: a check that ran only after the model is
resolved would show as "no such model folder" instead of the expected message.
"""

import errno
import json
import math
import os
from pathlib import Path

import pytest

from selfplay.cli import main

NO_MODEL = "model: /no/such/model\n"
ARITH = "envs: {arithmetic: {}}\n"

# (config body, a fragment of the one-line error it must give)
BAD_RUNS = [
    # Levels the environment does not have: the curriculum would reach them hours in.
    ("envs: {arithmetic: {levels: [1, 2, 99]}}\n", "key 'envs.arithmetic.levels': level 99 is not"),
    ("envs: {arithmetic: {levels: [0]}}\n", "key 'envs.arithmetic.levels': level 0 is not"),
    ("envs: {arithmetic: {start_level: 99}}\n", "key 'envs.arithmetic.start_level': 99 is not"),
    ("envs: {arithmetic: {start_level: 0}}\n", "key 'envs.arithmetic.start_level': 0 is not"),
    (
        "envs: {arithmetic: {levels: [1, 2], start_level: 3}}\n",
        "'envs.arithmetic.start_level': 3 is not on the ladder [1, 2]",
    ),
    ("envs: {arithmetic: {levels: []}}\n", "envs.arithmetic.levels is empty"),
    ("envs: {arithmetic: {levels: [1, 1, 2]}}\n", "envs.arithmetic.levels names a level twice"),
    ("envs: {arithmetic: {levels: [2, 1]}}\n", "must go from easiest to hardest"),
    ("envs: {}\n", "envs is empty"),
    ("envs: {arithmetic: {weight: -1}, modular: {}}\n", "envs.arithmetic.weight must be 0 or more"),
    ("envs: {arithmetic: {weight: 0}, modular: {weight: 0}}\n", "every weight is zero"),
    ("envs: {arithmetic: {weight: .nan}}\n", "key 'envs.arithmetic.weight': expected a finite"),
    # grpo: values TRL takes unchecked and fails on (or ignores) once training has started.
    (ARITH + "grpo: {max_steps: 0}\n", "key 'grpo.max_steps' must be at least 1, got 0"),
    (ARITH + "grpo: {max_steps: -5}\n", "key 'grpo.max_steps' must be at least 1"),
    (ARITH + "grpo: {learning_rate: -1.0e-5}\n", "key 'grpo.learning_rate' must be at least 0"),
    (ARITH + "grpo: {learning_rate: .nan}\n", "key 'grpo.learning_rate': expected a finite"),
    (ARITH + "grpo: {learning_rate: .inf}\n", "key 'grpo.learning_rate': expected a finite"),
    (ARITH + "grpo: {max_completion_length: 0}\n", "key 'grpo.max_completion_length' must be"),
    (ARITH + "grpo: {temperature: -0.5}\n", "key 'grpo.temperature' must be above 0"),
    (ARITH + "grpo: {temperature: 0}\n", "key 'grpo.temperature' must be above 0"),
    (ARITH + "grpo: {top_p: 1.5}\n", "key 'grpo.top_p' must be"),
    (ARITH + "grpo: {beta: -0.1}\n", "key 'grpo.beta' must be at least 0"),
    (ARITH + "grpo: {epsilon: -0.2}\n", "key 'grpo.epsilon' must be at least 0"),
    (ARITH + "grpo: {epsilon_high: -0.2}\n", "key 'grpo.epsilon_high' must be at least 0"),
    (ARITH + "grpo: {num_generations: 1}\n", "key 'grpo.num_generations' must be at least 2"),
    (ARITH + "grpo: {num_generations: 3}\n", "must be divisible by num_generations (3)"),
    (ARITH + "grpo: {seed: -1}\n", "key 'grpo.seed' must be between 0 and"),
    (ARITH + "grpo: {loss_type: ppo}\n", "key 'grpo.loss_type' must be one of 'grpo'"),
    (ARITH + "grpo: {scale_rewards: std}\n", "key 'grpo.scale_rewards' must be one of"),
    (ARITH + "grpo: {sync_ref_model: true}\n", "key 'grpo.sync_ref_model': there is no reference"),
    # The other sections.
    (ARITH + "probe: {tasks_per_level: 0}\n", "probe.tasks_per_level must be at least 1"),
    (ARITH + "probe: {every: -1}\n", "probe.every must be 0 or more"),
    (ARITH + "probe: {max_new_tokens: 0}\n", "probe.max_new_tokens must be at least 1"),
    (
        ARITH + "rewards: {length_limit: 0, weights: {correct: 1, length: 0.5}}\n",
        "rewards.length_limit must be at least 1 when the length component is weighted, got 0",
    ),
    (
        ARITH + "rewards: {weights: {correct: .nan}}\n",
        "'rewards.weights.correct': expected a finite",
    ),
    (ARITH + "curriculum: {band: [.nan, 0.7]}\n", "key 'curriculum.band[0]': expected a finite"),
    (ARITH + "seed: -1\n", "seed must be between 0 and 2**32 - 1"),
    (ARITH + "name: ../elsewhere\n", "name must be a folder name"),
    (ARITH + "runs_dir: ''\n", "runs_dir is empty"),
    (ARITH + "resources: {actor_timeout: .inf}\n", "'resources.actor_timeout': expected a finite"),
    (
        ARITH + "selfplay: {max_proposal_tokens: 0}\n",
        "selfplay.max_proposal_tokens must be at least",
    ),
    (ARITH + "selfplay: {invalid_penalty: -1}\n", "selfplay.invalid_penalty must be 0 or more"),
    (ARITH + "selfplay: {frontier_weight: -1}\n", "selfplay.frontier_weight must be 0 or more"),
    (
        ARITH + "selfplay: {frontier_at: 1}\n",
        "selfplay.frontier_at must be strictly between 0 and 1, got 1.0",
    ),
    (ARITH + "selfplay: {frontier_at: 0}\n", "selfplay.frontier_at must be strictly between 0"),
    (ARITH + "selfplay: {frontier_ema: 0}\n", "selfplay.frontier_ema must be in (0, 1], got 0.0"),
    (ARITH + "selfplay: {frontier_ema: 2}\n", "selfplay.frontier_ema must be in (0, 1]"),
    (
        ARITH + "selfplay: {collapse: {valid_floor: 2}}\n",
        "selfplay.collapse.valid_floor must be in",
    ),
    (
        "envs: {arithmetic: {}}\nselfplay: {enabled: true, challenger_grpo: {temperature: -1}}\n",
        "key 'selfplay.challenger_grpo.temperature' must be above 0",
    ),
    # A fixed task list: ids that cannot be rebuilt, or of environments or levels not there.
    (ARITH + "tasks: [arithmetic/0/1]\n", "tasks[0]: 'arithmetic/0/1' is not a task id"),
    (ARITH + "tasks: [arithmetic/proposed/1/ab12]\n", "is not a task id env/seed/level/index"),
    (ARITH + "tasks: [modular/0/1/3]\n", "'modular/0/1/3' is a task of 'modular', which is not"),
    (
        ARITH + "tasks: [arithmetic/0/1/0, arithmetic/0/9/1]\n",
        "key 'tasks[1]': 'arithmetic/0/9/1': environment 'arithmetic': difficulty 9 not in",
    ),
    (
        ARITH + "tasks: [arithmetic/0/1/0]\nselfplay: {enabled: true}\n",
        "tasks: a fixed task list and selfplay.enabled exclude each other",
    ),
    # The YAML itself.
    (ARITH + "seed: 1\nseed: 2\n", "line 3, column 1: not valid YAML: duplicate key 'seed' (first"),
    (
        "envs:\n  arithmetic: {weight: 1, weight: 2}\n",
        "line 2, column 27: not valid YAML: duplicate key 'weight'",
    ),
    ("envs: {arithmetic: {}\nseed: 1\n", "line 2, column 1: not valid YAML: expected ',' or '}'"),
    ("envs:\n  arithmetic: {}\n seed: 1\n", "line 3, column 2: not valid YAML:"),
]


def _train_errors(tmp_path: Path, body: str | bytes, capsys) -> str:
    path = tmp_path / "run.yaml"
    if isinstance(body, str):
        runs_dir = "" if "runs_dir:" in body else f"runs_dir: {tmp_path / 'runs'}\n"
        body = (body + NO_MODEL + runs_dir).encode()
    path.write_bytes(body)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"selfplay train: error: {path}: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists(), "a refused config must not create a run folder"
    return err


@pytest.mark.parametrize("body,message", BAD_RUNS, ids=[b for b, _ in BAD_RUNS])
def test_bad_run_config_is_one_line_and_writes_nothing(tmp_path, capsys, body, message):
    assert message in _train_errors(tmp_path, body, capsys)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file (byte 0x89 at offset 0 is not UTF-8)"),
        (
            b"envs: {arithmetic: {}}\nseed: \x00\n",
            "line 2, column 7: not valid YAML: character #x0000",
        ),
    ],
    ids=["binary", "control-character"],
)
def test_unreadable_config_file_is_one_line(tmp_path, capsys, content, message):
    assert message in _train_errors(tmp_path, content, capsys)


def test_a_folder_given_as_config_is_one_line(tmp_path, capsys):
    (tmp_path / "conf.yaml").mkdir()
    assert main(["train", str(tmp_path / "conf.yaml")]) == 2
    assert "conf.yaml: a folder, not a config file" in capsys.readouterr().err


def test_duplicate_key_in_an_organism_recipe_is_refused_too(tmp_path, capsys):
    path = tmp_path / "o.yaml"
    # Were the second value kept, the recipe would fail on it, not pretrain for minutes.
    path.write_text(
        "corpus:\n  envs:\n    arithmetic: {levels: [1]}\n  clarify_rate: 0\n  clarify_rate: 5\n"
    )
    assert main(["pretrain", str(path), "--models-dir", str(tmp_path / "models")]) == 2
    err = capsys.readouterr().err
    assert "o.yaml: line 5, column 3: not valid YAML: duplicate key 'clarify_rate'" in err, err
    assert not (tmp_path / "models").exists()


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    from selfplay.config import load_config
    from selfplay.config.run import RunConfig

    path = tmp_path / "run.yaml"
    path.write_text(
        "envs:\n  arithmetic: &a {weight: 1, levels: [1]}\n  modular: {<<: *a, weight: 2}\n"
    )
    config = load_config(path, RunConfig)
    assert config.envs["modular"].weight == 2.0 and config.envs["modular"].levels == [1]


# runs_dir: checked before the model loads, not by a traceback after it.


def test_runs_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "runs").write_text("not a folder")
    path = tmp_path / "run.yaml"
    path.write_text(ARITH + NO_MODEL + f"runs_dir: {tmp_path / 'runs'}\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"key 'runs_dir': {tmp_path / 'runs'} is a file, not a folder" in err, err
    assert err.count("\n") == 1


def test_runs_dir_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    path = tmp_path / "run.yaml"
    path.write_text(ARITH + NO_MODEL + f"runs_dir: {tmp_path / 'file' / 'runs'}\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'file' / 'runs'} is under {tmp_path / 'file'}, a file" in err, err


def test_read_only_runs_dir(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    real_access = os.access
    # chmod does not stop root, so the read-only folder is what os.access says of it.
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != runs and real_access(p, mode))
    path = tmp_path / "run.yaml"
    path.write_text(ARITH + NO_MODEL + f"runs_dir: {runs}\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"key 'runs_dir': {runs} is not writable" in err, err
    assert list(runs.iterdir()) == []


def test_runs_dir_inside_a_read_only_folder(tmp_path, capsys, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: Path(p) != tmp_path and real_access(p, m))
    path = tmp_path / "run.yaml"
    path.write_text(ARITH + NO_MODEL + f"runs_dir: {tmp_path / 'runs'}\n")
    assert main(["train", str(path)]) == 2
    assert f"would be made in {tmp_path}, which is not writable" in capsys.readouterr().err


# --resume and run folders with a damaged config.json.


def _stored(path: Path) -> str:
    from selfplay.config import load_config, to_dict
    from selfplay.config.run import RunConfig

    return json.dumps(to_dict(load_config(path, RunConfig)))


def test_resume_skips_a_sibling_with_a_corrupt_config(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(ARITH + NO_MODEL + f"runs_dir: {tmp_path / 'runs'}\n")
    good, broken = tmp_path / "runs/run-20250101-000000", tmp_path / "runs/run-20250102-000000"
    for folder in (good, broken):
        folder.mkdir(parents=True)
    (good / "config.json").write_text(_stored(path))
    (broken / "config.json").write_text('{"envs": {"arith')
    assert main(["train", str(path), "--resume"]) == 2
    out, err = capsys.readouterr()
    assert f"not resuming {broken}: {broken / 'config.json'} is not valid JSON" in out, out
    # It went on to resume the good run: the next thing it needs is the (missing) model.
    assert "no such model folder" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("content", ['{"envs": {"arith', "[1, 2]", "\x89\x00\xff"])
def test_resuming_a_run_with_a_corrupt_config_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "run.yaml"
    path.write_text(ARITH + NO_MODEL + f"runs_dir: {tmp_path / 'runs'}\n")
    run = tmp_path / "runs" / "run-20250101-000000"
    run.mkdir(parents=True)
    (run / "config.json").write_bytes(content.encode("latin-1"))
    assert main(["train", str(path), "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'config.json'} is not valid JSON" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["train", str(path), "--resume"]) == 2  # searched for: skipped, none left
    assert "no unfinished run of this config" in capsys.readouterr().err


def test_eval_of_a_run_with_a_corrupt_config_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{")
    assert main(["eval", "/no/such/model", "--config", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'config.json'} is not valid JSON" in err and err.count("\n") == 1, err


# selfplay sample and eval: bad options before the model loads.


@pytest.mark.parametrize(
    "args,message",
    [
        (["--level", "99"], "--level 99: environment 'arithmetic' has levels"),
        (["-n", "0"], "-n 0: sample at least 1 task"),
        (["-n", "-3"], "-n -3: sample at least 1 task"),
        (["--max-new-tokens", "0"], "--max-new-tokens 0: must be at least 1"),
        (["--temperature", "-1"], "--temperature -1.0: must be 0 (greedy) or more"),
        (["--temperature", "nan"], "--temperature nan: must be 0 (greedy) or more"),
        (["--temperature", "inf"], "--temperature inf: must be 0 (greedy) or more"),
    ],
)
def test_bad_sample_options_are_one_line(capsys, args, message):
    assert main(["sample", "/no/such/model", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "args,body,message",
    [
        (["--max-new-tokens", "0"], ARITH, "max_new_tokens must be at least 1, got 0"),
        (["-n", "0"], ARITH, "samples must be between 1 and 4096, got 0"),
        (["-n", "-2"], ARITH, "samples must be between 1 and 4096, got -2"),
        (["--tasks-per-level", "0"], ARITH, "tasks_per_level must be at least 1, got 0"),
        ([], "envs: {arithmetic: {levels: [1, 99]}}\n", "'envs.arithmetic.levels': level 99"),
    ],
)
def test_bad_eval_options_are_one_line(tmp_path, capsys, args, body, message):
    path = tmp_path / "run.yaml"
    path.write_text(body + NO_MODEL + f"runs_dir: {tmp_path / 'runs'}\n")
    out = tmp_path / "eval"
    assert main(["eval", "/no/such/model", "--config", str(path), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


# A full disk: torch says only "unexpected pos"; the run says the disk is full.

# What torch 2.x's checkpoint writer raises when the disk fills (caffe2/serialize/
# inline_container.cc, read from a real failed torch.save).
TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
TORCH_FAILED = "PytorchStreamWriter failed writing file data/0: file write failed"


def _free(monkeypatch, free: int) -> None:
    """Make the run see ``free`` bytes left. Patched in selfplay.disk, not in shutil: a library
    first imported meanwhile (datasets, by TRL) would keep the fake for the whole session."""
    import selfplay.disk

    monkeypatch.setattr(selfplay.disk, "_free_bytes", lambda path: free)


def test_free_space_is_read_from_the_disk(tmp_path):
    from selfplay.disk import _free_bytes

    assert _free_bytes(tmp_path / "not" / "made" / "yet") > 0


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(TORCH_FULL),
        RuntimeError(TORCH_FAILED),
        OSError(errno.ENOSPC, "No space left on device", "runs/x/transcripts/step.parquet"),
        # pyarrow's error for a Parquet file it could not finish
        OSError(
            "[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"
        ),
    ],
    ids=["torch-pos", "torch-writer", "enospc", "pyarrow"],
)
def test_full_disk_errors_become_one_line(tmp_path, monkeypatch, error):
    from selfplay.disk import disk_full_is_one_line
    from selfplay.errors import DiskFull

    _free(monkeypatch, 3 * 2**20)
    with pytest.raises(DiskFull) as caught:
        with disk_full_is_one_line(tmp_path, "free some space"):
            raise error
    message = str(caught.value)
    assert "the disk is full (3 MiB free)" in message and message.endswith("; free some space")
    assert "\n" not in message
    assert str(getattr(error, "filename", None) or tmp_path) in message


def test_torch_write_errors_with_space_left_pass_unchanged(tmp_path, monkeypatch):
    from selfplay.disk import disk_full_is_one_line

    _free(monkeypatch, 50 * 2**30)
    with pytest.raises(RuntimeError, match="unexpected pos"):
        with disk_full_is_one_line(tmp_path, "free some space"):
            raise RuntimeError(TORCH_FULL)
    with pytest.raises(ValueError, match="something else"):
        with disk_full_is_one_line(tmp_path, "free some space"):
            raise ValueError("something else")


def test_full_disk_at_a_checkpoint_is_one_line(tiny, tmp_path, monkeypatch, capsys):
    import torch

    path = tmp_path / "full.yaml"
    path.write_text(
        f"name: full\nmodel: {tiny[1]}\nenvs: {{arithmetic: {{levels: [1]}}}}\n"
        "probe: {every: 0, tasks_per_level: 1, max_new_tokens: 8}\ncheckpoint: {every: 1}\n"
        "grpo: {max_steps: 2, num_generations: 2, per_device_train_batch_size: 2, "
        f"max_completion_length: 8}}\nruns_dir: {tmp_path / 'runs'}\n"
    )

    def full(*args, **kwargs):
        raise RuntimeError(TORCH_FULL)

    monkeypatch.setattr(torch, "save", full)
    _free(monkeypatch, 0)
    assert main(["train", str(path)]) == 1
    printed = capsys.readouterr().err
    err = printed.strip().splitlines()[-1]  # after the progress bars
    run = tmp_path / "runs" / "full"
    assert err.startswith(f"selfplay train: error: {run}: the disk is full (0 MiB free): "), err
    assert "unexpected pos 704 vs 598" in err and f"--resume {run}" in err
    assert "Traceback" not in printed


def test_finite_floats_load_and_infinite_ones_do_not():
    """Finite floats load (ints widened); .nan and .inf are refused wherever a float is read."""
    from selfplay.config import from_dict
    from selfplay.config.run import RunConfig
    from selfplay.errors import ConfigError

    config = from_dict(RunConfig, {"envs": {"arithmetic": {"weight": 2}}})
    assert config.envs["arithmetic"].weight == 2.0
    with pytest.raises(ConfigError, match="finite"):
        from_dict(RunConfig, {"envs": {"arithmetic": {"weight": math.inf}}})
