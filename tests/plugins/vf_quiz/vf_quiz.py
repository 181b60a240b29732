"""vf-quiz: sums and products of small numbers, a single-turn verifiers environment.

Written the way an Environments Hub author writes one (``vf-init`` layout): a module that
exposes ``load_environment(**kwargs)`` and returns a ``vf.SingleTurnEnv``. The test suite
imports it into selfplay (``load_env("verifiers", module="vf_quiz")``).

    vf-eval vf-quiz -a '{"num_examples": 20}' -m MODEL -b URL
"""

import random

import verifiers as vf
from datasets import Dataset

SYSTEM_PROMPT = """Think step by step inside <think>...</think> tags, then give only the final \
number inside <answer>...</answer> tags."""


def make_rows(num_examples: int, seed: int, with_difficulty: bool) -> list[dict]:
    """Questions with their answers; difficulty 1 has one-digit operands, 2 has two or three."""
    rng = random.Random(seed)
    rows = []
    for i in range(num_examples):
        difficulty = 1 + i % 2
        high = 9 if difficulty == 1 else 999
        a, b = rng.randint(2, high), rng.randint(2, high)
        op = rng.choice("+*")
        row = {"question": f"What is {a} {op} {b}?", "answer": str(a + b if op == "+" else a * b)}
        if with_difficulty:
            row["difficulty"] = difficulty
        rows.append(row)
    return rows


def load_environment(
    num_examples: int = 100,
    seed: int = 0,
    with_difficulty: bool = True,
    format_weight: float = 0.0,
) -> vf.Environment:
    """The quiz; ``format_weight`` adds the parser's format reward (0 leaves it out)."""
    dataset = Dataset.from_list(make_rows(num_examples, seed, with_difficulty))
    parser = vf.XMLParser(["think", "answer"], answer_field="answer")

    def correct_answer(completion, answer, **kwargs) -> float:
        """1.0 when the parsed answer equals the reference, ignoring spaces."""
        response = parser.parse_answer(completion) or ""
        return 1.0 if response.strip().replace(" ", "") == answer else 0.0

    rubric = vf.Rubric(funcs=[correct_answer], weights=[1.0], parser=parser)
    if format_weight:
        rubric.add_reward_func(parser.get_format_reward_func(), weight=format_weight)
    return vf.SingleTurnEnv(
        dataset=dataset, system_prompt=SYSTEM_PROMPT, parser=parser, rubric=rubric
    )
