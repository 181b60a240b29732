"""What a GRPO step costs on one GPU: step time, generation speed, memory against the estimate.

    python benchmarks/gpu_check.py [--out FILE.json] [--steps 4] [--budget 420] [--dry-run]

One command, at most about 8 minutes on one CUDA GPU (device 0), no network: both models are
built here with random weights (speed and memory do not depend on them) and nothing is
downloaded. Two shapes, each paired with the organism's character tokenizer:

- **organism 15M**: ``selfplay.organism.pretrain.build_model`` at hidden 384, 6 layers, 6 heads,
  intermediate 1536;
- **qwen2.5-0.5B shape**: a ``Qwen2Config`` with the published Qwen2.5-0.5B values (494M
  parameters). The tokenizer's vocabulary is smaller than the model's; prompt ids stay below
  ``len(tokenizer)``, which does not change the arithmetic.

Sections, each a table (and, with ``--out``, every number in one JSON file with the GPU's name
and the torch/transformers/trl versions):

- **GRPO steps**: TRL's ``GRPOTrainer`` (8 generations, 64 completions of exactly 128 tokens a
  step, bf16 autocast where the GPU has it, a length reward so the trainer is measured, not the
  scorer), each step timed from ``on_step_begin`` to ``on_step_end`` (generation, the update,
  the callbacks), the ``--warmup`` steps left out;
- **memory**: ``torch.cuda.max_memory_allocated()`` of each GRPO run beside
  ``selfplay.preflight.estimate`` for the same model and GRPOConfig, and their ratio;
- **generation**: tokens/s of ``model.generate`` sampling 64 sequences x 128 new tokens (bf16
  weights where the GPU has them);
- **vLLM**: the organism's GRPO step with ``use_vllm`` in colocate mode, when vLLM is installed;
  an error is reported in the table, not raised.

Every section checks the elapsed time against ``--budget`` (seconds, all sections together)
and the remaining ones are skipped with a line saying so; a GRPO run also stops at the budget.
Without a CUDA GPU it prints one line and exits 0. ``--dry-run`` runs the same code on the CPU
with tiny shapes, so the script can be checked on a machine without a GPU: its numbers mean
nothing. The numbers come only from a run on a GPU.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ORGANISM = {"hidden_size": 384, "num_layers": 6, "num_heads": 6, "intermediate_size": 1536}
"""The 15M organism shape (``benchmarks/throughput.py``'s "15M")."""

QWEN = {
    # The published config of Qwen/Qwen2.5-0.5B (config.json): 494,032,768 parameters.
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
}

DRY_ORGANISM = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
DRY_QWEN = {
    **QWEN,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
}
"""``--dry-run``'s shapes: the same code paths, sizes a 2-core CPU runs in seconds."""

MODELS = ("organism-15M", "qwen2.5-0.5B-shape")
CHECKPOINTING = {"organism-15M": False, "qwen2.5-0.5B-shape": True}
"""Gradient checkpointing per model. On for the 0.5B shape because of memory: without it the
activations of 64 completions x ~170 tokens are about 19 GB by ``selfplay.gpu_memory``'s count,
more than a 24 GB GPU leaves beside weights and Adam; on, it is the setting such a run uses."""


@dataclass(frozen=True)
class Sizes:
    """The work of one check: the GPU's, or ``--dry-run``'s tiny one."""

    steps: int
    warmup: int
    batch: int = 64
    generations: int = 8
    completion: int = 128
    sequences: int = 64
    new_tokens: int = 128
    learning_rate: float = 1e-5


class Budget:
    """Wall-clock guard: seconds left of the check's total."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.monotonic()

    @property
    def deadline(self) -> float:
        return self.start + self.seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def spent(self) -> bool:
        return self.elapsed() >= self.seconds


def sync(device: str) -> None:
    """Wait for the GPU's queued work, so a clock read after it counts it."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def step_timer(device: str, deadline: float):
    """A ``TrainerCallback`` timing each step from ``on_step_begin`` to ``on_step_end`` (the
    GPU synchronised at both), which stops training once ``deadline`` (monotonic) is past."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.stopped = False
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            sync(device)
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            self.times.append(time.perf_counter() - self._start)
            if time.monotonic() > deadline:
                self.stopped = control.should_training_stop = True

    return StepTimer()


def tokenizer():
    """The organism's character tokenizer."""
    from selfplay.organism.tokenizer import build_tokenizer

    return build_tokenizer()


def build(name: str, tok, dry: bool):
    """A randomly initialised model of ``name``, on the CPU in float32."""
    import torch

    torch.manual_seed(0)
    if name == "organism-15M":
        from selfplay.organism.pretrain import ModelConfig, build_model

        return build_model(ModelConfig(**(DRY_ORGANISM if dry else ORGANISM)), tok)
    from transformers import Qwen2Config, Qwen2ForCausalLM

    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    model = Qwen2ForCausalLM(Qwen2Config(**(DRY_QWEN if dry else QWEN), **ids))
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model


def prompts(count: int) -> list[list[dict]]:
    """Conversational prompts of arithmetic tasks at every level, as selfplay poses them."""
    from envs import load_env

    env = load_env("arithmetic")
    levels = list(env.levels)
    return [
        [{"role": "user", "content": env.task(0, i, levels[i % len(levels)]).prompt}]
        for i in range(count)
    ]


def length_reward(completions, **_) -> list[float]:
    """Characters / 100: cheap, so the step measured is the trainer's, not a scorer's."""
    return [len(c if isinstance(c, str) else c[-1]["content"]) / 100 for c in completions]


def grpo_args(out: Path, sizes: Sizes, device: str, checkpointing: bool, vllm: bool = False):
    """The GRPOConfig of one timed run; every completion runs the full length."""
    import torch
    from trl import GRPOConfig

    key = "min_tokens" if vllm else "min_new_tokens"  # vLLM's SamplingParams name differs
    extra = {"use_vllm": True, "vllm_mode": "colocate"} if vllm else {}
    return GRPOConfig(
        output_dir=str(out),
        use_cpu=device == "cpu",
        bf16=device == "cuda" and torch.cuda.is_bf16_supported(),
        report_to="none",
        max_steps=sizes.warmup + sizes.steps,
        num_generations=sizes.generations,
        per_device_train_batch_size=sizes.batch,
        max_completion_length=sizes.completion,
        generation_kwargs={key: sizes.completion},
        learning_rate=sizes.learning_rate,
        gradient_checkpointing=checkpointing,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        **extra,
    )


def run_grpo(model, tok, args, sizes: Sizes, device: str, deadline: float) -> dict:
    """Train ``args.max_steps`` GRPO steps; step times, completion lengths, peak memory.

    ``model`` is an object (or, for vLLM, a local folder): with a Qwen2 config saved in a
    folder, AutoTokenizer would load Qwen's tokenizer class instead (STACK.md).
    """
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    rows = prompts((sizes.warmup + sizes.steps) * sizes.batch // sizes.generations * 2)
    timer = step_timer(device, deadline)
    if device == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    trainer = GRPOTrainer(
        model=model,
        processing_class=tok,
        reward_funcs=length_reward,
        args=args,
        train_dataset=Dataset.from_list([{"prompt": p} for p in rows]),
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    sync(device)
    timed = timer.times[sizes.warmup :]
    lengths = [
        h["completions/mean_length"]
        for h in trainer.state.log_history
        if "completions/mean_length" in h
    ]
    result = {
        "steps_timed": len(timed),
        "stopped_at_budget": timer.stopped,
        "step_s": timed,
        "mean_step_s": statistics.mean(timed) if timed else None,
        "mean_completion_length": statistics.mean(lengths) if lengths else None,
        "params": sum(p.numel() for p in trainer.model.parameters()),
    }
    if result["mean_step_s"] and lengths:
        tokens = sizes.batch * result["mean_completion_length"]
        result["completion_tokens_per_s"] = tokens / result["mean_step_s"]
    if device == "cuda":
        result["allocated_before"] = before
        result["max_allocated"] = torch.cuda.max_memory_allocated()
        # What this run added: an earlier run's leftovers are not its memory.
        result["measured"] = result["max_allocated"] - before
        result["max_reserved"] = torch.cuda.max_memory_reserved()
    del trainer
    gc.collect()
    return result


def prompt_length(tok, count: int) -> int:
    """Longest chat-templated prompt, in tokens: the estimate's prompt length."""
    texts = [
        tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
        for p in prompts(count)
    ]
    return max(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])


def memory_estimate(config, args, tok, sizes: Sizes, device: str) -> dict:
    """``selfplay.preflight.estimate`` of the run: its peak, and the part in torch's allocator
    (the peak less the CUDA context, which ``max_memory_allocated`` does not see)."""
    import torch

    from selfplay.preflight import CUDA_CONTEXT, estimate

    total = torch.cuda.get_device_properties(0).total_memory if device == "cuda" else None
    length = prompt_length(tok, (sizes.warmup + sizes.steps) * sizes.batch // sizes.generations)
    est = estimate(config, args, total, prompt_length=length)
    return {
        "total_memory": total,
        "prompt_length": length,
        "peak": est.peak,
        "peak_phase": est.peak_phase,
        "allocator_peak": est.peak - CUDA_CONTEXT,
        "fits": est.fits if total else None,
        "terms": {t.name: t.bytes for t in est.terms},
    }


def grpo_check(name: str, tok, sizes: Sizes, device: str, budget: Budget, dry: bool) -> dict:
    """One model's GRPO run and the memory estimate for it."""
    model = build(name, tok, dry)
    config = model.config
    with tempfile.TemporaryDirectory() as tmp:
        args = grpo_args(Path(tmp), sizes, device, CHECKPOINTING[name])
        est = memory_estimate(config, args, tok, sizes, device)
        run = run_grpo(model, tok, args, sizes, device, budget.deadline)
    del model
    return {**run, "gradient_checkpointing": CHECKPOINTING[name], "estimate": est}


def vllm_check(tok, sizes: Sizes, device: str, budget: Budget, dry: bool) -> dict:
    """The organism's GRPO step with vLLM colocated; any error is the result, not raised.

    vLLM loads the model by its folder, so the organism (a Llama config, whose tokenizer
    reloads as itself) is saved to a temporary one first."""
    if importlib.util.find_spec("vllm") is None:
        return {"status": "vllm: not installed"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "organism"
            model = build("organism-15M", tok, dry)
            model.save_pretrained(folder)
            tok.save_pretrained(folder)
            del model
            args = grpo_args(Path(tmp) / "out", sizes, device, False, vllm=True)
            run = run_grpo(str(folder), tok, args, sizes, device, budget.deadline)
        return {"status": "ok", **run}
    except Exception as error:  # reported in the table: vLLM's failures vary by version
        return {"status": f"error: {type(error).__name__}: {str(error)[:300]}"}


def generation_speed(name: str, tok, sizes: Sizes, device: str, dry: bool) -> dict:
    """Tokens/s of ``model.generate`` sampling ``sizes.sequences`` x ``sizes.new_tokens``."""
    import torch

    dtype = torch.float32
    if device == "cuda" and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    model = build(name, tok, dry).to(device=device, dtype=dtype).eval()
    texts = [
        tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
        for p in prompts(sizes.sequences)
    ]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    options = {"do_sample": True, "top_k": 0, "pad_token_id": tok.pad_token_id}
    with torch.no_grad():
        model.generate(**batch, max_new_tokens=4, min_new_tokens=4, **options)  # warm-up
        sync(device)
        start = time.perf_counter()
        out = model.generate(
            **batch, max_new_tokens=sizes.new_tokens, min_new_tokens=sizes.new_tokens, **options
        )
        sync(device)
        seconds = time.perf_counter() - start
    new = (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]
    del model, out
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "sequences": sizes.sequences,
        "new_tokens": sizes.new_tokens,
        "seconds": seconds,
        "tokens_per_s": new / seconds,
    }


def fmt(value, spec: str = ".3f") -> str:
    """A number for a table cell; "-" for a missing one."""
    return "-" if value is None else format(value, spec)


def new_table(title: str, columns: str):
    """A rich table: a left-aligned "model" column, then ``columns`` ("|"-separated), right."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("model")
    for column in columns.split("|"):
        table.add_column(column, justify="right")
    return table


def grpo_table(results: dict):
    """GRPO step times, one row per run."""
    columns = "params|ckpt|steps|mean s/step|min|max|compl. len|compl. tok/s"
    table = new_table("GRPO steps (TRL GRPOTrainer; warm-up steps left out)", columns)
    for name, r in results.items():
        if "step_s" not in r:
            table.add_row(name, *[""] * 7, r.get("status", ""))
            continue
        steps = r["step_s"]
        table.add_row(
            name,
            f"{r['params'] / 1e6:.2f}M",
            "on" if r.get("gradient_checkpointing") else "off",
            str(r["steps_timed"]) + (" (budget)" if r["stopped_at_budget"] else ""),
            fmt(r["mean_step_s"]),
            fmt(min(steps) if steps else None),
            fmt(max(steps) if steps else None),
            fmt(r["mean_completion_length"], ".1f"),
            fmt(r.get("completion_tokens_per_s"), ",.0f"),
        )
    return table


def memory_table(results: dict):
    """Measured peak memory of each GRPO run beside selfplay's estimate."""
    gib = 2**30
    title = "GRPO memory: torch.cuda.max_memory_allocated vs selfplay.preflight"
    columns = "estimate peak|est. in allocator|measured|est./measured|reserved"
    table = new_table(title, columns)
    for name, r in results.items():
        est = r["estimate"]
        measured = r.get("measured")
        cells = ["n/a on CPU"] * 3
        if measured:
            ratio = est["allocator_peak"] / measured
            cells = [
                f"{measured / gib:.2f} GiB",
                f"{ratio:.2f}",
                f"{r['max_reserved'] / gib:.2f} GiB",
            ]
        peak = f"{est['peak'] / gib:.2f} GiB ({est['peak_phase']})"
        table.add_row(name, peak, f"{est['allocator_peak'] / gib:.2f} GiB", *cells)
    table.caption = (
        "est. in allocator: the estimate less the 0.5 GiB CUDA context it assumes; measured: "
        "max_memory_allocated less what was allocated before the run"
    )
    return table


def generation_table(results: dict):
    """``generate`` tokens/s, one row per model."""
    title = "model.generate (do_sample, top_k=0, every sequence full length)"
    table = new_table(title, "dtype|sequences|new tokens|seconds|tokens/s")
    for name, r in results.items():
        table.add_row(
            name,
            r["dtype"],
            str(r["sequences"]),
            str(r["new_tokens"]),
            fmt(r["seconds"], ".2f"),
            fmt(r["tokens_per_s"], ",.0f"),
        )
    return table


def versions() -> dict:
    """Installed versions of the stack measured."""
    found = {}
    for package in ("torch", "transformers", "trl", "accelerate", "datasets", "vllm"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def sections(tok, sizes: Sizes, device: str, budget: Budget, dry: bool, report: dict):
    """The rich console and each section as (name, function, whether it measures): a section
    that measures is skipped once the budget is spent; one that prints a table never is."""
    from rich.console import Console

    console = Console(width=120)  # a pipe's 80 columns would cut the model names
    have_trl = importlib.util.find_spec("trl") is not None
    have_vllm = importlib.util.find_spec("vllm") is not None

    def grpo(name: str):
        return lambda: report["grpo"].update(
            {name: grpo_check(name, tok, sizes, device, budget, dry)}
        )

    def generation(name: str):
        return lambda: report["generation"].update(
            {name: generation_speed(name, tok, sizes, device, dry)}
        )

    def show_grpo():
        if report["grpo"]:
            console.print(grpo_table(report["grpo"]))
            console.print(memory_table(report["grpo"]))

    def show_generation():
        if report["generation"]:
            console.print(generation_table(report["generation"]))

    def vllm():
        report["vllm"] = vllm_check(tok, sizes, device, budget, dry)
        console.print(report["vllm"]["status"])
        if report["vllm"]["status"] == "ok":
            console.print(grpo_table({"organism-15M + vLLM colocate": report["vllm"]}))

    steps = [(f"grpo {n}", grpo(n), True) for n in MODELS] if have_trl else []
    steps.append(("grpo tables", show_grpo, False))
    steps += [(f"generation {n}", generation(n), True) for n in MODELS]
    steps.append(("generation table", show_generation, False))
    if not have_trl:
        console.print("trl: not installed; GRPO and vLLM sections skipped")
    else:
        steps.append(("vllm", vllm, have_vllm))  # not installed: one line, no cost
    return console, steps


def run_sections(console, steps: list, budget: Budget, report: dict, out: Path | None) -> None:
    """Run each section in turn; an error is printed and recorded, and the rest still run.
    The JSON is rewritten after every section, so a crash keeps what was measured."""
    import traceback

    for index, (name, run, measures) in enumerate(steps):
        if measures and budget.spent():
            if not report["skipped"]:
                report["skipped"] = [n for n, _, m in steps[index:] if m]
                console.print(
                    f"budget of {budget.seconds:.0f} s spent ({budget.elapsed():.0f} s "
                    f"elapsed): skipping {', '.join(report['skipped'])}"
                )
            continue
        try:
            run()
        except Exception as error:
            traceback.print_exc()
            report["errors"][name] = f"{type(error).__name__}: {error}"
            console.print(f"[red]{name} failed:[/red] {report['errors'][name]}")
        report["elapsed_s"] = budget.elapsed()
        if out:
            out.write_text(json.dumps(report, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write every number as JSON")
    parser.add_argument("--steps", type=int, default=None, help="timed GRPO steps (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="GRPO steps left out")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds, all sections")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU")
    cli = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded, ever
    # TRL and transformers still use the old name internally: one warning per run, not ours.
    warnings.filterwarnings("ignore", "`(is_)?gradient_checkpointing", FutureWarning)

    import torch

    if not torch.cuda.is_available() and not cli.dry_run:
        print("gpu_check: no CUDA GPU here; nothing measured")
        return
    budget = Budget(cli.budget)
    device = "cpu" if cli.dry_run else "cuda"
    if cli.dry_run:
        sizes = Sizes(cli.steps or 1, cli.warmup, completion=8, new_tokens=8)
    else:
        sizes = Sizes(cli.steps or 4, cli.warmup)
    report = {
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "dry_run": cli.dry_run,
        "versions": versions(),
        "sizes": asdict(sizes),
        "budget_s": cli.budget,
        "grpo": {},
        "generation": {},
        "vllm": None,
        "skipped": [],
        "errors": {},
    }
    console, steps = sections(tokenizer(), sizes, device, budget, cli.dry_run, report)
    console.print(f"gpu_check on {report['gpu'] or 'the CPU (dry run: numbers mean nothing)'}")
    console.print(", ".join(f"{k} {v}" for k, v in report["versions"].items() if v))
    run_sections(console, steps, budget, report, cli.out)
    console.print(f"gpu_check: {budget.elapsed():.0f} s")
    if cli.out:
        console.print(f"wrote {cli.out}")
    if report["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
