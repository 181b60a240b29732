"""The organism folder survives a kill at any point, and a bad organism config is refused
before anything is trained or written (issue 16)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from selfplay.cli import main
from selfplay.config import load_config
from selfplay.organism.pretrain import RESULT_FILE, OrganismConfig, organism_dir, pretrain

TINIEST = """
name: tiniest
corpus:
  envs:
    arithmetic: {levels: [1]}
model: {hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32, max_positions: 64}
train: {steps: 3, batch_size: 2, seq_len: 32, warmup_steps: 1, learning_rate: 0.01, seed: 3}
eval: {tasks_per_level: 1, max_new_tokens: 4}
"""

NAN, INF = float("nan"), float("inf")

# Keys set over TINIEST, and the words the one-line error must hold.
BAD = [
    ({"model": {"num_heads": 0}}, "model.num_heads must be at least 1"),
    ({"model": {"hidden_size": -16}}, "model.hidden_size must be at least 1"),
    ({"model": {"num_layers": 0}}, "model.num_layers must be at least 1"),
    ({"model": {"intermediate_size": 0}}, "model.intermediate_size must be at least 1"),
    ({"model": {"max_positions": 0}}, "model.max_positions must be at least 1"),
    ({"model": {"hidden_size": 17}}, "not divisible by model.num_heads"),
    ({"model": {"hidden_size": 12, "num_heads": 4}}, "must be even"),
    ({"model": {"max_positions": 16}}, "train.seq_len 32 exceeds model.max_positions 16"),
    ({"train": {"steps": 0, "warmup_steps": 0}}, "train.steps must be at least 1"),
    ({"train": {"batch_size": 0}}, "train.batch_size must be at least 1"),
    ({"train": {"seq_len": 0}}, "train.seq_len must be at least 1"),
    ({"train": {"learning_rate": 0}}, "train.learning_rate must be a positive number"),
    ({"train": {"learning_rate": -0.1}}, "train.learning_rate must be a positive number"),
    ({"train": {"learning_rate": NAN}}, "train.learning_rate"),
    ({"train": {"learning_rate": INF}}, "train.learning_rate"),
    ({"train": {"warmup_steps": -1}}, "train.warmup_steps must be at least 0"),
    ({"train": {"warmup_steps": 4}}, "train.warmup_steps 4 exceeds train.steps 3"),
    ({"train": {"weight_decay": -0.1}}, "train.weight_decay must be"),
    ({"train": {"weight_decay": NAN}}, "train.weight_decay"),
    ({"train": {"threads": -1}}, "train.threads must be at least 0"),
    ({"eval": {"tasks_per_level": 0}}, "eval.tasks_per_level must be at least 1"),
    ({"eval": {"max_new_tokens": 0}}, "eval.max_new_tokens must be at least 1"),
    ({"eval": {"max_new_tokens": 64}}, "eval.max_new_tokens 64 must be less than"),
    ({"corpus": {"clarify_rate": 1.5}}, "corpus.clarify_rate must be in [0, 1]"),
    ({"corpus": {"verifier_rate": NAN}}, "corpus.verifier_rate"),
    ({"corpus": {"envs": {"arithmetic": {"levels": [1], "weight": INF}}}}, "arithmetic.weight"),
    ({"name": "../escape"}, "name must be"),
    ({"name": ""}, "name must be"),
]


def with_keys(keys: dict) -> str:
    """TINIEST with ``keys`` set (one level deep) as YAML text."""
    import yaml

    config = yaml.safe_load(TINIEST)
    for section, value in keys.items():
        if isinstance(value, dict):
            config[section].update(value)
        else:
            config[section] = value
    return yaml.safe_dump(config)


@pytest.mark.parametrize("keys,words", BAD, ids=[str(keys) for keys, _ in BAD])
def test_bad_organism_config_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, keys, words):
    path = tmp_path / "bad.yaml"
    path.write_text(with_keys(keys))
    models = tmp_path / "models"
    assert main(["pretrain", str(path), "--models-dir", str(models)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: " in err and words in err, err
    assert not models.exists()


def test_dataclasses_refuse_non_finite_numbers_themselves():
    """The checks hold for configs built in Python too, not only through YAML loading."""
    from selfplay.organism.corpus import CorpusConfig, EnvRecipe
    from selfplay.organism.pretrain import TrainConfig

    with pytest.raises(ValueError, match="train.learning_rate must be a positive number"):
        TrainConfig(learning_rate=NAN)
    with pytest.raises(ValueError, match="train.weight_decay must be"):
        TrainConfig(weight_decay=INF)
    with pytest.raises(ValueError, match="corpus.envs.arithmetic.weight must be a positive"):
        CorpusConfig(envs={"arithmetic": EnvRecipe(levels=[1], weight=NAN)})


def test_shipped_organism_configs_are_valid():
    from pathlib import Path

    for name in ("organism", "organism_confidence", "organism_selfplay", "verifier"):
        load_config(Path(__file__).parents[1] / f"configs/{name}.yaml", OrganismConfig)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config path, organism folder) of a 3-step organism: the one every kill test replaces."""
    root = tmp_path_factory.mktemp("tiniest")
    path = root / "tiniest.yaml"
    path.write_text(TINIEST)
    return path, pretrain(path, root=root / "models")


@pytest.fixture
def copy(trained, tmp_path):
    """A private copy of ``trained``: (config path, organism folder) under ``tmp_path``."""
    path, out = trained
    models = tmp_path / "models"
    shutil.copytree(out, models / out.name)
    return path, models / out.name


