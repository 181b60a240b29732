"""The GPU memory preflight: its arithmetic by hand, its advice, and against real tensors."""

import dataclasses

import pytest

from selfplay.preflight import (
    TRL_DEFAULTS,
    GiB,
    PreflightError,
    check,
    estimate,
    format_estimate,
    grpo_settings,
    model_shape,
)

# A config small enough to check by hand: h 8, 2 layers, 2 heads of 4 (q = 8), 1 kv head
# (kv = 4), MLP 16, vocabulary 32, tied embeddings.
TINY = {
    "model_type": "llama",
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 4,
    "intermediate_size": 16,
    "vocab_size": 32,
    "tie_word_embeddings": True,
    "max_position_embeddings": 64,
}
# float32 throughout, B 4, C 6, prompts of 10 tokens: S 16, B S 64 tokens.
TINY_RUN = {
    "per_device_train_batch_size": 4,
    "num_generations": 2,
    "max_completion_length": 6,
    "bf16": False,
    "gradient_checkpointing": False,
    "beta": 0.1,
}

QWEN_05B = {  # Qwen2.5-0.5B's config.json
    "model_type": "qwen2",
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
}


def test_each_term_by_hand():
    est = estimate(TINY, TINY_RUN, prompt_length=10, fused_lm_head=True)
    # per layer: q 8*8 + k,v 2*8*4 + o 8*8 + MLP 3*8*16 + 2 norms of 8 = 592; 2 layers 1184;
    # embedding 32*8 = 256 (tied head), final norm 8: P = 1448
    assert est.shape.params == 1448
    assert est["weights"] == 1448 * 4 == 5792
    assert est["optimizer"] == 2 * 1448 * 4 == 11584  # Adam's two float32 moments
    assert est["reference"] == 5792  # beta > 0
    assert est["gradients"] == 5792
    assert est["autocast_copies"] == 0  # float32: no autocast
    # layer: 2 norms (4+4)*8*2 = 128, linear inputs 2*8*4 = 64, attention 5*8*4 = 160,
    # MLP 4*16*4 = 256: 608 B/token; rest: final norm 8*8 + head input 8*4 = 96;
    # no checkpointing: (2+1)*608 + 96 = 1920 B/token, x 64 tokens
    assert est["activations"] == 64 * 1920 == 122880
    # fused head: tile min(4*6, 4096) x min(32, 32768) x 4 = 3072, head weight grad 32*8*4 =
    # 1024, input grad 24*8*4 = 768
    assert est["logits"] == 3072 + 1024 + 768
    # generation (transformers): G = 4, KV 2 L kv w G S = 2*2*4*4*4*16
    assert est["kv_cache"] == 4096
    # G V 4 x 2 = 1024, prefill 4*10*(16 + 8 + 8 + 48)*4 = 12800
    assert est["generation_work"] == 1024 + 12800
    assert est.peak == est.phase("static") + est.phase("train")
    assert est.peak_phase == "train"


def test_checkpointing_and_unfused_logits_by_hand():
    run = {**TINY_RUN, "gradient_checkpointing": True}
    est = estimate(TINY, run, prompt_length=10, fused_lm_head=False)
    # L h w + 2 layer + rest = 2*8*4 + 2*608 + 96 = 1376 B/token
    assert est["activations"] == 64 * 1376
    # float32 logits and their gradient: 2 B (C+1) V 4
    assert est["logits"] == 2 * 4 * 7 * 32 * 4


def test_bf16_is_autocast_over_float32_weights():
    est = estimate(TINY, {**TINY_RUN, "bf16": True}, prompt_length=10)
    assert est["weights"] == 1448 * 4  # the weights stay float32 (master weights)
    assert est["autocast_copies"] == 1184 * 2  # 16-bit copies of the decoder weights
    bf16_weights = {**TINY_RUN, "model_init_kwargs": {"dtype": "bfloat16"}}
    est = estimate(TINY, bf16_weights, prompt_length=10)
    assert est["weights"] == est["gradients"] == 1448 * 2
    assert est["optimizer"] == 2 * 1448 * 2  # torch's Adam keeps moments in the param dtype


