"""The command line: subcommands listed, user errors are one line with exit status 2."""

import subprocess
import sys

import pytest

from selfplay.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "selfplay.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_subcommands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("envs", "pretrain", "sample"):
        assert command in result.stdout


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; from selfplay.cli import build_parser; build_parser(); import envs, rewards; print('torch' in sys.modules, 'trl' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False False", result.stderr


def test_envs_lists_every_builtin_with_a_sample():
    result = run("envs")
    assert result.returncode == 0, result.stderr
    for name in ("arithmetic", "countdown", "modular", "clarify"):
        assert name in result.stdout
    assert result.stdout.count("prompt:") >= 4 and result.stdout.count("target:") >= 4


@pytest.mark.parametrize(
    "args,message",
    [
        (["pretrain", "missing.yaml"], "missing.yaml: config file not found"),
        (["sample", "/no/such/model"], "no such model folder"),
        (["sample", "some-org/some-model-that-is-not-here"], "could not be loaded"),
        (["sample", "tests", "--env", "nosuch"], "unknown environment 'nosuch'"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_key_in_config_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("corpus:\n  envs:\n    arithmetic: {levels: [1]}\ntrain:\n  stepz: 3\n")
    assert main(["pretrain", str(path), "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: unknown key 'train.stepz'" in err and "Traceback" not in err
    assert not any(tmp_path.glob("organism-*")), "a failed config must not create an output folder"


@pytest.mark.parametrize(
    "body,message",
    [
        ("model: /no/such/model\nenvs: {arithmetic: {}}\n", "no such model folder"),
        ("model: /no/such/model\nenvs: {nosuch: {}}\n", "key 'envs.nosuch'"),
        ("model: /no/such/model\nenvs: {arithmetic: {levelz: [1]}}\n", "envs.arithmetic.levelz"),
        ("model: /no/such/model\nenvs: {arithmetic: {}}\ncheckpoint: {keep: 0}\n", "keep"),
        (
            "model: /no/such/model\nenvs: {arithmetic: {}}\nrewards: {weights: {corect: 1}}\n",
            "rewards.weights: unknown component 'corect'",
        ),
        (
            "model: /no/such/model\nenvs: {arithmetic: {}}\nrewards: {weights: {correct: 0}}\n",
            "every weight is zero",
        ),
        (
            "model: /no/such/model\nenvs: {arithmetic: {}}\nrewards: {control: coin}\n",
            "rewards.control must be one of",
        ),
    ],
)
def test_train_user_errors_are_one_line_and_create_nothing(tmp_path, capsys, body, message):
    path = tmp_path / "run.yaml"
    path.write_text(body + f"runs_dir: {tmp_path / 'runs'}\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
