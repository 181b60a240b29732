"""What a GRPO run holds in GPU memory, itemised: the arithmetic of ``selfplay.preflight``.

``estimate(model, grpo, total)`` itemises the memory of one training process on one GPU, in
bytes, from the model's shape (a transformers config, or a bare parameter count) and the run's
GRPO settings (a dict of GRPOConfig options or a TRL ``GRPOConfig``). Pure arithmetic: no GPU
and no torch. ``selfplay.preflight`` checks a run against its GPU with it and says what to
change when it does not fit.

Symbols. P parameters (embedding counted once when tied); L layers; h hidden size; q = heads x
head_dim; kv = kv_heads x head_dim; i MLP intermediate size; V vocabulary; w bytes per weight
(float32 = 4: selfplay's ``load_model`` and TRL load the policy in float32 unless
``model_init_kwargs.dtype`` says otherwise); a bytes per activation (2 under ``bf16``/``fp16``,
which are autocast: weights stay in w, matmuls run in 16 bits; else a = w); B
``per_device_train_batch_size`` (completions per forward/backward); C ``max_completion_length``;
Pl the prompt length (``max_prompt_length`` when the settings have one, else the
``prompt_length`` argument, else 256 tokens; TRL 1.16 has no such option); S = Pl + C, every
row padded to the longest; G = B x ``steps_per_generation`` completions generated at once.

Memory that lives the whole run ("static"):

- weights = P w. Exact.
- optimizer = 2 P w for the Adam family (``adamw_torch_fused``, TRL's default): torch keeps
  both moments in the parameters' dtype, so fp32 under the defaults. No separate master copy:
  under autocast the fp32 weights are the master weights; with 16-bit weights there is none.
  8-bit optimizers 2 P bytes, Lion/Adagrad/RMSprop P w, SGD (no momentum) 0, Adafactor taken
  as 0 (its factored moments are O(rows + cols): a slight under-estimate). The 4-byte step
  counter per parameter tensor is left out. Exact for Adam's moments.
- reference = P w when ``beta`` > 0 (TRL builds the reference model in the policy's dtype).
- vllm = ``vllm_gpu_memory_utilization`` x total GPU memory in colocate mode: vLLM reserves
  that share at start (its weights in 16 bits, its activations, and the KV cache in the rest).
  With ``vllm_enable_sleep_mode`` it is freed while training, so it counts in generation only.
  Server mode: vLLM runs on another GPU and nothing is counted here.
- cuda_context = 0.5 GiB: the CUDA context and library workspaces, outside PyTorch's
  allocator (typical; varies by driver and GPU).

Memory of a training step ("train"; the gradients are freed after each optimizer step):

- gradients = P w. Exact.
- autocast_copies = P_layers a under autocast (a != w): autocast keeps a 16-bit copy of every
  decoder weight for the forward and backward (embedding and LM head are not copied: TRL's
  fused head casts its weight tile by tile).
- activations = B S x per-token bytes, from the tensors autograd saves for backward (L layer
  + rest below matched those of a Llama, counted with saved-tensor hooks on CPU through TRL's
  fused head, within 2% for float32, bf16 autocast and bfloat16 weights):
  layer = 2 (4 + w) h [two RMSNorms, computed in float32] + n_in h a [q/k/v and gate/up inputs:
  n_in = 5 under autocast, each linear casts its own copy, else 2] + 5 q a [attention: q, k
  and v repeated to every head, its output, and the o_proj input] + 4 i a [MLP: gate, its
  activation, up, their product];
  rest = (4 + w) h [final norm] + h w [LM head input].
  Without checkpointing: (L + 1) layer + rest, one layer more than autograd saves for the
  gradients being computed in backward (an over-estimate of a few per cent).
  With gradient checkpointing (every decoder layer): L h w [each layer's input] + 2 layer [the
  layer recomputed in backward and its gradients] + rest.
  SDPA's memory-efficient or flash kernel is assumed (no S x S term); with
  ``attention="eager"`` add B x heads x S^2 x (4 + 2a) per layer held (float32 softmax and
  its 16-bit copy). Padding is the worst case (every row at Pl + C): an over-estimate when
  completions end early.
- logits. TRL 1.16's GRPOTrainer never materialises B x S x V logits: its fused LM head
  projects in tiles of at most 4,096 tokens x 32,768 vocabulary entries and keeps only per
  token statistics. logits = min(N, 4096) min(V, 32768) a [one tile] + V h 4 [the float32
  gradient of the head weight] + N h 4 [the float32 gradient of its input], N = B C (only
  completion tokens are scored on CUDA). Without the fused head (``fused_lm_head=False``, an
  older TRL): 2 B (C + 1) V 4, the float32 logits and their gradient, an under-estimate of code
  that holds further copies (temperature scaling, log-softmax). The default follows the
  installed TRL: fused when it ships ``trl/kernels/chunked_logprob.py``.

Memory of generation ("generate"), with transformers' ``generate`` (``use_vllm`` off):

- kv_cache = 2 L kv w G S (keys and values, every row at full length; TRL generates outside
  autocast, so in the weights' dtype). Exact for a static cache at full length.
- generation_work = G V 4 x 2 [float32 last-position logits and probabilities] + G Pl (2h + q
  + 2 kv + 3 i) w [one layer's prefill temporaries]: a rough figure.

With vLLM in colocate mode its share must hold, besides its weights (P x 2: vLLM's ``auto``
dtype runs even a float32 checkpoint in 16 bits) and about 1 GiB of its own activations and
CUDA graphs (assumed), a KV cache of 2 L kv 2 x max_model_len bytes for one full-length
sequence, or vLLM refuses to start; the whole batch (TRL's max_num_seqs = G x
tensor_parallel_size sequences of S tokens, in 16-token blocks) fitting at once is reported
but not required (vLLM then generates in waves).

peak = static + max(train, generate). ``check`` keeps a margin of 10% of the GPU (allocator
fragmentation and the short-lived buffers not modelled above): a run fits when peak <= 0.9 x
total and, in colocate mode, vLLM's share holds its weights, overhead and one sequence.
Not modelled: tensor or sequence parallelism, DeepSpeed/FSDP sharding, PEFT adapters, MoE
models, quantised weights, multimodal inputs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from selfplay.errors import ConfigError

GiB = 1024**3
MARGIN = 0.10
"""Share of the GPU kept free by ``check``: fragmentation and unmodelled transients."""
CUDA_CONTEXT = GiB // 2
"""CUDA context and library workspaces, outside PyTorch's allocator."""
VLLM_OVERHEAD = GiB
"""vLLM's own activations, sampler buffers and CUDA graphs inside its share (assumed)."""
DEFAULT_PROMPT_LENGTH = 256
"""Prompt tokens assumed when neither the settings nor the caller say."""
# TRL 1.16's fused LM head (trl/kernels/chunked_logprob.py): tile of tokens x vocabulary.
HEAD_TOKEN_TILE = 4096
HEAD_VOCAB_TILE = 32768
VLLM_BLOCK = 16
"""Tokens per vLLM KV-cache block (its default)."""

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
# GRPOConfig defaults in TRL 1.16, for options a plain dict leaves out (a test compares them).
TRL_DEFAULTS: dict[str, Any] = {
    "per_device_train_batch_size": 8,
    "num_generations": 8,
    "max_completion_length": 512,
    "gradient_checkpointing": True,
    "fp16": False,
    "use_vllm": False,
    "vllm_mode": "colocate",
    "vllm_gpu_memory_utilization": 0.3,
    "vllm_enable_sleep_mode": False,
    "vllm_max_model_length": None,
    "vllm_tensor_parallel_size": 1,
    "beta": 0.0,
    "optim": "adamw_torch_fused",
    "gradient_accumulation_steps": 1,
}


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a model; ``None`` fields when only a count is known."""

    params: int
    layer_params: int | None = None
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    intermediate: int | None = None
    vocab: int | None = None
    max_positions: int | None = None

    @property
    def known(self) -> bool:
        """Whether the architecture is known (else only parameter-sized terms are estimated)."""
        return self.layers is not None


@dataclass(frozen=True)
class GRPOSettings:
    """The GRPOConfig options that decide memory (names as in GRPOConfig)."""

    per_device_train_batch_size: int
    num_generations: int
    max_completion_length: int
    prompt_length: int
    gradient_checkpointing: bool
    bf16: bool
    fp16: bool
    use_vllm: bool
    vllm_mode: str
    vllm_gpu_memory_utilization: float
    vllm_enable_sleep_mode: bool
    vllm_max_model_length: int | None
    vllm_tensor_parallel_size: int
    beta: float
    optim: str
    steps_per_generation: int
    weights_dtype: str
    checkpointing_key: str = field(default="gradient_checkpointing", compare=False)
    """The option the run sets (``activation_checkpointing`` is transformers 5's new name)."""


@dataclass(frozen=True)
class Term:
    """One item of the estimate: bytes, when they are held, and how they were computed."""

    name: str
    bytes: int
    phase: str
    """"static" (whole run), "train" (a training step), "generate" (generation), or "vllm"
    (inside vLLM's share, already counted by the "vllm" term: shown, not added)."""
    formula: str


@dataclass(frozen=True)
class Estimate:
    """Itemised GPU memory of one training process, and whether it fits."""

    terms: tuple[Term, ...]
    settings: GRPOSettings
    shape: Shape
    total_memory: int | None
    margin: float
    notes: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> int:
        """Bytes of a term (0 when the estimate has no such term)."""
        return sum(t.bytes for t in self.terms if t.name == name)

    def phase(self, phase: str) -> int:
        """Sum of one phase's terms."""
        return sum(t.bytes for t in self.terms if t.phase == phase)

    @property
    def peak_phase(self) -> str:
        """The phase on top of the static memory at the peak: "train" or "generate"."""
        return "train" if self.phase("train") >= self.phase("generate") else "generate"

    @property
    def peak(self) -> int:
        """static + max(train, generate): the most held at once."""
        return self.phase("static") + self.phase(self.peak_phase)

    @property
    def usable(self) -> int | None:
        """GPU memory a run may plan to use: total less the margin."""
        return None if self.total_memory is None else int(self.total_memory * (1 - self.margin))

    def largest(self, n: int = 3) -> list[Term]:
        """The ``n`` biggest terms held at the peak."""
        held = [t for t in self.terms if t.phase in ("static", self.peak_phase)]
        return sorted(held, key=lambda t: -t.bytes)[:n]

    def problems(self) -> list[str]:
        """Why the run would not fit (empty when it does)."""
        found = []
        if self.usable is not None and self.peak > self.usable:
            found.append(
                f"peak about {gib(self.peak)} ({self.peak_phase}) but {gib(self.usable)} of "
                f"the {gib(self.total_memory)} GPU are usable ({self.margin:.0%} kept free)"
            )
        need = self["vllm_weights"] + self["vllm_overhead"] + self["vllm_kv_one_sequence"]
        if self["vllm"] and need > self["vllm"]:
            found.append(
                f"vLLM's share ({gib(self['vllm'])}) cannot hold its weights, overhead and the "
                f"KV cache of one {self._max_model_len()}-token sequence ({gib(need)}): "
                "vLLM would refuse to start"
            )
        return found

    @property
    def fits(self) -> bool:
        """Whether ``problems()`` is empty."""
        return not self.problems()

    def _max_model_len(self) -> int:
        return max_model_len(self.shape, self.settings)


def gib(n: int | float | None) -> str:
    """Bytes as GiB, for messages."""
    return "?" if n is None else f"{n / GiB:.2f} GiB"


def model_shape(model: Any, params: int | None = None) -> Shape:
    """The ``Shape`` of a transformers config (an object or a dict), or of a parameter count.

    Parameters of a config, for a dense decoder (Llama, Qwen2/3, Gemma-like): embedding V h,
    plus V h for an untied LM head, plus a final norm h, plus per layer: attention h q + 2 h kv
    + q h (+ q + 2 kv biases for Qwen2 or ``attention_bias``, + h for Llama's o_proj bias),
    a gated MLP 3 h i (+ 2 i + h with ``mlp_bias``), 2 norms of h (4 for Gemma 2/3) and q/k
    norms of head_dim each (Qwen3, Gemma 3). ``params`` overrides the count.
    """
    if isinstance(model, int):
        return Shape(params=model)
    cfg = model.get_text_config() if hasattr(model, "get_text_config") else model

    def get(name: str, default: Any = None) -> Any:
        value = cfg.get(name) if isinstance(cfg, dict) else getattr(cfg, name, None)
        return default if value is None else value

    h, layers, heads = get("hidden_size"), get("num_hidden_layers"), get("num_attention_heads")
    kv_heads = get("num_key_value_heads", heads)
    vocab, inter = get("vocab_size"), get("intermediate_size")
    head_dim = get("head_dim", h // heads)
    kind = str(get("model_type", ""))
    q, kv = heads * head_dim, kv_heads * head_dim
    attention_bias = get("attention_bias")
    qkv_bias = kind == "qwen2" if attention_bias is None else bool(attention_bias)
    attn = (
        h * q + 2 * h * kv + q * h + (q + 2 * kv if qkv_bias else 0) + (h if attention_bias else 0)
    )
    mlp = 3 * h * inter + ((2 * inter + h) if get("mlp_bias", False) else 0)
    norms = (4 if kind.startswith(("gemma2", "gemma3")) else 2) * h
    qk_norm = 2 * head_dim if kind.startswith(("qwen3", "gemma3")) else 0
    layer_params = layers * (attn + mlp + norms + qk_norm)
    tied = get("tie_word_embeddings", True)
    count = vocab * h * (1 if tied else 2) + h + layer_params
    return Shape(
        params=params if params is not None else count,
        layer_params=layer_params,
        layers=layers,
        hidden=h,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=inter,
        vocab=vocab,
        max_positions=get("max_position_embeddings"),
    )


def grpo_settings(grpo: Any, prompt_length: int | None = None) -> GRPOSettings:
    """The memory-relevant settings of a GRPOConfig or a dict of its options.

    A dict's missing options take TRL 1.16's GRPOConfig defaults (``TRL_DEFAULTS``; ``bf16``
    true unless ``fp16``, as GRPOConfig sets it on a GPU). ``activation_checkpointing`` is read
    as ``gradient_checkpointing``. The prompt length is ``max_prompt_length`` when present,
    else ``prompt_length``, else ``DEFAULT_PROMPT_LENGTH``.
    """
    if isinstance(grpo, GRPOSettings):
        return grpo
    if not isinstance(grpo, dict):
        names = (
            {f.name for f in dataclasses.fields(grpo)} if dataclasses.is_dataclass(grpo) else set()
        )
        grpo = {n: getattr(grpo, n) for n in names} or vars(grpo)
    values = {**TRL_DEFAULTS, **{k: v for k, v in grpo.items() if v is not None}}
    key = "gradient_checkpointing"
    if grpo.get("activation_checkpointing") is not None and "gradient_checkpointing" not in grpo:
        key = "activation_checkpointing"
        values["gradient_checkpointing"] = grpo["activation_checkpointing"]
    fp16 = bool(values["fp16"])
    bf16 = bool(values["bf16"]) if "bf16" in values else not fp16
    optim = values["optim"]
    init = values.get("model_init_kwargs") or {}
    dtype = (init.get("dtype") or init.get("torch_dtype")) if isinstance(init, dict) else None
    dtype = str(dtype).replace("torch.", "") if dtype not in (None, "auto") else "float32"
    if dtype not in _DTYPE_BYTES:
        raise ConfigError(
            f"model_init_kwargs.dtype {dtype!r}: expected one of {sorted(_DTYPE_BYTES)}"
        )
    steps = values.get("steps_per_generation") or values["gradient_accumulation_steps"] or 1
    return GRPOSettings(
        per_device_train_batch_size=int(values["per_device_train_batch_size"]),
        num_generations=int(values["num_generations"]),
        max_completion_length=int(values["max_completion_length"]),
        prompt_length=int(
            values.get("max_prompt_length") or prompt_length or DEFAULT_PROMPT_LENGTH
        ),
        gradient_checkpointing=bool(values["gradient_checkpointing"]),
        bf16=bf16 and not fp16,
        fp16=fp16,
        use_vllm=bool(values["use_vllm"]),
        vllm_mode=str(values["vllm_mode"]),
        vllm_gpu_memory_utilization=float(values["vllm_gpu_memory_utilization"]),
        vllm_enable_sleep_mode=bool(values["vllm_enable_sleep_mode"]),
        vllm_max_model_length=values["vllm_max_model_length"],
        vllm_tensor_parallel_size=int(values["vllm_tensor_parallel_size"]),
        beta=float(values["beta"]),
        optim=str(getattr(optim, "value", optim)),
        steps_per_generation=int(steps),
        weights_dtype=dtype,
        checkpointing_key=key,
    )


def _optimizer(optim: str, w: int) -> tuple[int, int, str]:
    """(moments, bytes per moment, name) of a transformers optimizer name."""
    name = optim.lower()
    if "sgd" in name or "adafactor" in name:
        moments = 0
    elif any(k in name for k in ("lion", "adagrad", "rmsprop")):
        moments = 1
    else:  # the Adam family, and any optimizer not named above
        moments = 2
    return moments, 1 if "8bit" in name else w, name


def max_model_len(shape: Shape, s: GRPOSettings) -> int:
    return (
        s.vllm_max_model_length or shape.max_positions or s.prompt_length + s.max_completion_length
    )


def fused_head_default() -> bool:
    """Whether the installed TRL scores completions with its fused, tiled LM head."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("trl")
    return bool(
        spec
        and spec.submodule_search_locations
        and any(
            (Path(p) / "kernels" / "chunked_logprob.py").is_file()
            for p in spec.submodule_search_locations
        )
    )


def estimate(
    model: Any,
    grpo: Any,
    total_memory: int | None = None,
    *,
    params: int | None = None,
    prompt_length: int | None = None,
    fused_lm_head: bool | None = None,
    attention: str = "sdpa",
    margin: float = MARGIN,
) -> Estimate:
    """Itemised GPU memory (bytes) of a GRPO run; the module docstring gives every formula.

    ``model``: a transformers config (object or dict) or a parameter count. ``grpo``: a
    GRPOConfig, a dict of its options, or ``GRPOSettings``. ``total_memory``: the GPU's bytes
    (``None``: nothing is checked and colocated vLLM's share is unknown). ``fused_lm_head``:
    ``None`` follows the installed TRL. ``attention``: "sdpa" (or flash) or "eager".
    """
    shape = model_shape(model, params)
    s = grpo_settings(grpo, prompt_length)
    w = _DTYPE_BYTES[s.weights_dtype]
    a = 2 if (s.bf16 or s.fp16) else w
    P = shape.params
    colocate = s.use_vllm and s.vllm_mode == "colocate"
    terms = [
        Term("weights", P * w, "static", f"P x {w} B ({s.weights_dtype})"),
    ]
    moments, per, optim = _optimizer(s.optim, w)
    terms.append(
        Term("optimizer", moments * P * per, "static", f"{moments} moments x P x {per} B ({optim})")
    )
    if s.beta > 0:
        terms.append(Term("reference", P * w, "static", f"P x {w} B (beta {s.beta:g} > 0)"))
    notes = []
    if colocate:
        share = int(s.vllm_gpu_memory_utilization * (total_memory or 0))
        phase = "generate" if s.vllm_enable_sleep_mode else "static"
        terms.append(
            Term("vllm", share, phase, f"{s.vllm_gpu_memory_utilization:g} x total GPU memory")
        )
        if total_memory is None:
            notes.append("GPU size unknown: vLLM's share is not counted")
    terms.append(Term("cuda_context", CUDA_CONTEXT, "static", "0.5 GiB (assumed)"))
    terms.append(Term("gradients", P * w, "train", f"P x {w} B"))
    if a != w:
        copies = shape.layer_params if shape.layer_params is not None else P
        terms.append(Term("autocast_copies", copies * a, "train", f"decoder weights x {a} B"))
    if shape.known:
        fused = fused_head_default() if fused_lm_head is None else fused_lm_head
        terms += _step_terms(shape, s, w, a, fused, attention)
        terms += _generation_terms(shape, s, w)
    else:
        notes.append(
            "model shape unknown (a bare parameter count): activations, logits and "
            "KV cache are not estimated, an under-estimate"
        )
    est = Estimate(tuple(terms), s, shape, total_memory, margin, tuple(notes))
    room = est["vllm"] - est["vllm_weights"] - est["vllm_overhead"]
    if 0 < room < est["vllm_kv_batch"]:
        note = (
            f"vLLM's KV cache holds about {room / est['vllm_kv_batch']:.0%} of a generation "
            "batch at once: it will generate in waves (a larger "
            "grpo.vllm_gpu_memory_utilization generates at once)"
        )
        est = dataclasses.replace(est, notes=est.notes + (note,))
    return est


def _step_terms(shape: Shape, s: GRPOSettings, w: int, a: int, fused: bool, attention: str):
    """Activations (and eager attention's scores) and logits of a training step."""
    L, h, i, V = shape.layers, shape.hidden, shape.intermediate, shape.vocab
    q = shape.heads * shape.head_dim
    B, C = s.per_device_train_batch_size, s.max_completion_length
    S = s.prompt_length + C
    n_in = 5 if a != w else 2
    layer = 2 * (4 + w) * h + n_in * h * a + 5 * q * a + 4 * i * a
    rest = (4 + w) * h + h * w
    if s.gradient_checkpointing:
        per_token, held, how = L * h * w + 2 * layer + rest, 2, "L h w + 2 layer + rest"
    else:
        per_token, held, how = (L + 1) * layer + rest, L + 1, "(L+1) layer + rest"
    terms = [Term("activations", B * S * per_token, "train", f"B S ({how}), {per_token:,} B/token")]
    if attention == "eager":
        scores = B * shape.heads * S * S * (4 + 2 * a) * held
        terms.append(
            Term("attention_scores", scores, "train", f"B heads S^2 (4 + 2a) x {held} layers")
        )
    if fused:
        N = B * C
        tile = min(N, HEAD_TOKEN_TILE) * min(V, HEAD_VOCAB_TILE) * a
        formula = "fused head: tile + V h 4 + B C h 4"
        terms.append(Term("logits", tile + V * h * 4 + N * h * 4, "train", formula))
    else:
        terms.append(Term("logits", 2 * B * (C + 1) * V * 4, "train", "2 B (C+1) V 4 (float32)"))
    return terms


def _generation_terms(shape: Shape, s: GRPOSettings, w: int):
    """Transformers' generation (KV cache, work), or what vLLM's colocated share must hold."""
    L, h, i, V = shape.layers, shape.hidden, shape.intermediate, shape.vocab
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    Pl, S = s.prompt_length, s.prompt_length + s.max_completion_length
    G = s.per_device_train_batch_size * s.steps_per_generation
    per_token = 2 * L * kv  # keys and values: elements per token
    if not s.use_vllm:
        work = G * V * 4 * 2 + G * Pl * (2 * h + q + 2 * kv + 3 * i) * w
        return [
            Term("kv_cache", per_token * w * G * S, "generate", f"2 L kv {w} B x G S (G={G})"),
            Term("generation_work", work, "generate", "G V 4 x 2 + G Pl (2h + q + 2kv + 3i) w"),
        ]
    if s.vllm_mode != "colocate":
        return []
    seqs = G * s.vllm_tensor_parallel_size
    blocks = math.ceil(S / VLLM_BLOCK) * VLLM_BLOCK
    max_len = max_model_len(shape, s)
    return [
        Term("vllm_weights", shape.params * 2, "vllm", "P x 2 B (vLLM dtype auto: 16-bit)"),
        Term("vllm_overhead", VLLM_OVERHEAD, "vllm", "1 GiB (assumed)"),
        Term(
            "vllm_kv_one_sequence",
            per_token * 2 * max_len,
            "vllm",
            f"2 L kv 2 B x max_model_len ({max_len})",
        ),
        Term(
            "vllm_kv_batch",
            per_token * 2 * seqs * blocks,
            "vllm",
            f"2 L kv 2 B x {seqs} seqs x {blocks} tokens",
        ),
    ]
