"""A language model as Judge: what it reads, how its verdict is read, and how one is taught.

The model Judge reads one prompt per completion (``judge_prompt``)::

    <rubric>
    Task: <the task's prompt>
    Candidate: <the completion's final answer>

and its verdict is the likelier of the two replies ``yes`` and ``no``: their log-probabilities
after the prompt are compared, so a verdict never fails to parse and comes with p(yes). The
rubric comes from the config (``model_judge.rubric``), else from the environment (an
environment class may set a ``rubric`` attribute), else ``DEFAULT_RUBRIC``.

``Verifier`` does the scoring with any causal LM: a separate judge model, or the policy itself
under the judge prompt. The organism learns the role from corpus documents made here
(``verifier_document``): a task with a candidate answer, either its right answer or a near
miss, labelled by the environment's scorer, with a share of labels flipped on purpose
(``corpus.verifier_error_rate``) so that a Judge of known, imperfect quality can be studied.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

from envs import Environment, Task, parse_completion

DEFAULT_RUBRIC = "Is the candidate answer correct?"
YES, NO = "yes", "no"


def rubric_for(env: Environment, configured: str = "") -> str:
    """The rubric a task of ``env`` is judged against: the config's, the env's, or the default."""
    return configured or getattr(env, "rubric", "") or DEFAULT_RUBRIC


def judge_prompt(rubric: str, task_prompt: str, answer: str) -> str:
    """What the Judge reads for one candidate answer."""
    return f"{rubric}\nTask: {task_prompt}\nCandidate: {answer}"


# -- teaching the organism the Judge's role ------------------------------------------------


def verifier_document(
    env: Environment, task: Task, rng: random.Random, error_rate: float
) -> tuple[Task, str]:
    """A (judge prompt, "yes"/"no") document for a specified task with ground truth.

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
    prompt = judge_prompt(rubric_for(env), task.prompt, answer)
    return replace(task, prompt=prompt), YES if right else NO


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

    ``model`` may be the policy being trained: its current weights judge, under no_grad, and
    ``version()`` changes when they do (so cached verdicts of older weights are not reused).
    """

    model: object
    tokenizer: object
    batch_size: int = 32
    system_prompt: str = ""
    words: tuple[str, str] = (YES, NO)
    _word_ids: list[list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._word_ids = [
            self.tokenizer(w, add_special_tokens=False)["input_ids"] for w in self.words
        ]
        if not all(self._word_ids) or self._word_ids[0] == self._word_ids[1]:
            raise ValueError(f"model judge: the tokenizer cannot tell {self.words} apart")

    def __call__(self, prompts: list[str]) -> list[float]:
        """p(yes) for each prompt, normalised over the two replies."""
        out: list[float] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(self._batch(prompts[start : start + self.batch_size]))
        return out

    def version(self) -> float:
        """A fingerprint of the weights: the sum of the last parameter tensor."""
        last = list(self.model.parameters())[-1]
        return float(last.detach().double().sum())

    def _batch(self, prompts: list[str]) -> list[float]:
        import torch

        from selfplay.generation import prompt_messages

        texts = [
            self.tokenizer.apply_chat_template(
                prompt_messages(p, self.system_prompt), add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]
        heads = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        sequences = [head + word for head in heads for word in self._word_ids]
        width = max(map(len, sequences))
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(sequences):  # right padding: positions stay 0..n-1
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        scores = []
        for row, seq in enumerate(sequences):
            n = len(self._word_ids[row % 2])
            positions = range(len(seq) - n, len(seq))
            scores.append(sum(float(logprobs[row, p - 1, seq[p]]) for p in positions))
        return [_sigmoid(scores[2 * i] - scores[2 * i + 1]) for i in range(len(prompts))]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def model_judges(config, envs: dict, judge_path: str, policy: tuple, console) -> tuple:
    """The rewards' judge and the recorder's judge of ``judge: model``: one model, one cache.

    ``judge_path`` "policy" judges with the model being trained (under the run's system
    prompt); otherwise the Judge model is loaded from ``judge_path`` and never trained. Only
    the recorder's judge warns when agreement falls below ``model_judge.agreement_floor``
    (its ``judge/*`` metrics are the ones logged).
    """
    from selfplay.judges import ModelJudge, VerdictCache

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
    verifier = Verifier(model, tokenizer, batch_size=spec.batch_size, system_prompt=system)
    cache = VerdictCache(spec.cache_size)

    def judge(warn=None) -> ModelJudge:
        return ModelJudge(
            envs, verifier, rubric=spec.rubric, floor=spec.agreement_floor, cache=cache, warn=warn
        )

    return judge(), judge(warn=lambda message: console.print(f"[yellow]warning:[/] {message}"))


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
            p_yes = verify([task.prompt for task, _ in docs])
            tp = fp = fn = tn = 0
            for (_, label), p in zip(docs, p_yes, strict=True):
                yes, right = p > 0.5, label == YES
                tp, fp = tp + (yes and right), fp + (yes and not right)
                fn, tn = fn + (right and not yes), tn + (not yes and not right)
            rows.append(
                {
                    "env": name,
                    "level": level,
                    "n": len(docs),
                    "agreement": (tp + tn) / len(docs),
                    "false_positive_rate": fp / (fp + tn) if fp + tn else None,
                    "false_negative_rate": fn / (fn + tp) if fn + tp else None,
                }
            )
    return rows
