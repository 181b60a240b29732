"""The fast sampler (selfplay.decode) draws what transformers' generate draws, token for token."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from selfplay.decode import Sampler, unsupported, uses_fast
from selfplay.errors import ConfigError

PROMPTS = ["Compute 12+34.", "What is 7*8 minus 3?", "Hi", "Solve: 5+5=", "x"] * 3

OPTIONS = {
    "plain": {},
    "temperature": {"temperature": 0.7},
    "top_k": {"temperature": 1.3, "top_k": 5},
    "top_p": {"top_p": 0.8},
    "min_p": {"min_p": 0.2},
    "greedy": {"do_sample": False},
}


@pytest.fixture(scope="module")
def organism(tiny):
    from selfplay.models import load_model

    model, tokenizer = load_model(tiny[1])
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def grouped():
    """A random two-layer model with grouped key/value heads (as larger Llamas have)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfplay.organism.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


def _both(model, tokenizer, options: dict, seed: int, max_new_tokens: int = 40):
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    sampling = {"do_sample": True, "top_k": 0, "top_p": 1.0, **options}
    torch.manual_seed(seed)
    with torch.no_grad():
        want = model.generate(
            **batch, max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad, **sampling
        )
    torch.manual_seed(seed)
    got = Sampler(model).generate(
        batch["input_ids"],
        batch["attention_mask"],
        max_new_tokens=max_new_tokens,
        eos_token_id=eos,
        pad_token_id=pad,
        **sampling,
    )
    return got, want


@pytest.mark.parametrize("name", sorted(OPTIONS))
@pytest.mark.parametrize("which", ["organism", "grouped"])
def test_same_tokens_as_generate(name, which, request):
    model, tokenizer = request.getfixturevalue(which)
    assert tokenizer.padding_side == "left"
    for seed in range(3):
        got, want = _both(model, tokenizer, OPTIONS[name], seed)
        assert got.shape == want.shape, f"seed {seed}"
        assert torch.equal(got, want), (
            f"seed {seed}: first difference at {(got != want).nonzero()[0]}"
        )


def test_the_comparison_can_tell(organism):
    """Different seeds draw different tokens, and the trained organism ends some rows early:
    the equality above compares real samples, padding after EOS included."""
    model, tokenizer = organism
    a, _ = _both(model, tokenizer, {}, seed=0)
    b, _ = _both(model, tokenizer, {}, seed=1)
    assert not torch.equal(a, b)
    assert (a[:, -1] == tokenizer.pad_token_id).any()


def test_follows_the_weights(organism):
    """One sampler reads the model's parameters on every call, so it samples the policy as the
    optimizer leaves it: after a change of weights it still agrees with ``generate``."""
    model, tokenizer = organism
    sampler = Sampler(model)
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    args = dict(max_new_tokens=12, eos_token_id=[], pad_token_id=0, do_sample=False)
    before = sampler.generate(batch["input_ids"], batch["attention_mask"], **args)
    weight = model.model.layers[0].mlp.down_proj.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.mul_(-4.0)
        after = sampler.generate(batch["input_ids"], batch["attention_mask"], **args)
        want = model.generate(**batch, **{**args, "eos_token_id": None})
        weight.copy_(saved)
    assert not torch.equal(before, after)
    assert torch.equal(after, want)


