"""Batched generation and scoring of environment tasks (used by pretraining, sampling, eval).

``selfplay.accuracy`` builds greedy and sampled accuracy on these."""

from __future__ import annotations

from dataclasses import dataclass

from envs import Environment, Task, Verdict


@dataclass(frozen=True)
class Attempt:
    """One completion of one task and its verdict."""

    task: Task
    completion: str
    verdict: Verdict


def messages(task: Task, system: str = "") -> list[dict[str, str]]:
    """A task as chat messages: the system prompt (when there is one), then the task."""
    return prompt_messages(task.prompt, system)


def prompt_messages(prompt: str, system: str = "") -> list[dict[str, str]]:
    """A user prompt as chat messages, after the system prompt when there is one."""
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt}]


def chat_prompts(tokenizer, tasks: list[Task], system: str = "") -> list[str]:
    """Each task's prompt as the model's chat template renders it, ready for generation."""
    return [
        tokenizer.apply_chat_template(
            messages(t, system), add_generation_prompt=True, tokenize=False
        )
        for t in tasks
    ]


def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int,
    temperature: float,
    batch_size: int = 64,
    on_batch=None,
) -> list[str]:
    """Complete each prompt; temperature 0 is greedy, otherwise plain sampling (no top-k/top-p).

    Llama-shaped models (the organism) go through ``selfplay.decode.Sampler``, which draws what
    ``model.generate`` draws with less per-token overhead; others through ``generate``.

    ``on_batch(n)`` is called after each batch with the number of prompts it completed.
    """
    import torch

    from selfplay.decode import Sampler, unsupported

    outputs: list[str] = []
    model.eval()
    fast = Sampler(model) if not unsupported(model) else None
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        batch = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        options = dict(
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **(sampling if temperature > 0 else dict(do_sample=False)),
        )
        with torch.no_grad():
            if fast is not None:
                # fp32 even inside a bf16 run's autocast region (cast_once): the fast sampler's
                # draws are generate's fp32 draws, and at the organism's size bf16 is slower.
                with torch.autocast("cpu", enabled=False):
                    out = fast.generate(batch["input_ids"], batch["attention_mask"], **options)
            else:
                out = model.generate(**batch, **options)
        new = out[:, batch["input_ids"].shape[1] :]
        outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
        if on_batch is not None:
            on_batch(len(chunk))
    return outputs


def completion_logprobs(
    model, tokenizer, prompts: list[str], completions: list[str], *, batch_size: int = 16
) -> list[list[float]]:
    """The log-probability of each token of each completion given its prompt, under ``model``.

    Prompt and completion are tokenized apart and joined, as a trainer joins prompt and
    completion ids; the completion's end-of-sequence token is not scored. Used for the base
    model's probability of another model's solutions and for the gold answer's probability.
    """
    return [lp for lp, _ in teacher_forced(model, tokenizer, prompts, completions, batch_size)]


def teacher_forced(
    model, tokenizer, prompts: list[str], completions: list[str], batch_size: int = 16
) -> list[tuple[list[float], list[bool]]]:
    """Per completion, teacher-forced after its prompt: each token's log-probability under
    ``model`` and whether it is the model's most likely next token (its per-token accuracy),
    tokenized as ``completion_logprobs`` says."""
    import torch

    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    pad = tokenizer.pad_token_id
    out: list[tuple[list[float], list[bool]]] = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        pairs = [
            (
                tokenizer(p, add_special_tokens=False)["input_ids"],
                tokenizer(c, add_special_tokens=False)["input_ids"],
            )
            for p, c in zip(
                prompts[start : start + batch_size],
                completions[start : start + batch_size],
                strict=True,
            )
        ]
        width = max(len(p) + len(c) for p, c in pairs)
        ids = torch.full((len(pairs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for row, (p, c) in enumerate(pairs):  # left padding, as for generation
            seq = p + c
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
        # Only the last `keep` positions predict completion tokens: keeping just their logits
        # bounds memory by the completions, not the prompts (a 262k vocabulary adds up).
        keep = max(len(c) for _, c in pairs) + 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
        logits = logits[:, -keep:-1].float()
        targets = ids[:, width - keep + 1 :, None]
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets)[..., 0]
        hits = logits.argmax(dim=-1) == targets[..., 0]
        for row, (_, c) in enumerate(pairs):
            at = keep - 1 - len(c)
            out.append((logprobs[row, at:].tolist(), hits[row, at:].tolist()) if c else ([], []))
    return out


def attempt(
    model,
    tokenizer,
    env: Environment,
    tasks: list[Task],
    *,
    max_new_tokens: int,
    temperature: float,
    batch_size: int = 64,
    system: str = "",
) -> list[Attempt]:
    """Generate one completion per task and score it with the environment's scorer."""
    texts = generate(
        model,
        tokenizer,
        chat_prompts(tokenizer, tasks, system),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        batch_size=batch_size,
    )
    return scored(env, tasks, texts)


def scored(env: Environment, tasks: list[Task], texts: list[str]) -> list[Attempt]:
    """Each task's completion with the environment's verdict on it."""
    return [Attempt(t, c, env.score(c, t)) for t, c in zip(tasks, texts, strict=True)]
