"""`selfplay pretrain`: train the base-model organism from scratch on a generated corpus.

The organism is a small Llama-architecture transformer with a character-level tokenizer,
trained by next-token prediction on packed documents ``<bos><|user|>task<|assistant|>worked
solution<|end|>``. The result is saved with ``save_pretrained`` and loads like any hub model.
Folders are named by a hash of the config, so the same recipe is trained once and reused.
The weights are saved before the evaluation runs, and a folder is replaced whole or not at all
(``selfplay.organism.folder``): a kill or a crash never leaves a broken organism to reuse.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from selfplay.config import ADDED_LATER, config_hash, load_config, to_dict
from selfplay.organism.corpus import CorpusConfig, build_envs, documents
from selfplay.organism.folder import RESULT_FILE as RESULT_FILE  # where callers look for it
from selfplay.organism.folder import incomplete, read_result, recover, save, update_result
from selfplay.precision import PRECISIONS, uses_bf16

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class ModelConfig:
    """Shape of the organism (Llama architecture)."""

    hidden_size: int = 128
    """Width of the residual stream."""
    num_layers: int = 2
    """Transformer blocks."""
    num_heads: int = 4
    """Attention heads."""
    intermediate_size: int = 512
    """Width of the MLP."""
    max_positions: int = 512
    """Longest sequence the model can be prompted with (prompt plus completion)."""

    def __post_init__(self) -> None:
        sizes = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_positions")
        _at_least(self, "model", sizes, 1)
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"model.hidden_size {self.hidden_size} is not divisible by "
                f"model.num_heads {self.num_heads}"
            )
        if self.hidden_size // self.num_heads % 2:
            raise ValueError(
                f"model.hidden_size / model.num_heads must be even (RoPE rotates pairs of "
                f"dimensions), got {self.hidden_size} / {self.num_heads}"
            )


@dataclass
class TrainConfig:
    """Optimisation of the pretraining run."""

    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 32
    """Packed sequences per step."""
    seq_len: int = 256
    """Tokens per packed sequence."""
    learning_rate: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay to a tenth)."""
    warmup_steps: int = 50
    """Steps of linear warm-up."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    seed: int = 0
    """Seed for initialisation and batch order."""
    threads: int = 0
    """Torch CPU threads; 0 leaves torch's default."""
    precision: str = field(default="fp32", metadata={ADDED_LATER: True})
    """"fp32", "bf16" (autocast; weights and AdamW stay fp32) or "auto" (bf16 where the CPU
    has it natively, ``selfplay.precision``, else fp32). fp32 until the organism's accuracy
    table is shown unchanged in bf16 (issue 18)."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        _at_least(self, "train", ("steps", "batch_size", "seq_len"), 1)
        _at_least(self, "train", ("warmup_steps", "threads"), 0)
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(
                f"train.learning_rate must be a positive number, got {self.learning_rate}"
            )
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(
                f"train.weight_decay must be a number of at least 0, got {self.weight_decay}"
            )
        if self.warmup_steps > self.steps:
            raise ValueError(
                f"train.warmup_steps {self.warmup_steps} exceeds train.steps {self.steps}"
            )


@dataclass
class EvalConfig:
    """The accuracy table printed when pretraining ends."""

    tasks_per_level: int = 64
    """Held-out tasks per environment and level."""
    max_new_tokens: int = 192
    """Completion budget; a completion cut off before its final tag scores 0."""
    seed: int = 1234
    """Seed of evaluation tasks (distinct from the corpus seed)."""

    def __post_init__(self) -> None:
        _at_least(self, "eval", ("tasks_per_level", "max_new_tokens"), 1)


@dataclass
class OrganismConfig:
    """Everything that defines an organism; its hash names the output folder."""

    corpus: CorpusConfig
    """The corpus recipe."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Model shape."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation after training."""
    name: str = "organism"
    """Prefix of the output folder name."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"name must be letters, digits, '.', '_' or '-' (not first), got {self.name!r}"
            )
        positions = self.model.max_positions
        if self.train.seq_len > positions:
            raise ValueError(
                f"train.seq_len {self.train.seq_len} exceeds model.max_positions {positions}"
            )
        if self.eval.max_new_tokens >= positions:
            raise ValueError(
                f"eval.max_new_tokens {self.eval.max_new_tokens} must be less than "
                f"model.max_positions {positions} (the prompt needs room too)"
            )


