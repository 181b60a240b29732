"""`selfplay export RUN DIR`: a real tiny run as a Hugging Face dataset folder that
``datasets.load_dataset`` reads offline, written whole or not at all; a push without a
network fails on one line and leaves the folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_runs import GENERATIONS, PROMPTS, STEPS, damaged_copy

from selfplay.cli import main
from selfplay.interop import hub
from selfplay.transcripts.schema import COLUMNS, column_meaning, column_meanings

ROWS = STEPS * PROMPTS * GENERATIONS


@pytest.fixture(scope="module")
def run(tiny_grpo_run):
    return tiny_grpo_run


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "tiny"
    assert main(["export", str(run), str(out)]) == 0
    return out


def load(folder, tmp_path, name=None):
    from datasets import load_dataset

    return load_dataset(str(folder), name, split="train", cache_dir=str(tmp_path / "cache"))


def card_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_load_dataset_gives_the_transcripts(run, exported, tmp_path):
    from selfplay.transcripts import read_transcripts

    rows = read_transcripts(run)
    data = load(exported, tmp_path)
    assert data.num_rows == len(rows) == ROWS
    assert data.column_names == list(rows.columns)
    assert sorted(data["task_id"]) == sorted(rows["task_id"])
    assert data.to_pandas()["reward"].sum() == pytest.approx(rows["reward"].sum())


def test_load_dataset_gives_the_metrics_and_evals(run, exported, tmp_path):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    metrics = load(exported, tmp_path, "metrics")
    assert metrics.num_rows == len(records)
    assert metrics["step"] == [r["step"] for r in records]
    assert "accuracy/arithmetic" in metrics.column_names
    assert metrics["reward"] == [r.get("reward") for r in records]
    meta = json.loads((run / "analysis" / "eval-base" / "eval.json").read_text())
    evals = load(exported, tmp_path, "evals")
    assert evals.num_rows == meta["rows"] > 0
    assert set(evals["run"]) == {meta["label"]}


def test_the_card_declares_the_configs_and_names_model_and_counts(run, exported):
    header = card_header(exported)
    configs = {c["config_name"]: c for c in header["configs"]}
    assert list(configs) == ["transcripts", "metrics", "evals"]
    assert configs["transcripts"]["default"] is True
    assert configs["metrics"]["data_files"] == [
        {"split": "train", "path": "data/metrics/*.parquet"}
    ]
    text = (exported / "README.md").read_text()
    config = json.loads((run / "config.json").read_text())
    assert f"- model: `{config['model']}`" in text
    assert f"- transcripts: {ROWS} rows, {STEPS} steps (0 to {STEPS - 1}), 2 envs" in text
    assert "arithmetic (" in text and "modular (" in text
    assert yaml.safe_dump(config, sort_keys=False) in text  # the run's config, whole


def test_the_card_gives_every_column_a_meaning(run, exported):
    from selfplay.transcripts import read_transcripts

    text = (exported / "README.md").read_text()
    for column in read_transcripts(run).columns:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| `{column}` |"))
        meaning = line.rsplit("|", 2)[1].strip()
        assert meaning and meaning == column_meaning(column).replace("|", "\\|"), column
    assert "component 'correct'" in text  # a reward_<component> column, named


def test_every_schema_column_has_a_one_line_meaning():
    meanings = column_meanings()
    assert set(COLUMNS) <= set(meanings)
    assert all(m and "\n" not in m and "``ROLES``" not in m for m in meanings.values())
    assert "solver, eval, challenger, attempt" in meanings["role"]
    assert column_meaning("nothing_here") is None


def test_a_non_empty_folder_is_refused_unless_forced(run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["export", str(run), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"selfplay export: error: {out} exists and is not empty (choose another folder, or --force)"
    ]
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert main(["export", str(run), str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", str(run), str(empty)]) == 0
    assert (empty / "README.md").is_file()


def test_the_run_folder_is_never_the_destination(run, capsys):
    for out in (run / "hf", run, run.parent):
        assert main(["export", str(run), str(out), "--force"]) == 2
        assert "the export must go outside the run folder" in capsys.readouterr().err
    assert not (run / "hf").exists()


def test_a_failed_export_leaves_nothing_half_written(run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the card could not be written")

    monkeypatch.setattr(hub, "dataset_card", broken)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="card could not be written"):
        hub.export(run, out)
    assert list(tmp_path.iterdir()) == []  # no DIR, no temporary folder beside it
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "old.txt").write_text("the last export")
    with pytest.raises(RuntimeError):
        hub.export(run, kept, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert (kept / "old.txt").read_text() == "the last export"


def test_a_killed_export_leaves_no_dir(run, tmp_path):
    out = tmp_path / "killed"
    script = (
        "import os, sys\n"
        "from selfplay.interop import hub\n"
        "def die(*args):\n"
        "    os._exit(9)  # killed after the data files, before the card and the rename\n"
        "hub.dataset_card = die\n"
        "hub.export(sys.argv[1], sys.argv[2])\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(run), str(out)], timeout=120)
    assert done.returncode == 9
    assert not out.exists()
    (left,) = tmp_path.iterdir()  # only the hidden folder it was building
    assert left.name.startswith(".killed.export-") and (left / "data" / "transcripts").is_dir()
    hub.export(run, out)  # the next export clears what the killed one left
    assert [p.name for p in tmp_path.iterdir()] == ["killed"]


def test_a_forced_export_killed_between_its_renames_loses_nothing(run, tmp_path, capsys):
    out = tmp_path / "kept"
    out.mkdir()
    (out / "old.txt").write_text("the last export")
    script = (
        "import os, sys\n"
        "from selfplay.interop import hub\n"
        "real = os.replace\n"
        "def replace(src, dst):\n"
        "    real(src, dst)\n"
        "    if '.replaced-' in str(dst):\n"
        "        os._exit(9)  # the old folder set aside, the new one not yet in place\n"
        "hub.os.replace = replace\n"
        "hub.export(sys.argv[1], sys.argv[2], force=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(run), str(out)], timeout=120)
    assert done.returncode == 9 and not out.exists()
    assert main(["export", str(run), str(out)]) == 2  # the old export is back, so not empty
    assert "not empty" in capsys.readouterr().err
    assert (out / "old.txt").read_text() == "the last export"
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]  # the half-built one is gone


def test_push_without_a_network_fails_on_one_line_and_keeps_the_folder(
    run, tmp_path, capsys, monkeypatch
):
    from huggingface_hub import constants

    # No network here; offline mode makes sure of it wherever the test runs.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "pushed"
    assert main(["export", str(run), str(out), "--push-to-hub", "someone/tiny-run"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "selfplay export: error: --push-to-hub someone/tiny-run: upload failed"
    )
    assert f"the dataset folder {out} is written" in lines[0]
    assert f"{ROWS} transcript rows" in captured.out
    assert load(out, tmp_path).num_rows == ROWS


def test_a_bad_repo_id_is_refused_before_anything_is_written(run, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["export", str(run), str(out), "--push-to-hub", "not a repo//"]) == 2
    assert "--push-to-hub 'not a repo//'" in capsys.readouterr().err
    assert not out.exists()


def test_a_large_run_is_written_in_several_files(run, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "GROUP_BYTES", 1)  # a row group per step
    monkeypatch.setattr(hub, "SHARD_BYTES", 1)  # a file per row group
    out = tmp_path / "sharded"
    counts = hub.export(run, out)
    files = sorted(p.name for p in (out / "data" / "transcripts").iterdir())
    assert files == [f"part-{i:05d}.parquet" for i in range(STEPS)]
    data = load(out, tmp_path)
    assert data.num_rows == counts["transcripts"]["rows"] == ROWS
    assert data["step"] == sorted(data["step"])  # in step order


def test_what_cannot_be_read_is_left_out_and_named(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # the export needs no DuckDB
    copy = damaged_copy(run, tmp_path)
    out = tmp_path / "out"
    assert main(["export", str(copy), str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("selfplay export: warning: ") for line in err)
    assert "truncated last line" in err[0] and f"solver-step-{STEPS - 1:06d}" in err[1]
    assert load(out, tmp_path).num_rows == ROWS - PROMPTS * GENERATIONS
    records = (run / "metrics.jsonl").read_text().splitlines()
    assert load(out, tmp_path, "metrics").num_rows == len(records)
    assert "- left out: skipped 1 corrupt transcript file" in (out / "README.md").read_text()
