"""A fast sampler for small Llama-shaped models on CPU: the same draws as ``generate``, less overhead.

At the organism's size a decode step costs about a MFLOP a sequence, so HF ``generate`` spends
its time in per-token Python and dispatch overhead (cache objects, mask building, logits
processor and stopping-criteria plumbing), not arithmetic, and a batch runs until its
longest completion ends, every finished row still computed. ``Sampler`` runs the same model
with its own weights (read from the modules on every call, so it follows the optimizer) in a
plain loop over a preallocated key/value cache, and drops finished rows from the batch.

It samples the distribution ``generate`` samples, draw for draw: the same float32 logits (up
to rounding), the same public logits warpers in ``generate``'s order (temperature, top-k,
top-p, min-p), softmax, and the exponential draws ``torch.multinomial`` makes for every row
of the batch, finished rows included (``_pick``), so with the same seed it consumes the
random stream as ``generate`` does and gives the same tokens (``tests/test_decode.py``
checks this token for token in fp32, and ``tests/test_golden.py`` whole runs). Where it cannot
promise that (a model that is not Llama-shaped, rope scaling, a repetition penalty, other
generation options) ``unsupported`` names the reason and callers use ``generate``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

SAMPLING_KEYS = {"temperature", "top_k", "top_p", "min_p", "do_sample"}
"""Generation options the sampler applies itself; ``max_new_tokens``, ``eos_token_id`` and
``pad_token_id`` are its arguments, and any other option is a reason to use ``generate``."""

QUIET_KEYS = {"max_new_tokens", "pad_token_id", "bos_token_id", "eos_token_id"}


def unsupported(model, options: dict[str, Any] | None = None) -> str:
    """Why ``Sampler`` cannot stand in for ``model.generate`` with ``options``; "" when it can."""
    parameters = getattr(model, "parameters", None)
    device = next(parameters()).device.type if parameters is not None else "cpu"
    if device != "cpu":
        return f"the model is on {device} (the fast sampler is a CPU path)"
    return _config_reason(getattr(model, "config", None), options)


def _config_reason(config, options: dict[str, Any] | None) -> str:
    """``unsupported``'s answer from the model's config and the generation options alone."""
    if getattr(config, "model_type", None) != "llama":
        return f"model type {getattr(config, 'model_type', None)!r} is not llama"
    # transformers 5 names it rope_parameters (rope_scaling is its alias); the type is
    # "default" for plain rotary embeddings, the only kind the sampler computes.
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        return f"rope scaling {rope!r}"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "attention or MLP biases"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    for key, value in (options or {}).items():
        if key in SAMPLING_KEYS or key in QUIET_KEYS or value is None:
            continue
        if key == "repetition_penalty" and value == 1.0:
            continue
        if key == "cache_implementation":
            continue
        return f"generation option {key}={value!r}"
    return ""


class Sampler:
    """Sampling and greedy decoding for a Llama-shaped ``model`` (see the module docstring)."""

    def __init__(self, model):
        reason = unsupported(model)
        if reason:
            raise ValueError(f"fast sampler: {reason}; use model.generate")
        self.model = model
        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self._rope: tuple[Any, Any] | None = None

    def rope(self, length: int):
        """cos and sin tables for positions 0 .. length-1, as the model's rotary embedding
        computes them."""
        import torch

        if self._rope is None or self._rope[0].shape[0] < length:
            rotary = self.model.model.rotary_emb
            positions = torch.arange(max(length, 256), dtype=torch.float32)
            freqs = positions[:, None] * rotary.inv_freq.float()[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            scale = getattr(rotary, "attention_scaling", 1.0)
            self._rope = (emb.cos() * scale, emb.sin() * scale)
        return self._rope

    def generate(
        self,
        input_ids,
        attention_mask,
        *,
        max_new_tokens: int,
        eos_token_id: int | list[int],
        pad_token_id: int,
        do_sample: bool = True,
        temperature: float | None = 1.0,
        top_k: int | None = 0,
        top_p: float | None = 1.0,
        min_p: float | None = None,
    ):
        """Prompt and completion ids, ``(batch, prompt + new)``, as ``model.generate`` returns
        them for left-padded ``input_ids``: rows that finished are padded with ``pad_token_id``,
        and decoding stops when every row has produced an end-of-sequence token.

        The sampling options mean what they mean to ``generate`` given explicitly (0 / 1.0 /
        None: off); unlike ``generate`` nothing is taken from the model's generation config
        (whose unset ``top_k`` is 50 there), which is how TRL and ``selfplay`` call it."""
        import torch

        warpers = _warpers(do_sample, temperature, top_k, top_p, min_p)
        eos_ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        eos = torch.tensor(eos_ids, dtype=torch.long)
        batch, width = input_ids.shape
        total = width + max_new_tokens
        mask = attention_mask.bool()
        if not bool(mask[:, -1].all()):
            raise ValueError("fast sampler: prompts must be left-padded (a row ends in padding)")
        positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(~mask, 0)
        cos, sin = self.rope(int(positions.max()) + max_new_tokens + 1)
        caches = self._caches(batch, total)
        prefill_mask, keys_mask = _masks(mask, total)
        out = torch.full((batch, total), pad_token_id, dtype=torch.long)
        out[:, :width] = input_ids
        rows = torch.arange(batch)  # the rows still decoding, which the caches hold
        with torch.no_grad():
            logits = self._forward(input_ids, positions, prefill_mask, caches, 0, cos, sin)
            position = positions[:, -1]
            for step in range(max_new_tokens):
                scores = logits.float()
                for warp in warpers:
                    scores = warp(out[rows, : width + step], scores)
                picked = _pick(scores, batch, rows) if do_sample else scores.argmax(-1)
                out[rows, width + step] = picked
                done = torch.isin(picked, eos)
                if bool(done.all()) or step + 1 == max_new_tokens:
                    return out[:, : width + step + 1]
                if bool(done.any()):  # finished rows leave the batch (and its arithmetic)
                    keep = ~done
                    rows, picked, position = rows[keep], picked[keep], position[keep]
                    keys_mask = keys_mask[keep]
                    caches = [(k[keep], v[keep]) for k, v in caches]
                position = position + 1
                length = width + step + 1
                logits = self._forward(
                    picked[:, None],
                    position[:, None],
                    keys_mask[:, None, None, :length],
                    caches,
                    width + step,
                    cos,
                    sin,
                )
        return out

    def _caches(self, batch: int, total: int) -> list:
        """An empty key and value cache per layer, room for ``total`` positions."""
        import torch

        dtype = self.model.model.embed_tokens.weight.dtype
        shape = (batch, self.kv_heads, total, self.head_dim)
        return [
            (torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype))
            for _ in self.model.model.layers
        ]

    def _forward(self, ids, positions, mask, caches, start: int, cos, sin):
        """Logits of the last position after running ``ids`` (written into the caches at
        ``start``) through the model."""
        import torch.nn.functional as F

        inner = self.model.model
        hidden = F.embedding(ids, inner.embed_tokens.weight)
        c = cos[positions][:, None]
        s = sin[positions][:, None]
        batch, length = ids.shape
        end = start + length
        for layer, (k_cache, v_cache) in zip(inner.layers, caches, strict=True):
            attn = layer.self_attn
            x = _rms(hidden, layer.input_layernorm.weight, self.eps)
            q = F.linear(x, attn.q_proj.weight).view(batch, length, -1, self.head_dim)
            k = F.linear(x, attn.k_proj.weight).view(batch, length, -1, self.head_dim)
            v = F.linear(x, attn.v_proj.weight).view(batch, length, -1, self.head_dim)
            q = q.transpose(1, 2)
            k = k.transpose(1, 2)
            q = q * c + _rotate_half(q) * s
            k = k * c + _rotate_half(k) * s
            k_cache[:, :, start:end] = k
            v_cache[:, :, start:end] = v.transpose(1, 2)
            keys = k_cache[:, :, :end]
            values = v_cache[:, :, :end]
            attended = _attention(q, keys, values, mask, attn.scaling, self.heads // self.kv_heads)
            attended = attended.transpose(1, 2).reshape(batch, length, -1)
            hidden = hidden + F.linear(attended, attn.o_proj.weight)
            x = _rms(hidden, layer.post_attention_layernorm.weight, self.eps)
            mlp = layer.mlp
            x = F.silu(F.linear(x, mlp.gate_proj.weight)) * F.linear(x, mlp.up_proj.weight)
            hidden = hidden + F.linear(x, mlp.down_proj.weight)
        hidden = _rms(hidden[:, -1], inner.norm.weight, self.eps)
        return F.linear(hidden, self.model.lm_head.weight)


def _attention(q, keys, values, mask, scale: float, groups: int):
    """Scaled dot-product attention over the cache. One query a row (decoding) is plain
    matmuls and a softmax: at this size the fused CPU kernel's setup costs more than the
    arithmetic. The prompt (many queries) goes through the fused kernel."""
    import torch
    import torch.nn.functional as F

    if groups > 1:
        keys = keys.repeat_interleave(groups, dim=1)
        values = values.repeat_interleave(groups, dim=1)
    if q.shape[2] > 1:
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)
    scores = torch.matmul(q, keys.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), values)


def _rms(x, weight, eps: float):
    """LlamaRMSNorm's arithmetic."""
    import torch

    dtype = x.dtype
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


