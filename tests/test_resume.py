"""Checkpoints and --resume: a run killed with SIGKILL and resumed loses and repeats nothing."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_runs import GENERATIONS, PROMPTS, run_config

from selfplay.checkpoints import (
    STATE_FILE,
    Checkpointer,
    checkpoints,
    latest_checkpoint,
    rewind,
    write_json_atomic,
)
from selfplay.errors import ConfigError

STEPS = 8
BATCH = PROMPTS * GENERATIONS


def _config(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "killed.yaml"
    runs = tmp_path / "runs"
    path.write_text(run_config("killed", model, runs, STEPS, probe_every=4, checkpoint_every=2))
    return path


def _selfplay(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "selfplay.cli", "train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 240.0) -> None:
    """SIGKILL ``proc`` the moment ``ready()`` holds (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(
                f"run ended (rc {proc.returncode}) before the kill point:\n{proc.stdout.read()}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kill point never reached")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def killed_twice(tiny, tmp_path_factory):
    """A run killed before its first checkpoint, then mid-checkpoint, then between
    checkpoints, resumed each time, and run to the end."""
    tmp = tmp_path_factory.mktemp("resume")
    path = _config(tmp, tiny[1])
    run_dir = tmp / "runs" / "killed"
    log = []

    # Kill 0: after the first step's transcript, before any checkpoint.
    proc = _selfplay(str(path), cwd=tmp)
    _kill_when(proc, lambda: (run_dir / "transcripts" / "solver-step-000000.parquet").exists())
    log.append(proc.stdout.read())
    # Kill 1: the moment TRL starts writing checkpoint-4 (before it is committed).
    proc = _selfplay(str(path), "--resume", cwd=tmp)
    _kill_when(proc, lambda: (run_dir / "checkpoints" / "checkpoint-4").exists())
    log.append(proc.stdout.read())
    # Kill 2: after step 5's transcript (between checkpoints 4 and 6).
    proc = _selfplay(str(path), "--resume", cwd=tmp)
    _kill_when(proc, lambda: (run_dir / "transcripts" / "solver-step-000005.parquet").exists())
    log.append(proc.stdout.read())
    proc = _selfplay(str(path), "--resume", cwd=tmp)
    out, _ = proc.communicate(timeout=300)
    log.append(out)
    assert proc.returncode == 0, out
    for text in log[1:]:  # which checkpoint each resume started from, for the test log
        print(*(line for line in text.splitlines() if "esuming" in line or "step 0" in line))
    return tmp, path, run_dir, log


def test_resumed_run_keeps_every_step_once(killed_twice):
    from selfplay.transcripts import read_transcripts

    _, _, run_dir, log = killed_twice
    assert "No complete checkpoint" in log[1], log[1]
    assert "Resuming" in log[2] and "Resuming" in log[3], log
    rows = read_transcripts(run_dir)
    assert sorted(rows["step"].unique()) == list(range(STEPS))
    assert (rows.groupby("step").size() == BATCH).all()
    assert len(rows) == STEPS * BATCH
    # Every task the challenger drew was trained on, once, in order: the tasks the data
    # loader had read ahead at a checkpoint were handed out again after the resume.
    draws = [int(t.rsplit("/", 1)[1]) for t in rows.drop_duplicates(["step", "group"])["task_id"]]
    assert draws == list(range(len(draws))), draws
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == STEPS
    assert summary["transcript_rows"] == STEPS * BATCH
    # The killed runs' later steps were set aside, not deleted and not mixed in.
    assert list((run_dir / "discarded").rglob("*.parquet"))
    assert not list((run_dir / "transcripts").glob(".*"))


def test_resumed_metrics_have_no_gap_or_repeat(killed_twice):
    _, _, run_dir, _ = killed_twice
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if "reward" in r]
    assert train_steps == list(range(1, STEPS + 1))
    probe_steps = [r["step"] for r in records if "probe/arithmetic/greedy_mean" in r]
    assert probe_steps == [0, 4, STEPS]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted({p["step"] for p in summary["probes"]}) == [0, 4, STEPS]


def test_old_checkpoints_are_pruned(killed_twice):
    _, _, run_dir, _ = killed_twice
    kept = [step for step, _ in checkpoints(run_dir / "checkpoints")]
    assert kept == [STEPS - 2, STEPS]