def _at_least(section: object, prefix: str, names: tuple[str, ...], low: int) -> None:
    """ValueError naming ``prefix.name`` for the first of ``names`` below ``low``."""
    for name in names:
        value = getattr(section, name)
        if value < low:
            raise ValueError(f"{prefix}.{name} must be at least {low}, got {value}")


def organism_dir(config: OrganismConfig, root: str | Path) -> Path:
    """Where an organism with this config lives: ``<root>/<name>-<config hash>``."""
    return Path(root) / f"{config.name}-{config_hash(config)}"


def pretrain(
    config_path: str | Path, root: str | Path = "models", force: bool = False, console=None
) -> Path:
    """Train (or reuse) the organism described by ``config_path``; return its folder."""
    from rich.console import Console

    console = console or Console()
    config = load_config(config_path, OrganismConfig)  # refuses a bad config before any work
    out = organism_dir(config, root)
    recover(out, console)
    problem = incomplete(out) if out.exists() else None
    if problem and not force:
        console.print(f"Organism {out} is incomplete ({problem}): training it again")
    if force or not out.exists() or problem:
        result = train_organism(config, out, console)
    else:
        console.print(f"Reusing organism [bold]{out}[/] (same config hash; --force retrains)")
        result = read_result(out)
        if "eval" not in result:
            console.print(f"Evaluating {out}: its evaluation did not finish when it was trained")
            result = evaluate_saved(config, out, console)
    from selfplay.organism.accuracy import accuracy_table
    from selfplay.tables import peak_memory

    console.print(accuracy_table(result["eval"], title=f"Organism {out.name}"))
    console.print(peak_memory())
    return out


def train_organism(config: OrganismConfig, out: Path, console) -> dict:
    """Build and train an organism, save it to ``out`` (atomically), then evaluate it."""
    import torch

    from selfplay.organism.tokenizer import build_tokenizer

    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    tokenizer = build_tokenizer()
    model = build_model(config.model, tokenizer)
    envs = build_envs(config.corpus)
    params = sum(p.numel() for p in model.parameters())
    console.print(
        f"Pretraining organism: {params / 1e6:.2f}M parameters, {config.train.steps} steps"
    )

    start = time.perf_counter()
    stream = token_blocks(config, envs, tokenizer)
    losses = train_loop(model, stream, config.train, console)
    train_seconds = time.perf_counter() - start

    result = {
        "config": to_dict(config),
        "config_hash": config_hash(config),
        "parameters": params,
        "train_seconds": round(train_seconds, 1),
        "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
        "tokens_seen": config.train.steps * config.train.batch_size * config.train.seq_len,
        # What train.precision meant on this machine ("auto" differs between CPUs).
        "precision": "bf16" if uses_bf16(config.train.precision, cuda=False) else "fp32",
    }
    # Saved before evaluating: a crash in the evaluation never costs the training.
    save(out, model, tokenizer, result)
    console.print(f"Saved {out} (train {train_seconds:.0f}s, final loss {result['final_loss']})")
    return evaluate_organism(model, tokenizer, envs, config, out, console)


def evaluate_organism(
    model, tokenizer, envs: dict, config: OrganismConfig, out: Path, console
) -> dict:
    """Evaluate a saved organism and add the accuracy rows to its ``organism.json``; return
    the whole record."""
    from selfplay.organism.accuracy import evaluate

    start = time.perf_counter()
    rows = evaluate(model, tokenizer, envs, config, console)
    judge = _verifier_quality(model, tokenizer, envs, config, console)
    seconds = time.perf_counter() - start
    extra = {"eval_seconds": round(seconds, 1), "eval": rows}
    result = update_result(out, {**extra, **({"verifier": judge} if judge is not None else {})})
    console.print(f"Evaluated {out} ({seconds:.0f}s)")
    return result


