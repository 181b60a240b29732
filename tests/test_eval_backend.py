"""`selfplay eval` generates with vLLM when it can, with transformers otherwise, and says why."""

import importlib.machinery
import importlib.util
import json
import sys
import types

import pandas as pd
import pytest

from selfplay.backends import choose_backend
from selfplay.cli import main

RUN = """
model: {model}
envs:
  arithmetic: {{weight: 1, levels: [1, 2]}}
probe: {{max_new_tokens: 16}}
"""

VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None


def _pretend(monkeypatch, *, vllm: bool, gpu: bool) -> None:
    """Make vLLM look installed or not, and a CUDA GPU present or not, to the choice only."""
    import torch

    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "vllm":
            return importlib.machinery.ModuleSpec("vllm", None) if vllm else None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)


@pytest.mark.skipif(VLLM_INSTALLED, reason="vLLM is installed here")
def test_without_vllm_transformers_generates():
    choice = choose_backend()
    assert choice.name == "transformers"
    assert choice.reason.startswith("vLLM not installed")
    assert choice.reason.endswith(": generating with transformers")


@pytest.mark.parametrize(
    ("vllm", "gpu", "name", "reason"),
    [
        (False, True, "transformers", "vLLM not installed: generating with transformers"),
        (True, False, "transformers", "no CUDA GPU: generating with transformers"),
        (False, False, "transformers", "vLLM not installed, no CUDA GPU: generating with"),
        (True, True, "vllm", "vLLM installed and a CUDA GPU present: generating with vLLM"),
    ],
)
def test_the_choice_and_its_reason(monkeypatch, vllm, gpu, name, reason):
    _pretend(monkeypatch, vllm=vllm, gpu=gpu)
    choice = choose_backend()
    assert choice.name == name and choice.reason.startswith(reason)


def test_a_requested_backend(monkeypatch):
    _pretend(monkeypatch, vllm=True, gpu=True)
    assert choose_backend("transformers").name == "transformers"
    assert choose_backend("vllm").name == "vllm"
    _pretend(monkeypatch, vllm=True, gpu=False)
    with pytest.raises(ValueError, match="backend vllm requested but no CUDA GPU"):
        choose_backend("vllm")
    with pytest.raises(ValueError, match="backend must be one of"):
        choose_backend("onnx")


@pytest.fixture(scope="module")
def config(tiny, tmp_path_factory):
    """(organism folder, run config path) of a one-environment run on the tiny organism."""
    path = tmp_path_factory.mktemp("eval_backend") / "run.yaml"
    path.write_text(RUN.format(model=tiny[1]))
    return tiny[1], path


@pytest.mark.skipif(VLLM_INSTALLED, reason="vLLM is installed here")
def test_eval_says_why_it_falls_back(config, tmp_path, capsys):
    model, path = config
    out = tmp_path / "eval"
    args = ["--samples", "2", "--tasks-per-level", "2", "--out", str(out)]
    assert main(["eval", str(model), "--config", str(path), *args]) == 0
    printed = capsys.readouterr().out
    assert "eval: vLLM not installed" in printed and "generating with transformers" in printed
    meta = json.loads((out / "eval.json").read_text())
    assert meta["backend"] == "transformers"
    assert meta["backend_reason"].startswith("vLLM not installed")


class FakeLLM:
    """Stands in for ``vllm.LLM``: records its calls and completes every prompt with the
    token ids of ``COMPLETION`` and an end of sequence, cut at ``max_tokens``."""

    calls: list = []

    def __init__(self, model, seed=None, **kwargs):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        FakeLLM.calls.append(("init", model, seed))

    def generate(self, inputs, params, use_tqdm=True):
        FakeLLM.calls.append(("generate", inputs, params))
        ids = self.tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
        ids = ids + [self.tokenizer.eos_token_id]
        return [
            types.SimpleNamespace(
                outputs=[  # out of order: the caller sorts by index
                    types.SimpleNamespace(index=j, token_ids=ids[: p.max_tokens])
                    for j in reversed(range(p.n))
                ]
            )
            for p in params
        ]


COMPLETION = "<think>5+7=12</think><answer>12</answer>"


def test_the_vllm_path_writes_the_same_rows(config, tmp_path, monkeypatch, capsys):
    """A stand-in vLLM (the real one needs a GPU): the rows have the transformers path's
    structure, and vLLM is driven as documented (token-id prompts, n samples, seeds, stop)."""
    from transformers import AutoTokenizer

    from selfplay.evaluate import read_eval

    model, path = config
    fake = types.ModuleType("vllm")
    fake.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    fake.LLM = FakeLLM
    fake.SamplingParams = lambda **kw: types.SimpleNamespace(**{"n": 1, "seed": None, **kw})
    FakeLLM.calls = []
    args = ["--config", str(path), "--samples", "3", "--tasks-per-level", "2"]
    assert main(["eval", str(model), *args, "--out", str(tmp_path / "hf")]) == 0
    monkeypatch.setitem(sys.modules, "vllm", fake)
    _pretend(monkeypatch, vllm=True, gpu=True)
    assert main(["eval", str(model), *args, "--out", str(tmp_path / "vllm")]) == 0
    assert "eval: vLLM installed and a CUDA GPU present" in capsys.readouterr().out

    meta_hf, rows_hf = read_eval(tmp_path / "hf")
    meta_v, rows_v = read_eval(tmp_path / "vllm")
    assert (meta_hf["backend"], meta_v["backend"]) == ("transformers", "vllm")
    assert list(rows_v.columns) == list(rows_hf.columns)
    keys = ["task_id", "group", "sample", "temperature"]
    pd.testing.assert_frame_equal(rows_v[keys], rows_hf[keys])
    tokenizer = AutoTokenizer.from_pretrained(model)
    ids = tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
    assert set(rows_v["completion"]) == {tokenizer.decode(ids[:16], skip_special_tokens=True)}

    (_, model_path, seed), (_, inputs, greedy), (_, _, sampled) = FakeLLM.calls
    assert model_path == str(model) and seed == meta_v["settings"]["seed"]
    assert len(inputs) == 4 and all(set(x) == {"prompt_token_ids"} for x in inputs)
    assert [(p.n, p.temperature) for p in greedy] == [(1, 0.0)] * 4
    assert [(p.n, p.temperature) for p in sampled] == [(3, 1.0)] * 4
    assert [p.seed for p in sampled] == [seed + 3 * i for i in range(4)]
    assert all(p.stop_token_ids == [tokenizer.eos_token_id] for p in greedy + sampled)
    assert all(p.max_tokens == 16 for p in greedy + sampled)  # probe.max_new_tokens