def test_right_padding_is_refused(organism):
    model, tokenizer = organism
    ids = torch.tensor([[5, 6, 0], [5, 6, 7]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match="left-padded"):
        Sampler(model).generate(ids, mask, max_new_tokens=2, eos_token_id=2, pad_token_id=0)


def _model(**config):
    base = {"model_type": "llama", "hidden_act": "silu", "rope_scaling": None}
    return SimpleNamespace(config=SimpleNamespace(**{**base, **config}))


def test_unsupported_names_the_reason():
    assert unsupported(_model()) == ""
    assert "gpt2" in unsupported(_model(model_type="gpt2"))
    assert "rope scaling" in unsupported(_model(rope_scaling={"rope_type": "linear"}))
    assert "biases" in unsupported(_model(attention_bias=True))
    assert unsupported(_model(), {"repetition_penalty": 1.0, "top_k": 0, "min_p": None}) == ""
    assert "repetition_penalty" in unsupported(_model(), {"repetition_penalty": 1.2})
    assert "no_repeat_ngram_size" in unsupported(_model(), {"no_repeat_ngram_size": 3})
    with pytest.raises(ValueError, match="gpt2"):
        Sampler(_model(model_type="gpt2"))


def _args(**extra):
    base = dict(
        use_vllm=False,
        use_cpu=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        min_p=None,
        repetition_penalty=1.0,
        cache_implementation=None,
        generation_kwargs=None,
    )
    return SimpleNamespace(**{**base, **extra})


def test_uses_fast():
    llama = _model().config
    assert uses_fast("auto", llama, _args())
    assert uses_fast("fast", llama, _args())
    assert not uses_fast("hf", llama, _args())
    assert not uses_fast("auto", llama, _args(use_vllm=True))
    assert not uses_fast("auto", llama, _args(use_cpu=False))  # a GPU generates with generate
    assert not uses_fast("auto", llama, _args(repetition_penalty=1.1))
    assert not uses_fast("auto", _model(model_type="qwen2").config, _args())
    with pytest.raises(ValueError, match="vLLM"):
        uses_fast("fast", llama, _args(use_vllm=True))
    with pytest.raises(ValueError, match="GPU"):
        uses_fast("fast", llama, _args(use_cpu=False))
    with pytest.raises(ValueError, match="repetition_penalty"):
        uses_fast("fast", llama, _args(repetition_penalty=1.1))
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        uses_fast("fast", llama, _args(generation_kwargs={"no_repeat_ngram_size": 2}))


RUN = """
name: {name}
model: {model}
runs_dir: {runs}
sampler: {sampler}
envs:
  arithmetic: {{levels: [1]}}
  modular: {{levels: [1]}}
probe: {{every: 0, tasks_per_level: 2, max_new_tokens: 16}}
checkpoint: {{every: 0}}
grpo: {{max_steps: 3, num_generations: 4, per_device_train_batch_size: 8,
        max_completion_length: 24, learning_rate: 0.01{extra}}}
"""


def test_bad_sampler_is_one_line_before_anything_is_written(tiny, tmp_path):
    from selfplay.train import train

    runs = tmp_path / "runs"
    bogus = tmp_path / "bogus.yaml"
    bogus.write_text(RUN.format(name="b", model=tiny[1], runs=runs, sampler="turbo", extra=""))
    with pytest.raises(ConfigError, match="sampler must be one of auto, fast, hf, got 'turbo'"):
        train(bogus)
    fast = tmp_path / "fast.yaml"
    extra = ", repetition_penalty: 1.2"
    fast.write_text(RUN.format(name="f", model=tiny[1], runs=runs, sampler="fast", extra=extra))
    with pytest.raises(ConfigError, match=r"key 'sampler': .*repetition_penalty=1\.2"):
        train(fast)
    assert not runs.exists()


def test_fast_and_hf_runs_are_the_same(tiny, tmp_path):
    """A GRPO run through TRL with the fast sampler (a rollout function) and with TRL's own
    ``generate`` path: the same completions, rewards and advantages."""
    from selfplay.train import train
    from selfplay.transcripts import read_transcripts

    tables = {}
    for sampler in ("fast", "hf"):
        path = tmp_path / f"{sampler}.yaml"
        path.write_text(
            RUN.format(
                name=sampler, model=tiny[1], runs=tmp_path / "runs", sampler=sampler, extra=""
            )
        )
        tables[sampler] = read_transcripts(train(path))
    fast, hf = tables["fast"], tables["hf"]
    assert len(fast) == 24
    for column in ("prompt", "completion", "reward", "advantage", "completion_tokens"):
        assert fast[column].tolist() == hf[column].tolist(), column


def test_bf16_generate_casts_once_with_the_same_tokens(tiny, tmp_path, monkeypatch):
    """A bf16 run generating with ``generate`` goes through our rollout function, one autocast
    region a call (``cast_once``), and samples what TRL's own path samples."""
    import selfplay.train as train_module
    from selfplay.decode import casts_once, fast_rollout
    from selfplay.transcripts import read_transcripts

    used = []

    def spy(sampler, model, args):
        rollout = fast_rollout(sampler, model, args)
        used.append((casts_once(args), rollout is not None))
        return rollout

    tables = {}
    for name, rollout in (("ours", spy), ("trl", lambda *args: None)):
        monkeypatch.setattr(train_module, "fast_rollout", rollout)
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            RUN.format(name=name, model=tiny[1], runs=tmp_path / "runs", sampler="hf", extra="")
            + "precision: bf16\n"
        )
        tables[name] = read_transcripts(train_module.train(path))
    assert used == [(True, True)]
    ours, trl = tables["ours"], tables["trl"]
    assert len(ours) == 24
    for column in ("prompt", "completion", "reward", "advantage", "completion_tokens"):
        assert ours[column].tolist() == trl[column].tolist(), column


