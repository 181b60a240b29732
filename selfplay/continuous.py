"""Continuous counterparts of exact match, for telling a metric artefact from a transition.

Exact match jumps from 0 to 1 on a task when the last wrong character of the answer turns
right, however gradually the model got there. Three smooth measures sit beside it:

- ``gold_logprob``: the mean log-probability per token of the gold final tag
  (``env.target(task)``, e.g. ``<answer>42</answer>``), teacher-forced after the model's own
  reasoning (the greedy completion up to where its final tag opens);
- ``edit_distance``: the token edit distance between the parsed answer and the gold answer,
  divided by the longer of the two (0 is exact, 1 is nothing in common or no answer);
- ``confidence`` and ``brier``: the probability the model gives its own final tag after its
  reasoning, and the Brier score ``(confidence - correct)^2`` of that as a forecast.
"""

from __future__ import annotations

import math

from envs import Environment, parse_completion
from envs.format import ANSWER_OPEN, ASK_OPEN
from selfplay.generation import Attempt, completion_logprobs


def levenshtein(a: list, b: list) -> int:
    """Edit distance (insertions, deletions, substitutions) between two sequences."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def reasoning_prefix(completion: str) -> str:
    """The completion up to where its final tag opens (all of it when it has none)."""
    at = max(completion.rfind(ANSWER_OPEN), completion.rfind(ASK_OPEN))
    return completion[:at] if at != -1 else completion


def continuous_metrics(
    model, tokenizer, env: Environment, prompts: list[str], attempts: list[Attempt]
) -> list[dict[str, float]]:
    """Per attempt: exact, gold_logprob, edit_distance, confidence, brier (see module doc).

    ``prompts`` are the rendered prompts the attempts were generated from. Tasks without a
    gold target (judge-only) get NaN for the gold measures.
    """
    if len(prompts) != len(attempts):
        raise ValueError(f"{len(prompts)} prompts for {len(attempts)} attempts")
    contexts, golds, owns = [], [], []
    for prompt, a in zip(prompts, attempts, strict=True):
        prefix = prompt + reasoning_prefix(a.completion)
        contexts.append(prefix)
        golds.append(env.target(a.task) if a.task.answer is not None else "")
        owns.append(a.completion[len(reasoning_prefix(a.completion)) :])
    scored = completion_logprobs(model, tokenizer, contexts + contexts, golds + owns)
    gold_lp, own_lp = scored[: len(attempts)], scored[len(attempts) :]
    rows = []
    for a, gold, g, o in zip(attempts, golds, gold_lp, own_lp, strict=True):
        correct = float(a.verdict.score)
        confidence = math.exp(sum(o)) if o else 0.0
        rows.append(
            {
                "exact": correct,
                "gold_logprob": sum(g) / len(g) if g else math.nan,
                "edit_distance": _answer_distance(tokenizer, a, gold),
                "confidence": confidence,
                "brier": (confidence - correct) ** 2,
            }
        )
    return rows


def _answer_distance(tokenizer, attempt: Attempt, gold: str) -> float:
    if not gold:
        return math.nan
    said = parse_completion(attempt.completion).answer
    if said is None:
        return 1.0
    want = tokenizer(str(attempt.task.answer), add_special_tokens=False)["input_ids"]
    got = tokenizer(said.strip(), add_special_tokens=False)["input_ids"]
    longest = max(len(want), len(got))
    return levenshtein(want, got) / longest if longest else 0.0


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each measure over rows, NaN entries left out (NaN when all are)."""
    out = {}
    for key in ("exact", "gold_logprob", "edit_distance", "confidence", "brier"):
        values = [r[key] for r in rows if not math.isnan(r[key])]
        out[key] = sum(values) / len(values) if values else math.nan
    return out