def _pick(scores, batch: int, rows):
    """Sample a token for each of ``rows`` as ``torch.multinomial(softmax(scores), 1)`` over the
    whole ``batch`` would: it draws an exponential variate per row and token and takes
    ``argmax(probs / draw)``, so the draws of rows that finished are made, and discarded, to
    keep the random stream where ``generate`` (which samples finished rows too) leaves it.
    That is how torch's CPU ``multinomial`` draws one sample (``tests/test_decode.py`` would
    see it change). Like ``multinomial``, it refuses probabilities that are not finite."""
    import torch

    probs = torch.softmax(scores, dim=-1)
    if not bool(torch.isfinite(probs).all()):
        raise RuntimeError("fast sampler: the probability tensor contains inf or nan")
    draws = torch.empty(batch, probs.shape[-1], dtype=probs.dtype).exponential_(1)
    return (probs / draws[rows]).argmax(-1)


def _masks(mask, total: int):
    """The prompt's attention mask (causal, padding hidden) and the keys' mask for decoding.

    Every padding query sees itself too, so no attention row is empty: an empty row gives NaN,
    which would reach real rows through the values as 0 * NaN."""
    import torch

    batch, width = mask.shape
    eye = torch.eye(width, dtype=torch.bool)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    prefill = (causal & mask[:, None, :]) | eye
    keys = torch.ones(batch, total, dtype=torch.bool)
    keys[:, :width] = mask
    return prefill[:, None], keys


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _warpers(do_sample: bool, temperature, top_k, top_p, min_p) -> list:
    """transformers' public logits warpers in ``generate``'s order, for the options given."""
    if not do_sample:
        return []
    from transformers.generation import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = []
    if temperature is not None and temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k is not None and top_k != 0:
        warpers.append(TopKLogitsWarper(top_k=top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=top_p))
    if min_p is not None:
        warpers.append(MinPLogitsWarper(min_p=min_p))
    return warpers


