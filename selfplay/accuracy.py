"""Greedy and sampled accuracy of a model on an environment's tasks, with the continuous
measures of ``selfplay.continuous`` beside them when asked (organism evaluation, probes)."""

from __future__ import annotations

from envs import Environment, Task
from selfplay.continuous import continuous_metrics, mean_metrics
from selfplay.generation import chat_prompts, generate, scored


def greedy_and_sampled(
    model,
    tokenizer,
    env: Environment,
    tasks: list[Task],
    *,
    max_new_tokens: int,
    system: str = "",
    continuous: bool = False,
) -> dict[str, float]:
    """Mean score of one greedy and one sampled (temperature 1) completion per task.

    ``continuous``: also the means of ``selfplay.continuous``'s measures on the greedy
    completions (gold_logprob, edit_distance, confidence, brier).
    """
    prompts = chat_prompts(tokenizer, tasks, system)
    scores = {}
    for mode, temperature in (("greedy", 0.0), ("sampled", 1.0)):
        texts = generate(
            model, tokenizer, prompts, temperature=temperature, max_new_tokens=max_new_tokens
        )
        attempts = scored(env, tasks, texts)
        scores[mode] = sum(a.verdict.score for a in attempts) / len(attempts)
        if continuous and mode == "greedy":
            measured = mean_metrics(continuous_metrics(model, tokenizer, env, prompts, attempts))
            scores.update({k: v for k, v in measured.items() if k != "exact"})
    return scores