@pytest.fixture(scope="module")
def tiny_gemma(tiny, tmp_path_factory):
    """A random two-layer Gemma 3 (not Llama-shaped, so it generates with ``generate``) with
    the tiny organism's tokenizer, saved as a model folder."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny[1])
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        sliding_window=16,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("gemma")
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_bf16_gemma_run_casts_once_with_the_same_results(tiny_gemma, tmp_path, monkeypatch):
    """A bf16 run of a model that generates with ``generate``: its GRPO completions and its
    probes (both through ``generate``, one autocast region a call) are those of a run that
    casts per token, as TRL and the probes did before."""
    import contextlib
    import json

    import selfplay.decode as decode
    import selfplay.train as train_module
    from selfplay.transcripts import read_transcripts

    runs = {}
    for name in ("once", "per_token"):
        if name == "per_token":
            monkeypatch.setattr(train_module, "fast_rollout", lambda *args: None)
            monkeypatch.setattr(decode, "cast_once", lambda args: contextlib.nullcontext())
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            RUN.format(
                name=name, model=tiny_gemma, runs=tmp_path / "runs", sampler="auto", extra=""
            )
            + "precision: bf16\n"
        )
        runs[name] = train_module.train(path)
    once, per_token = (read_transcripts(runs[n]) for n in ("once", "per_token"))
    assert len(once) == 24 and once["completion_tokens"].sum() > 24
    for column in ("prompt", "completion", "reward", "advantage", "completion_tokens"):
        assert once[column].tolist() == per_token[column].tolist(), column
    probes = {n: json.loads((runs[n] / "summary.json").read_text())["probes"] for n in runs}
    assert {p["step"] for p in probes["once"]} == {0, 3}  # before and after training
    assert probes["once"] == probes["per_token"]


def test_casts_once_only_for_bf16_on_the_cpu():
    from selfplay.decode import casts_once

    def args(**kw):
        return SimpleNamespace(**{"bf16": True, "use_cpu": True, "use_vllm": False, **kw})

    assert casts_once(args())
    assert not casts_once(args(bf16=False))
    assert not casts_once(args(use_cpu=False))
    assert not casts_once(args(use_vllm=True))


def test_non_finite_logits_fail_loud(organism):
    """A model whose logits became NaN stops the sampler, as it stops ``multinomial``."""
    model, tokenizer = organism
    batch = tokenizer(PROMPTS[:2], return_tensors="pt", padding=True, add_special_tokens=False)
    saved = model.model.norm.weight.detach().clone()
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    try:
        with pytest.raises(RuntimeError, match="inf or nan"):
            Sampler(model).generate(
                batch["input_ids"],
                batch["attention_mask"],
                max_new_tokens=4,
                eos_token_id=2,
                pad_token_id=0,
            )
    finally:
        with torch.no_grad():
            model.model.norm.weight.copy_(saved)