# -- generation inside TRL's GRPOTrainer -------------------------------------------------------

SAMPLERS = ("auto", "fast", "hf")
"""``sampler:`` in a run config: "fast" is ``Sampler``, "hf" is transformers' ``generate``, and
"auto" is ``Sampler`` wherever it applies (``unsupported`` says where not), else ``generate``."""


def trainer_options(trainer_args) -> dict[str, Any]:
    """The generation options TRL's own non-vLLM path passes to ``generate`` (its
    ``generation_kwargs``), from a ``GRPOConfig``; what ``unsupported`` is asked about."""
    options = {
        "temperature": trainer_args.temperature,
        "top_p": trainer_args.top_p,
        "top_k": trainer_args.top_k,
        "min_p": trainer_args.min_p,
        "repetition_penalty": trainer_args.repetition_penalty,
        "cache_implementation": trainer_args.cache_implementation,
    }
    return {**options, **(trainer_args.generation_kwargs or {})}


def uses_fast(sampler: str, model_config, trainer_args) -> bool:
    """Whether a run with ``sampler`` generates with ``Sampler``; a ValueError where "fast" was
    asked for and cannot be had."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if sampler == "hf":
        return False
    if trainer_args.use_vllm or not trainer_args.use_cpu:
        if sampler == "fast":
            raise ValueError(
                "sampler: fast generates on the CPU, not with vLLM or on a GPU "
                "(grpo.use_vllm, grpo.use_cpu)"
            )
        return False
    reason = _config_reason(model_config, trainer_options(trainer_args))
    if reason and sampler == "fast":
        raise ValueError(f"sampler: fast cannot sample this run: {reason} (use auto or hf)")
    return not reason


def trainer_generator(trainer, fast: bool = True):
    """``generate(sequences, max_new_tokens)`` with the trainer's model, sampling as TRL's own
    non-vLLM path does (its generation options and EOS ids): through ``Sampler`` when ``fast``,
    else HF ``generate`` with the trainer's generation config. Each result is cut after its
    first EOS (``until_eos``)."""
    eos_ids = list(trainer.eos_token_ids)
    pad = trainer.processing_class.pad_token_id
    if pad is None:
        raise ValueError("generation: the tokenizer has no pad token")
    options = trainer_options(trainer.args)
    made: list[Sampler] = []  # one, for the model generation unwraps (the same each call)

    def generate(sequences: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        import copy

        import torch
        from trl.models.utils import unwrap_model_for_generation

        width = max(len(s) for s in sequences)
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
        device = trainer.accelerator.device
        with (
            unwrap_model_for_generation(
                trainer.model_wrapped,
                trainer.accelerator,
                gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                generation_kwargs=trainer.generation_kwargs,
                gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
        ):
            if fast:
                if not made or made[0].model is not model:
                    made[:] = [Sampler(model)]
                out = made[0].generate(
                    ids.to(device),
                    mask.to(device),
                    max_new_tokens=max_new_tokens,
                    eos_token_id=eos_ids,
                    pad_token_id=pad,
                    **{k: v for k, v in options.items() if k in SAMPLING_KEYS},
                )
            else:
                config = trainer.generation_config
                if config.max_new_tokens != max_new_tokens:  # a dialogue turn's budget
                    config = copy.deepcopy(config)
                    config.max_new_tokens = max_new_tokens
                with cast_once(trainer.args):
                    out = model.generate(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        generation_config=config,
                    )
        return [until_eos(row, eos_ids) for row in out[:, width:].tolist()]

    return generate


def casts_once(trainer_args) -> bool:
    """Whether generation gains from one bf16 autocast region around the whole call: a bf16
    run (TRL's ``bf16``) generating with ``generate`` on the CPU (``cast_once``)."""
    return bool(trainer_args.bf16 and trainer_args.use_cpu and not trainer_args.use_vllm)


def cast_once(trainer_args):
    """Where ``casts_once``, one bf16 autocast region around a ``generate`` call, else nothing.

    Accelerate already runs each forward of a bf16 run under autocast, so the arithmetic and
    the tokens are the same. But each forward's own region casts every weight to bf16 and
    drops the casts when it closes: once per generated token, for a model whose weights are
    read once per token anyway. Inside an outer region the casts are cached (autocast clears
    its cache only when the outermost region closes), so they are made once per call."""
    import contextlib

    import torch

    if not casts_once(trainer_args):
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def until_eos(ids: list[int], eos_ids: list[int]) -> list[int]:
    """``ids`` up to and including the first EOS (what follows is padding)."""
    for k, token in enumerate(ids):
        if token in eos_ids:
            return ids[: k + 1]
    return ids


def single_turn_rollout(chat_template_kwargs: dict[str, Any] | None = None, fast: bool = True):
    """A ``rollout_func`` for ``GRPOTrainer`` doing what its own single-turn path does (prompts
    tokenized as TRL tokenizes them, one completion each, no logprobs), generating with
    ``trainer_generator`` (its fast sampler when ``fast``). Used where ``Sampler`` applies, or
    a bf16 run on the CPU casts its weights once a call (``casts_once``), and nothing else (a
    dialogue) needs a rollout function; ``tests/test_golden.py`` and ``tests/test_decode.py``
    check the runs are unchanged."""
    kwargs = chat_template_kwargs or {}
    made: dict[str, Any] = {}  # the trainer and its generator, built once

    def rollout(prompts: list, trainer) -> dict[str, Any]:
        tokenizer = trainer.processing_class
        if isinstance(prompts[0], list):  # conversational, as TRL's is_conversational
            prompt_ids = tokenizer.apply_chat_template(
                conversation=prompts,
                chat_template=trainer.chat_template,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **kwargs,
            )["input_ids"]
        else:
            prompt_ids = tokenizer(text=prompts)["input_ids"]
        if made.get("trainer") is not trainer:
            made.update(trainer=trainer, generate=trainer_generator(trainer, fast=fast))
        completion_ids = made["generate"](
            [list(p) for p in prompt_ids], trainer.max_completion_length
        )
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    return rollout


def fast_rollout(sampler: str, model, trainer_args):
    """``single_turn_rollout`` where the run's ``sampler`` and the model allow the fast sampler
    (``uses_fast``), or with ``generate`` where a bf16 run on the CPU gains from casting its
    weights once a call (``casts_once``); else None: TRL generates itself."""
    if uses_fast(sampler, model.config, trainer_args):
        return single_turn_rollout(trainer_args.chat_template_kwargs)
    if casts_once(trainer_args):
        return single_turn_rollout(trainer_args.chat_template_kwargs, fast=False)
    return None


@contextmanager
def quiet_rollout_notice():
    """Around ``GRPOTrainer(...)``: our rollout functions are tested against the pinned TRL, so
    its notice that ``rollout_func`` is experimental would only print before every run."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are using 'rollout_func'", UserWarning)
        yield
