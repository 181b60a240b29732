"""A language model as Judge: how its verdict is scored, and how one is taught.

What the Judge reads and answers (the rubric, ``judge_prompt``, ``candidate_line``, ``yes`` or
``no``) is in ``selfplay.judge_format``. Its reasoning is optional (``think_tokens``, greedy, up
to ``</think>``). The candidate comes after the Judge's reasoning on purpose: a first Judge
organism that read the candidate in the prompt learnt to copy it into its working and agree
with it (agreement with ground truth 0.52, chance). The log-probabilities of the two replies
are compared, so a verdict never fails to parse and comes with p(yes); and the reasoning
depends on the task alone, so it is generated once per task however many answers are judged.

``Verifier`` does the scoring with any causal LM: a separate judge model, or the policy itself
under the judge prompt. The organism learns the role from corpus documents made here
(``verifier_document``): a task worked out, then a candidate answer, either its right answer
or a near miss, labelled by the environment's scorer, with a share of labels flipped on
purpose (``corpus.verifier_error_rate``) so that a Judge of known, imperfect quality can be
studied.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from envs import Environment, Task, parse_completion, render_completion
from envs.format import THINK_CLOSE
from selfplay.generation import completion_logprobs, generate, prompt_messages
from selfplay.judge_format import (
    NO,
    YES,
    candidate_line,
    candidate_of,
    judge_prompt,
    rubric_for,
    verdict_of,
)
from selfplay.judges import ModelJudge, VerdictCache, reliability

# -- teaching the organism the Judge's role ------------------------------------------------


def verifier_document(
    env: Environment, task: Task, rng: random.Random, error_rate: float
) -> tuple[Task, str]:
    """A (judge prompt, completion) document for a specified task with ground truth: the
    completion works the task out (``<think>`` steps, as a solution would), then states a
    candidate and says "yes" or "no" to it.

    The candidate is the task's right answer or, with even odds, a near miss of it (one digit
    changed). Its label is the environment's own score of it, flipped with probability
    ``error_rate``: the corpus teaches a Judge that is wrong that often, by construction.
    """
    answer = parse_completion(env.target(task)).answer or ""
    if rng.random() < 0.5:
        answer = near_miss(answer, rng)
    right = env.score(f"<answer>{answer}</answer>", task).score == 1.0
    if rng.random() < error_rate:
        right = not right
    prompt = judge_prompt(rubric_for(env), task.prompt)
    verdict = candidate_line(answer) + (YES if right else NO)
    return replace(task, prompt=prompt), render_completion(env.solution(task), verdict)


def near_miss(answer: str, rng: random.Random) -> str:
    """``answer`` with one digit replaced by another (a sign added if it has no digit)."""
    digits = [i for i, ch in enumerate(answer) if ch.isdigit()]
    if not digits:
        return f"-{answer}"
    i = rng.choice(digits)
    other = rng.choice([d for d in "0123456789" if d != answer[i]])
    return answer[:i] + other + answer[i + 1 :]


# -- scoring with a model ------------------------------------------------------------------


@dataclass
class Verifier:
    """p(yes) for judge prompts, from a causal LM's log-probabilities of ``yes`` and ``no``.

    With ``think_tokens`` the model first works the task out: it continues the prompt greedily
    for up to that many tokens, up to its ``</think>``, and the two replies are compared after
    that reasoning (the verifier organism learns to judge this way). ``model`` may be the
    policy being trained: its current weights judge, under no_grad, its train/eval mode is
    restored afterwards, and ``version()`` changes when the weights do, so cached verdicts of
    older weights are not reused.
    """

    model: object
    tokenizer: object
    batch_size: int = 32
    system_prompt: str = ""
    think_tokens: int = 0
    words: tuple[str, str] = (YES, NO)

    def __post_init__(self) -> None:
        ids = [self.tokenizer(w, add_special_tokens=False)["input_ids"] for w in self.words]
        if not all(ids) or ids[0] == ids[1]:
            raise ValueError(f"model judge: the tokenizer cannot tell {self.words} apart")

    def __call__(self, items: list[tuple[str, str]]) -> list[float]:
        """p(yes) for each (judge prompt, candidate answer), normalised over the two replies."""
        prompts = list(dict.fromkeys(p for p, _ in items))  # reasoning once per task
        heads = {
            p: self.tokenizer.apply_chat_template(
                prompt_messages(p, self.system_prompt), add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        }
        training = getattr(self.model, "training", False)
        try:
            if self.think_tokens:
                thoughts = generate(
                    self.model,
                    self.tokenizer,
                    [heads[p] for p in prompts],
                    max_new_tokens=self.think_tokens,
                    temperature=0.0,
                    batch_size=self.batch_size,
                )
                for p, thought in zip(prompts, thoughts, strict=True):
                    heads[p] += _reasoning(thought)
            asked = [heads[p] + candidate_line(answer) for p, answer in items]
            logprobs = completion_logprobs(
                self.model,
                self.tokenizer,
                [h for h in asked for _ in self.words],
                [w for _ in asked for w in self.words],
                batch_size=self.batch_size,
            )
        finally:
            if training:
                self.model.train()
        scores = [sum(lp) for lp in logprobs]
        return [_sigmoid(scores[2 * i] - scores[2 * i + 1]) for i in range(len(items))]

    def version(self) -> float:
        """A fingerprint of the weights: the sum of the last parameter tensor."""
        last = list(self.model.parameters())[-1]
        return float(last.detach().double().sum())


def _reasoning(text: str) -> str:
    """Generated reasoning up to and including ``</think>`` (all of it when never closed)."""
    end = text.find(THINK_CLOSE)
    return text if end < 0 else text[: end + len(THINK_CLOSE)]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def model_judge(config, envs: dict, judge_path: str, policy: tuple, console):
    """The ``ModelJudge`` of ``judge: model``: it measures itself against the ground truth and
    warns when agreement falls below ``model_judge.agreement_floor``.

    ``judge_path`` "policy" judges with the model being trained (under the run's system
    prompt); otherwise the Judge model is loaded from ``judge_path`` and never trained.
    """
    spec = config.model_judge
    if judge_path == "policy":
        (model, tokenizer), system = policy, config.system_prompt
    else:
        import torch

        from selfplay.models import load_model

        model, tokenizer = load_model(judge_path)
        model.eval()
        if torch.cuda.is_available():
            model.to("cuda")
        system = ""
    verifier = Verifier(
        model,
        tokenizer,
        batch_size=spec.batch_size,
        system_prompt=system,
        think_tokens=spec.think_tokens,
    )
    return ModelJudge(
        envs,
        verifier,
        rubric=spec.rubric,
        floor=spec.agreement_floor,
        cache=VerdictCache(spec.cache_size),
        warn=lambda message: console.print(f"[yellow]warning:[/] {message}"),
    )


def measure(verify, envs: dict, recipe, seed: int, per_level: int) -> list[dict]:
    """A Judge's agreement with ground truth on held-out candidates, per environment and level.

    ``recipe``: the corpus recipe (``CorpusConfig``), whose environments and trained levels
    are measured; tasks come from ``seed`` (the organism's eval seed, not the corpus's). Half
    the candidates are right answers and half near misses, labelled by the environment alone
    (no flipped labels): this is the Judge's true quality, whatever its corpus taught.
    """
    rows = []
    for name, env_recipe in recipe.envs.items():
        env = envs[name]
        for level in env_recipe.levels:
            tasks = [env.task(seed, i, level) for i in range(per_level)]
            tasks = [t for t in tasks if t.specified and t.answer is not None]
            if not tasks:
                continue
            rng = random.Random(f"verifier-eval/{seed}/{name}/{level}")
            docs = [verifier_document(env, t, rng, 0.0) for t in tasks]
            p_yes = verify([(task.prompt, candidate_of(text)) for task, text in docs])
            tp = fp = fn = tn = 0
            for (_, text), p in zip(docs, p_yes, strict=True):
                yes, right = p > 0.5, verdict_of(text) == YES
                tp, fp = tp + (yes and right), fp + (yes and not right)
                fn, tn = fn + (right and not yes), tn + (not yes and not right)
            rates = reliability(tp, fp, fn, tn)
            rows.append(
                {
                    "env": name,
                    "level": level,
                    "n": len(docs),
                    **{
                        key: rates.get(f"judge/{key}")
                        for key in ("agreement", "false_positive_rate", "false_negative_rate")
                    },
                }
            )
    return rows
