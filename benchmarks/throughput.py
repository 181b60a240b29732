"""How much of the machine the organism family uses: matmul limit, pretraining, generation.

    python benchmarks/throughput.py [--sizes 0.5M 4M 15M] [--steps 6] [--threads 2]

One process, one table, fp32 (today's setting) beside bf16 autocast (master weights fp32) in
the same run, each beside the machine's own limit measured in the same run (a 2048 x 2048
matmul in fp32 and in bf16). For each organism shape:

- **pretraining**: tokens/s of ``selfplay.organism.pretrain``'s step (forward, backward,
  AdamW) on 32 x 256-token blocks, and its GFLOP/s counted as 6 x parameters x tokens;
- **generation**: tokens/s of ``model.generate`` sampling 64 sequences x 160 new tokens from a
  short prompt (as a GRPO step generates), counted with ``min_new_tokens`` so every sequence
  runs the full length; and of ``selfplay.decode.Sampler`` (the fast sampler GRPO, probes and
  evaluation use for these models) on the same work.

Weights are random (speed does not depend on them). The first step of each measure is a
warm-up and left out. Timings on 2 cores are noisy, and a second job on the machine slows
every row: read the ratios within one run, and say what else was running.
"""

from __future__ import annotations

import argparse
import time

SHAPES = {
    # name: (hidden size, layers, heads, intermediate size)
    "0.5M": (128, 2, 4, 512),
    "4M": (256, 4, 4, 1024),
    "15M": (384, 6, 6, 1536),
}
"""The organism family's candidate shapes; 0.5M is ``configs/organism.yaml``'s."""


def matmul_limit(dtype, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n matmul in ``dtype``: the machine's limit for that type."""
    import torch

    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def organism(shape: str):
    """A randomly initialised organism of ``shape`` with its tokenizer."""
    from selfplay.organism.pretrain import ModelConfig, build_model
    from selfplay.organism.tokenizer import build_tokenizer

    hidden, layers, heads, intermediate = SHAPES[shape]
    tokenizer = build_tokenizer()
    config = ModelConfig(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=intermediate,
        max_positions=512,
    )
    return build_model(config, tokenizer), tokenizer


def autocast(bf16: bool):
    """bf16 autocast on the CPU, or nothing."""
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def pretrain_speed(shape: str, bf16: bool, steps: int, batch: int = 32, seq: int = 256) -> float:
    """Tokens/s of the pretraining step (forward, backward, AdamW), warm-up step left out."""
    import torch

    model, tokenizer = organism(shape)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(4, len(tokenizer), (batch, seq + 1))
    seconds = 0.0
    for step in range(steps + 1):
        start = time.perf_counter()
        with autocast(bf16):
            logits = model(input_ids=ids[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1)
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:
            seconds += time.perf_counter() - start
    return batch * seq * steps / seconds


def generate_speed(shape: str, bf16: bool, sequences: int = 64, new: int = 160) -> float:
    """Tokens/s of sampling ``sequences`` x ``new`` tokens with ``generate``."""
    import torch

    model, tokenizer = organism(shape)
    model.eval()
    prompt = tokenizer(["Compute 12+34."] * sequences, return_tensors="pt")
    options = {"do_sample": True, "max_new_tokens": new, "min_new_tokens": new, "top_k": 0}
    with torch.no_grad(), autocast(bf16):
        model.generate(**prompt, max_new_tokens=4, min_new_tokens=4, do_sample=True)  # warm-up
        start = time.perf_counter()
        model.generate(**prompt, **options)
        seconds = time.perf_counter() - start
    return sequences * new / seconds


def sampler_speed(shape: str, bf16: bool, sequences: int = 64, new: int = 160) -> float:
    """Tokens/s of ``selfplay.decode.Sampler`` on the same work as ``generate_speed``."""
    from selfplay.decode import Sampler

    model, tokenizer = organism(shape)
    model.eval()
    prompt = tokenizer(["Compute 12+34."] * sequences, return_tensors="pt")
    sampler = Sampler(model)
    # No EOS, so every sequence runs the full length, as min_new_tokens makes generate do.
    run = dict(eos_token_id=[], pad_token_id=tokenizer.pad_token_id)
    with autocast(bf16):
        sampler.generate(prompt["input_ids"], prompt["attention_mask"], max_new_tokens=4, **run)
        start = time.perf_counter()
        sampler.generate(prompt["input_ids"], prompt["attention_mask"], max_new_tokens=new, **run)
        seconds = time.perf_counter() - start
    return sequences * new / seconds


def parameters(shape: str) -> int:
    model, _ = organism(shape)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--steps", type=int, default=6, help="timed pretraining steps per row")
    parser.add_argument("--sequences", type=int, default=64, help="sequences generated together")
    parser.add_argument("--new-tokens", type=int, default=160, help="tokens per sequence")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from selfplay.precision import native_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    console.print(
        native_bf16()[1], f"; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    limit = {"fp32": matmul_limit(torch.float32), "bf16": matmul_limit(torch.bfloat16)}
    table = Table(title="Organism throughput: fp32 (today) beside bf16 autocast, same run")
    for column in (
        "shape",
        "params",
        "type",
        "pretrain tok/s",
        "pretrain GFLOP/s",
        "% of limit",
        "generate tok/s",
        "fast sampler tok/s",
        "matmul limit GFLOP/s",
    ):
        table.add_column(column, justify="right")
    for shape in args.sizes:
        n = parameters(shape)
        for kind in ("fp32", "bf16"):
            bf16 = kind == "bf16"
            tokens = pretrain_speed(shape, bf16, args.steps)
            flops = 6 * n * tokens / 1e9
            generated = generate_speed(shape, bf16, args.sequences, args.new_tokens)
            sampled = sampler_speed(shape, bf16, args.sequences, args.new_tokens)
            table.add_row(
                shape,
                f"{n / 1e6:.2f}M",
                kind,
                f"{tokens:,.0f}",
                f"{flops:.0f}",
                f"{100 * flops / limit[kind]:.0f}%",
                f"{generated:,.0f}",
                f"{sampled:,.0f}",
                f"{limit[kind]:.0f}",
            )
    console.print(table)


if __name__ == "__main__":
    main()