# A `pretrain --force` in a child process that dies (os._exit) at one point of saving.
KILLED = textwrap.dedent(
    """
    import os, shutil, sys
    from pathlib import Path

    from selfplay.config import load_config
    from selfplay.organism import pretrain as p
    from selfplay.organism import tokenizer as t

    point, path, root = sys.argv[1:]
    out = p.organism_dir(load_config(path, p.OrganismConfig), root)
    replace, rmtree, build = os.replace, shutil.rmtree, t.build_tokenizer

    def die():
        sys.stdout.flush()
        os._exit(9)

    def killing_replace(src, dst):
        if point == "before-swap" and out in (Path(src), Path(dst)):
            die()
        replace(src, dst)
        if (point == "aside" and Path(src) == out) or (point == "swapped" and Path(dst) == out):
            die()

    def killing_rmtree(target, *args, **kwargs):
        target = Path(target)
        # The old folder, under its own name or renamed aside: die half way through deleting it.
        if point == "deleting" and target.name.startswith((out.name, "." + out.name)):
            if (target / "tokenizer.json").exists():
                os.remove(target / "tokenizer.json")
                die()
        rmtree(target, *args, **kwargs)

    def dying_tokenizer():
        tokenizer = build()
        if point == "saving":
            tokenizer.save_pretrained = lambda *a, **k: die()
        return tokenizer

    def failing_evaluate(*args, **kwargs):
        raise RuntimeError("evaluation crashed")

    os.replace, shutil.rmtree, t.build_tokenizer = killing_replace, killing_rmtree, dying_tokenizer
    if point == "evaluating":
        import selfplay.organism.accuracy as accuracy
        accuracy.evaluate = failing_evaluate
    p.pretrain(path, root=root, force=True)
    """
)


def kill_pretrain(point: str, path, out) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-c", KILLED, point, str(path), str(out.parent)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return run


def printed_pretrain(path, root) -> str:
    """``pretrain(path, root)`` (no --force); what it printed, unwrapped."""
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=10_000)
    pretrain(path, root=root, console=console)
    return console.file.getvalue()


def assert_loadable(out) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(out)
    AutoModelForCausalLM.from_pretrained(out)
    assert "eval" in json.loads((out / RESULT_FILE).read_text())
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers


@pytest.mark.parametrize(
    "point,trains",
    [
        ("saving", False),  # the new folder half written: the old one is untouched
        ("before-swap", False),  # the new folder complete, not yet renamed in
        ("aside", False),  # the old folder renamed aside, the new not yet in: the old comes back
        ("swapped", False),  # the new folder in place, the old one not yet deleted
        ("deleting", False),  # killed while deleting the old folder
    ],
)
def test_killed_force_retrain_never_leaves_a_broken_organism(copy, point, trains):
    path, out = copy
    stamp = json.loads((out / RESULT_FILE).read_text())
    run = kill_pretrain(point, path, out)
    assert run.returncode == 9, run.stdout + run.stderr
    printed = printed_pretrain(path, out.parent)
    assert ("Pretraining organism" in printed) == trains, printed
    assert "Reusing organism" in printed
    assert_loadable(out)
    if point in ("saving", "before-swap", "aside"):
        assert json.loads((out / RESULT_FILE).read_text()) == stamp, "the old organism is kept"
    if point == "aside":
        assert "Restored" in printed


def test_folder_with_missing_files_is_not_reused(copy):
    """What the old save left when killed while deleting the old folder: organism.json
    without tokenizer files. It is trained again, not reused."""
    path, out = copy
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (out / name).unlink()
    printed = printed_pretrain(path, out.parent)
    assert "Reusing organism" not in printed
    assert f"Organism {out} is incomplete" in printed and "tokenizer" in printed, printed
    assert_loadable(out)


def test_truncated_file_is_not_reused(copy):
    path, out = copy
    (out / "model.safetensors").write_bytes(b"")
    assert "is incomplete" in printed_pretrain(path, out.parent)
    assert_loadable(out)


def test_weights_are_saved_before_evaluation(trained, tmp_path):
    """A crash in evaluation keeps the trained weights; the next run reuses them and only
    evaluates."""
    path, _ = trained
    out = organism_dir(load_config(path, OrganismConfig), tmp_path / "models")
    run = kill_pretrain("evaluating", path, out)
    assert run.returncode == 1 and "evaluation crashed" in run.stderr, run.stderr
    assert (out / "model.safetensors").is_file()
    printed = printed_pretrain(path, out.parent)
    assert "Pretraining organism" not in printed and "Reusing organism" in printed, printed
    assert_loadable(out)


def test_stale_scratch_folders_of_dead_runs_go_live_ones_stay(copy):
    path, out = copy
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    host = socket.gethostname()
    try:
        stale = [
            f".{out.name}.tmp-{dead}",  # as the old code named them
            f".{out.name}.tmp-{host}-{dead}",
            f".{out.name}.old-{host}-{dead}",
        ]
        kept = [f".{out.name}.tmp-{host}-{live.pid}", f".{out.name}.tmp-otherhost-{dead}"]
        for name in stale + kept:
            (out.parent / name).mkdir()
            (out.parent / name / "config.json").write_text("{}")
        assert "Reusing organism" in printed_pretrain(path, out.parent)
        left = sorted(p.name for p in out.parent.iterdir() if p.name.startswith("."))
        assert left == sorted(kept)
    finally:
        live.kill()
        live.wait()
    assert os.path.isdir(out)