@pytest.mark.parametrize("key", ["per_device_train_batch_size", "max_completion_length"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_more_batch_or_length_needs_more_memory(key, checkpointing):
    run = {"gradient_checkpointing": checkpointing, "num_generations": 8}
    peaks = [estimate(QWEN_05B, {**run, key: n}).peak for n in (8, 16, 32, 64)]
    assert peaks == sorted(peaks) and len(set(peaks)) == 4


def test_checkpointing_saves_memory():
    run = {"per_device_train_batch_size": 32}
    with_gc = estimate(QWEN_05B, {**run, "gradient_checkpointing": True})
    without = estimate(QWEN_05B, {**run, "gradient_checkpointing": False})
    assert with_gc["activations"] * 5 < without["activations"]


def test_qwen_0_5b_shape():
    est = estimate(QWEN_05B, {"model_init_kwargs": {"dtype": "bfloat16"}})
    assert est.shape.params == 494_032_768  # "0.49B" on the model card
    assert est["weights"] == 988_065_536  # bf16: 0.99 GB
    assert estimate(QWEN_05B, {})["weights"] == 4 * 494_032_768  # float32 by default


@pytest.mark.parametrize(
    "config",
    [
        dict(TINY),
        {**TINY, "tie_word_embeddings": False, "attention_bias": True, "mlp_bias": True},
        QWEN_05B,
        {**QWEN_05B, "model_type": "qwen3", "head_dim": 128, "tie_word_embeddings": False},
        {**TINY, "model_type": "gemma3_text", "head_dim": 8},
    ],
    ids=["llama", "llama-untied-biases", "qwen2.5-0.5b", "qwen3", "gemma3"],
)
def test_parameter_count_matches_transformers(config):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kind = config["model_type"]
    cfg = AutoConfig.for_model(kind, **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    assert model_shape(cfg).params == sum(p.numel() for p in model.parameters())


def test_grpo_config_reads_like_its_dict(tmp_path):
    import warnings

    from trl import GRPOConfig

    options = {**TINY_RUN, "use_vllm": True, "vllm_gpu_memory_utilization": 0.4}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, **options)
    assert grpo_settings(args, 10) == grpo_settings(options, 10)
    # the defaults a dict falls back on are TRL's
    defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    for name, value in TRL_DEFAULTS.items():
        assert getattr(defaults[name], "value", defaults[name]) == value, name


def test_check_returns_the_estimate_when_it_fits():
    est = check(QWEN_05B, {"per_device_train_batch_size": 8}, 80 * GiB)
    assert est.fits and est.peak < est.usable == int(80 * GiB * 0.9)


def _fits_after(error, config, run, total):
    """Every fix in the error, applied alone to ``run``, passes ``check``."""
    assert error.fixes
    for fix in error.fixes:
        assert check(config, {**run, **fix.changes}, total).peak == fix.peak


def test_error_names_checkpointing_and_the_fix_works():
    run = {"per_device_train_batch_size": 64, "max_completion_length": 512}
    run["gradient_checkpointing"] = False
    with pytest.raises(PreflightError) as caught:
        check(QWEN_05B, run, 24 * GiB)
    message = str(caught.value)
    assert "\n" not in message and "largest: activations" in message
    assert "set grpo.gradient_checkpointing: true" in message
    assert caught.value.fixes[0].changes == {"gradient_checkpointing": True}
    assert isinstance(caught.value, ValueError)
    _fits_after(caught.value, QWEN_05B, run, 24 * GiB)


def test_the_fix_names_the_option_the_run_uses():
    run = {"per_device_train_batch_size": 64, "activation_checkpointing": False}
    with pytest.raises(PreflightError) as caught:
        check(QWEN_05B, run, 24 * GiB)
    assert "set grpo.activation_checkpointing: true" in str(caught.value)
    assert caught.value.fixes[0].changes == {"activation_checkpointing": True}
    _fits_after(caught.value, QWEN_05B, run, 24 * GiB)


def test_error_suggests_a_smaller_batch():
    run = {"per_device_train_batch_size": 512, "max_completion_length": 1024}
    with pytest.raises(PreflightError) as caught:
        check(QWEN_05B, run, 40 * GiB)
    (fix,) = caught.value.fixes
    batch = fix.changes["per_device_train_batch_size"]
    assert f"lower grpo.per_device_train_batch_size to {batch}" in str(caught.value)
    assert batch % 8 == 0 and batch < 512  # a multiple of num_generations
    with pytest.raises(PreflightError):  # the largest batch that fits
        check(QWEN_05B, {**run, "per_device_train_batch_size": batch + 8}, 40 * GiB)
    _fits_after(caught.value, QWEN_05B, run, 40 * GiB)


def test_colocated_vllm_share_too_large():
    run = {"use_vllm": True, "vllm_gpu_memory_utilization": 0.9, "per_device_train_batch_size": 16}
    with pytest.raises(PreflightError) as caught:
        check(QWEN_05B, run, 24 * GiB)
    message = str(caught.value)
    assert "largest: vllm" in message
    assert "lower grpo.vllm_gpu_memory_utilization to 0.3" in message  # 0.39
    assert "use grpo.vllm_mode: server" in message
    _fits_after(caught.value, QWEN_05B, run, 24 * GiB)


def test_colocated_vllm_share_too_small():
    run = {"use_vllm": True, "vllm_gpu_memory_utilization": 0.05, "per_device_train_batch_size": 16}
    with pytest.raises(PreflightError) as caught:
        check(QWEN_05B, run, 24 * GiB)
    message = str(caught.value)
    assert "vLLM would refuse to start" in message and "32768-token" in message
    assert "raise grpo.vllm_gpu_memory_utilization to 0.10" in message
    _fits_after(caught.value, QWEN_05B, run, 24 * GiB)
    # the KV cache of one 32768-token sequence: 2 L kv 2 B x 32768
    assert caught.value.estimate["vllm_kv_one_sequence"] == 2 * 24 * 128 * 2 * 32768


def test_the_qwen_vllm_recipe():
    """configs/qwen2.5_0.5b_vllm.yaml: fits an 80 GB GPU; on 16 GB only a combination does."""
    from pathlib import Path

    from selfplay.config.grpo import GRPO_DEFAULTS
    from selfplay.config.load import load_run_config

    recipe = Path(__file__).parents[1] / "configs" / "qwen2.5_0.5b_vllm.yaml"
    run = {**GRPO_DEFAULTS, **load_run_config(recipe).grpo}
    assert check(QWEN_05B, run, 80 * GiB, prompt_length=200).peak < 40 * GiB
    with pytest.raises(PreflightError) as caught:
        check(QWEN_05B, run, 16 * GiB, prompt_length=200)
    (fix,) = caught.value.fixes
    assert fix.text == (
        "set grpo.vllm_enable_sleep_mode: true and lower grpo.per_device_train_batch_size to 24"
    )
    assert check(QWEN_05B, {**run, **fix.changes}, 16 * GiB, prompt_length=200).fits


def test_a_model_too_big_for_the_gpu():
    with pytest.raises(PreflightError, match="no change of these settings makes it fit"):
        check(QWEN_05B, {"per_device_train_batch_size": 8}, 4 * GiB)


def test_sleep_mode_moves_vllm_out_of_training():
    run = {"use_vllm": True, "vllm_gpu_memory_utilization": 0.5}
    awake = estimate(QWEN_05B, run, 24 * GiB)
    asleep = estimate(QWEN_05B, {**run, "vllm_enable_sleep_mode": True}, 24 * GiB)
    assert awake["vllm"] == asleep["vllm"] == 12 * GiB
    assert asleep.peak < awake.peak and asleep.peak_phase == "generate"
    server = estimate(QWEN_05B, {**run, "vllm_mode": "server"}, 24 * GiB)
    assert server["vllm"] == server["kv_cache"] == 0


def test_a_bare_parameter_count():
    est = estimate(494_032_768, {"beta": 0.04}, 80 * GiB)
    assert est["weights"] == est["reference"] == est["gradients"] == 4 * 494_032_768
    assert est["activations"] == 0 and "shape unknown" in est.notes[0]


def test_the_table_lists_every_term():
    from rich.console import Console

    console = Console(record=True, width=200)
    est = estimate(QWEN_05B, {"use_vllm": True, "beta": 0.04}, 80 * GiB)
    console.print(format_estimate(est))
    text = console.export_text()
    for term in est.terms:
        assert term.name in text
    assert "peak" in text and "in vllm" in text


@pytest.mark.parametrize("mode", ["float32", "autocast"])
def test_estimate_against_real_tensors_of_a_tiny_llama(mode):
    """Weights, gradients and Adam's moments exactly; activations against the tensors autograd
    saves in a forward through TRL's fused LM head (an over-estimate by about one layer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=61,
        hidden_size=32,
        intermediate_size=88,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    B, P, C = 6, 9, 7
    run = {
        "per_device_train_batch_size": B,
        "num_generations": 3,
        "max_completion_length": C,
        "bf16": mode == "autocast",
        "gradient_checkpointing": False,
    }
    est = estimate(config, run, prompt_length=P, fused_lm_head=True)

    ids = torch.randint(0, 61, (B, P + C))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding, as TRL batches prompts
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-C] = -100
    params = list(model.parameters())
    own = {p.untyped_storage().data_ptr() for p in params}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    out.loss.backward()
    optimizer = torch.optim.AdamW(params, lr=1e-3, fused=True)  # adamw_torch_fused
    optimizer.step()

    assert sum(p.numel() for p in params) == est.shape.params
    assert sum(p.nbytes for p in params) == est["weights"]
    assert sum(p.grad.nbytes for p in params) == est["gradients"]
    moments = sum(
        state[k].nbytes for state in optimizer.state.values() for k in ("exp_avg", "exp_avg_sq")
    )
    assert moments == est["optimizer"]
    # saved tensors: activations, and under autocast the 16-bit weight copies
    measured = sum(saved.values())
    estimated = est["activations"] + est["autocast_copies"]
    assert measured <= estimated <= 1.3 * measured, (measured, estimated)


def test_train_stops_before_it_writes_when_the_gpu_is_too_small(tiny, tmp_path, monkeypatch):
    """The wiring: on a (pretend) 256 MiB GPU `selfplay train` refuses with the estimate's
    message, naming the config, and leaves no run folder."""
    from selfplay import preflight
    from selfplay.errors import ConfigError
    from selfplay.train import train

    monkeypatch.setattr(preflight, "gpu_total_memory", lambda device=0: 256 * 2**20)
    path = tmp_path / "run.yaml"
    path.write_text(
        f"model: {tiny[1]}\nruns_dir: {tmp_path}\nname: small_gpu\n"
        "envs: {arithmetic: {levels: [1]}}\ngrpo: {max_steps: 1}\n"
    )
    with pytest.raises(ConfigError, match=rf"{path}: GPU memory: .*largest: .*") as err:
        train(path)
    assert "cuda_context" in str(err.value)
    assert not (tmp_path / "small_gpu").exists()
