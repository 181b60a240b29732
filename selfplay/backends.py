"""Which engine generates for `selfplay eval`: vLLM with a CUDA GPU, transformers otherwise.

vLLM is a GPU-only extra (``pip install -e '.[vllm]'``, README "Recipes"); on a machine
without it or without a GPU, eval generates with transformers' ``generate`` as before and
says why. ``vllm_generate`` returns exactly the lists the transformers path builds, so the
rest of the eval (scoring, rows, ``eval.json``) does not know which engine ran, except that
``eval.json`` records it.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("auto", "vllm", "transformers")


@dataclass(frozen=True)
class BackendChoice:
    """The engine that will generate, and why (printed by ``selfplay eval``)."""

    name: str
    """"vllm" or "transformers"."""
    reason: str


def choose_backend(requested: str = "auto") -> BackendChoice:
    """vLLM when it is installed and a CUDA GPU is present, transformers otherwise.

    ``requested``: "auto" (that rule), "transformers" (always), or "vllm" (a ``ValueError``
    naming what is missing when it cannot run). vLLM's presence is read from its import
    spec, so nothing heavy is imported to decide.
    """
    import importlib.util

    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "transformers":
        return BackendChoice("transformers", "transformers requested: generating with transformers")
    import torch

    missing = []
    if importlib.util.find_spec("vllm") is None:
        missing.append("vLLM not installed")
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU")
    if missing and requested == "vllm":
        raise ValueError(f"backend vllm requested but {' and '.join(missing)}")
    if missing:
        return BackendChoice("transformers", f"{', '.join(missing)}: generating with transformers")
    return BackendChoice("vllm", "vLLM installed and a CUDA GPU present: generating with vLLM")


def vllm_generate(
    model_source: str,
    tokenizer,
    prompts: list[str],
    *,
    samples: int,
    max_new_tokens: int,
    seed: int,
    max_model_len: int | None = None,
    on_batch=None,
) -> tuple[list[str], list[str]]:
    """``(greedy, sampled)`` with vLLM: one greedy completion per prompt, then ``samples``
    completions per prompt at temperature 1, prompt by prompt (``sampled[i * samples + j]``),
    the lists ``selfplay.generation.generate`` gives the transformers path.

    As there: the prompts are tokenized by ``tokenizer`` without special tokens (vLLM gets the
    token ids, so it adds no BOS of its own), sampling is plain (no top-k, top-p or penalty),
    generation stops at ``tokenizer.eos_token_id`` or after ``max_new_tokens``, and the new
    tokens are decoded by ``tokenizer`` skipping special tokens. Seeds: the engine's is
    ``seed``; prompt i's samples use ``seed + i * samples + j`` (vLLM gives the j-th of ``n``
    samples its request's seed + j), so they are reproducible whatever the batching. With
    ``max_model_len`` (the model's position limit) a completion budget is cut to fit after
    its prompt, where vLLM would otherwise refuse the request.
    ``on_batch(k)`` is called after each pass with the number of completions it made.
    """
    from vllm import LLM, SamplingParams

    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    inputs = [{"prompt_token_ids": x} for x in ids]

    def budget(prompt_ids: list[int]) -> int:
        if max_model_len is None:
            return max_new_tokens
        return max(1, min(max_new_tokens, max_model_len - len(prompt_ids)))

    stop = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else None
    llm = LLM(model=str(model_source), seed=seed)
    greedy_params = [
        SamplingParams(n=1, temperature=0.0, max_tokens=budget(x), stop_token_ids=stop) for x in ids
    ]
    sampled_params = [
        SamplingParams(
            n=samples,
            temperature=1.0,
            max_tokens=budget(x),
            seed=seed + i * samples,
            stop_token_ids=stop,
        )
        for i, x in enumerate(ids)
    ]

    def texts(params: list) -> list[str]:
        outputs = llm.generate(inputs, params, use_tqdm=False)  # in the order of the prompts
        out = [
            tokenizer.decode(list(c.token_ids), skip_special_tokens=True)
            for request in outputs
            for c in sorted(request.outputs, key=lambda c: c.index)
        ]
        if on_batch is not None:
            on_batch(len(out))
        return out

    greedy = texts(greedy_params)
    sampled = texts(sampled_params)
    if len(greedy) != len(prompts) or len(sampled) != len(prompts) * samples:
        raise RuntimeError(
            f"vLLM returned {len(greedy)} greedy and {len(sampled)} sampled completions for "
            f"{len(prompts)} prompts x {samples} samples"
        )
    return greedy, sampled