def evaluate_saved(config: OrganismConfig, out: Path, console) -> dict:
    """``evaluate_organism`` on the organism saved in ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    return evaluate_organism(model, tokenizer, build_envs(config.corpus), config, out, console)


def _verifier_quality(model, tokenizer, envs: dict, config: OrganismConfig, console):
    """With Judge documents in the corpus: the organism's agreement with ground truth as a
    Judge (``selfplay.verifier.measure``) on held-out candidates, printed; else None."""
    if not config.corpus.verifier_rate:
        return None
    from selfplay.verifier import Verifier, measure

    verify = Verifier(model, tokenizer, think_tokens=config.eval.max_new_tokens)
    rows = measure(verify, envs, config.corpus, config.eval.seed, config.eval.tasks_per_level)
    total = sum(r["n"] for r in rows)
    agreement = sum(r["agreement"] * r["n"] for r in rows) / total
    for r in rows:
        console.print(
            f"  judge {r['env']} level {r['level']}: agreement {r['agreement']:.2f} "
            f"(false positives {_rate(r['false_positive_rate'])}, "
            f"false negatives {_rate(r['false_negative_rate'])}, n {r['n']})"
        )
    console.print(
        f"  judge overall: agreement {agreement:.3f} on {total} held-out candidates "
        f"(corpus labels flipped: {config.corpus.verifier_error_rate:.0%})"
    )
    return {"agreement": agreement, "n": total, "levels": rows}


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def build_model(shape: ModelConfig, tokenizer):
    """A freshly initialised Llama causal LM sized for the tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=shape.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def token_blocks(config: OrganismConfig, envs: dict, tokenizer):
    """Endless packed blocks of ``seq_len + 1`` token ids from the corpus stream."""
    block = config.train.seq_len + 1
    buffer: list[int] = []
    docs = documents(config.corpus, envs)
    while True:
        texts = []
        while len(texts) < 256:
            task, completion = next(docs)
            texts.append(
                tokenizer.apply_chat_template(
                    [
                        {"role": "user", "content": task.prompt},
                        {"role": "assistant", "content": completion},
                    ],
                    tokenize=False,
                )
            )
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            buffer.extend(ids)
        while len(buffer) >= block:
            yield buffer[:block]
            buffer = buffer[block:]


def train_loop(model, blocks, train: TrainConfig, console) -> list[float]:
    """Plain next-token training with AdamW, warm-up and cosine decay; returns the losses."""
    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=train.learning_rate,
        weight_decay=train.weight_decay,
        betas=(0.9, 0.95),
    )

    def schedule(step: int) -> float:
        if step < train.warmup_steps:
            return (step + 1) / train.warmup_steps
        progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    bf16 = uses_bf16(train.precision, console, cuda=False)  # pretraining runs on the CPU
    model.train()
    losses: list[float] = []
    columns = [
        TextColumn("pretrain"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
    ]
    # A bar on a terminal; in a log (CI, nohup) a line every tenth of the run instead.
    every = max(1, train.steps // 10)
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task("pretrain", total=train.steps, loss=float("nan"))
        for step in range(train.steps):
            batch = torch.tensor([next(blocks) for _ in range(train.batch_size)])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=batch[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pretraining loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            recent = sum(losses[-20:]) / len(losses[-20:])
            progress.update(bar, advance=1, loss=recent)
            if not console.is_terminal and ((step + 1) % every == 0 or step + 1 == train.steps):
                console.print(f"  pretrain step {step + 1}/{train.steps} loss {recent:.3f}")
    model.eval()
    return losses