def test_finished_run_is_not_resumed(killed_twice):
    from selfplay.train import train

    _, path, run_dir, _ = killed_twice
    before = (run_dir / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="already finished"):
        train(path, resume=True)
    with pytest.raises(ConfigError, match="already exists .*--resume"):
        train(path)
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_resume_with_a_different_config_is_one_line_and_exit_2(killed_twice, tmp_path):
    tmp, _, run_dir, _ = killed_twice
    before = (run_dir / "config.json").read_text()
    other = tmp_path / "killed.yaml"
    other.write_text(
        (tmp / "killed.yaml").read_text().replace("learning_rate: 0.001", "learning_rate: 0.01")
    )
    out = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", str(other), "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds a different config" in lines[0]
    assert "grpo.learning_rate" in lines[0]
    assert (run_dir / "config.json").read_text() == before


def test_resume_without_a_run_names_the_config(tmp_path, tiny):
    from selfplay.train import train

    path = _config(tmp_path, tiny[1])
    with pytest.raises(ConfigError, match="does not exist"):
        train(path, resume=True)
    path.write_text(path.read_text().replace("name: killed\n", ""))
    with pytest.raises(ConfigError, match="no unfinished run of this config"):
        train(path, resume=True)


@pytest.mark.parametrize("key", ["save_steps", "save_strategy", "resume_from_checkpoint"])
def test_trainer_checkpoint_keys_point_to_ours(tmp_path, key):
    from selfplay.train import train

    path = tmp_path / "bad.yaml"
    path.write_text(
        f"envs: {{arithmetic: {{}}}}\nruns_dir: {tmp_path / 'runs'}\ngrpo: {{{key}: 1}}\n"
    )
    with pytest.raises(ConfigError, match=f"grpo.{key}' is set by selfplay"):
        train(path)
    assert not (tmp_path / "runs").exists()


def test_checkpoint_interval_must_fit_generation_buffer(tmp_path):
    from selfplay.train import train

    path = tmp_path / "bad.yaml"
    path.write_text(
        f"envs: {{arithmetic: {{}}}}\nruns_dir: {tmp_path / 'runs'}\n"
        "checkpoint: {every: 3}\ngrpo: {steps_per_generation: 2}\n"
    )
    with pytest.raises(ConfigError, match="checkpoint.every"):
        train(path)


# The pieces, in isolation.


def _fake_checkpoint(folder: Path, step: int, complete: bool) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"x")
    if complete:
        write_json_atomic(path / STATE_FILE, {"step": step})
    return path


def test_latest_checkpoint_skips_uncommitted_and_corrupt(tmp_path):
    _fake_checkpoint(tmp_path, 2, complete=True)
    _fake_checkpoint(tmp_path, 10, complete=True)
    _fake_checkpoint(tmp_path, 12, complete=False)
    corrupt = _fake_checkpoint(tmp_path, 14, complete=False)
    (corrupt / STATE_FILE).write_text('{"step": 1')  # a torn write
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"  # 10 > 2 numerically
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_checkpointer_commits_then_prunes(tmp_path):
    from types import SimpleNamespace

    for step in (2, 4):
        _fake_checkpoint(tmp_path, step, complete=True)
    _fake_checkpoint(tmp_path, 6, complete=False)
    callback = Checkpointer(lambda step: {"step": step, "extra": "x"}, keep=2)
    callback.on_save(
        SimpleNamespace(output_dir=str(tmp_path)),
        SimpleNamespace(global_step=6, is_world_process_zero=True),
        None,
    )
    assert [s for s, _ in checkpoints(tmp_path)] == [4, 6]
    assert json.loads((tmp_path / "checkpoint-6" / STATE_FILE).read_text())["extra"] == "x"


def test_rewind_sets_later_steps_aside_and_cuts_metrics(tmp_path):
    transcripts = tmp_path / "transcripts"
    transcripts.mkdir()
    for step in range(6):
        (transcripts / f"solver-step-{step:06d}.parquet").write_bytes(b"p")
    (transcripts / ".solver-step-000006.parquet.tmp-1").write_bytes(b"torn")
    (tmp_path / "metrics.jsonl").write_text(
        "".join(f'{{"step": {i}}}\n' for i in range(5)) + '{"st'
    )
    _fake_checkpoint(tmp_path / "checkpoints", 4, complete=True)
    _fake_checkpoint(tmp_path / "checkpoints", 6, complete=False)
    undone = rewind(tmp_path, step=4, metrics_lines=3)
    assert sorted(p.name for p in transcripts.iterdir()) == [
        f"solver-step-{s:06d}.parquet" for s in range(4)
    ]
    assert sorted(p.name for p in (tmp_path / "discarded").rglob("*.parquet")) == [
        "solver-step-000004.parquet",
        "solver-step-000005.parquet",
    ]
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == [
        '{"step": 0}',
        '{"step": 1}',
        '{"step": 2}',
    ]
    assert undone == {"transcripts_discarded": 2, "metrics_lines_cut": 3}
    assert [s for s, _ in checkpoints(tmp_path / "checkpoints")] == [4]
