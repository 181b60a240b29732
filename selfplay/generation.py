"""Batched generation and scoring of environment tasks (used by pretraining, sampling, eval)."""

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
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": task.prompt}]


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
) -> list[str]:
    """Complete each prompt; temperature 0 is greedy, otherwise plain sampling (no top-k/top-p)."""
    import torch

    outputs: list[str] = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        batch = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **(sampling if temperature > 0 else dict(do_sample=False)),
            )
        new = out[:, batch["input_ids"].shape[1] :]
        outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
    return outputs


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
    return [Attempt(t, c, env.score(c, t)) for t, c in zip(tasks, texts, strict=True)]


def greedy_and_sampled(
    model,
    tokenizer,
    env: Environment,
    tasks: list[Task],
    *,
    max_new_tokens: int,
    system: str = "",
) -> dict[str, float]:
    """Mean score of one greedy and one sampled (temperature 1) completion per task."""
    scores = {}
    for mode, temperature in (("greedy", 0.0), ("sampled", 1.0)):
        attempts = attempt(
            model,
            tokenizer,
            env,
            tasks,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            system=system,
        )
        scores[mode] = sum(a.verdict.score for a in attempts) / len(attempts)
    return scores
