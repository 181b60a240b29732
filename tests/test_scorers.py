"""Literal tables of adversarial completions for the arithmetic and modular scorers."""

import pytest

from envs import Task, load_env
from envs.format import MAX_FINAL_CHARS

ARITH = Task("t/arith", "arithmetic", 2, "Compute 123+45.", "168")
MOD = Task("t/mod", "modular", 3, "Compute (12*5) mod 7.", "4")

TABLE = [
    # env, task, completion, score, reason
    ("arithmetic", ARITH, "<think>3+5=8\n2+4=6\n1+0=1</think><answer>168</answer>", 1.0, "correct"),
    ("arithmetic", ARITH, "<answer> 168 </answer>", 1.0, "correct"),
    ("arithmetic", ARITH, "<answer>+168</answer>", 1.0, "correct"),
    ("arithmetic", ARITH, "<answer>0168</answer>", 1.0, "correct"),
    ("arithmetic", ARITH, "<answer>1 68</answer>", 1.0, "correct"),  # spaces are forgiven
    ("arithmetic", ARITH, "<answer>167</answer>", 0.0, "wrong"),
    (
        "arithmetic",
        ARITH,
        "<answer>168</answer><answer>167</answer>",
        0.0,
        "wrong",
    ),  # last tag counts
    ("arithmetic", ARITH, "<answer>167</answer><answer>168</answer>", 1.0, "correct"),
    ("arithmetic", ARITH, "the answer is 168", 0.0, "no_final_tag"),  # only in the reasoning
    (
        "arithmetic",
        ARITH,
        "<think>168</think><answer>123</answer>",
        0.0,
        "wrong",
    ),  # a number of the question
    ("arithmetic", ARITH, "<answer>168.0</answer>", 0.0, "not_an_integer"),
    ("arithmetic", ARITH, "<answer>1,68</answer>", 0.0, "not_an_integer"),
    ("arithmetic", ARITH, "<answer>168 or 167</answer>", 0.0, "not_an_integer"),
    (
        "arithmetic",
        ARITH,
        "<answer>123+45</answer>",
        0.0,
        "not_an_integer",
    ),  # the question, not an answer
    ("arithmetic", ARITH, "<answer>" + "9" * 500 + "</answer>", 0.0, "not_an_integer"),
    (
        "arithmetic",
        ARITH,
        "<answer>" + "9" * (MAX_FINAL_CHARS + 1) + "</answer>",
        0.0,
        "final_too_long",
    ),
    ("arithmetic", ARITH, "1" * 100_000 + "<answer>168</answer>", 1.0, "correct"),
    ("arithmetic", ARITH, "<ask>Which numbers?</ask>", 0.0, "asked_when_specified"),
    ("arithmetic", ARITH, "<answer>١٦٨</answer>", 0.0, "not_an_integer"),  # other scripts' digits
    ("modular", MOD, "<think>12*5=60\n60=8*7+4</think><answer>4</answer>", 1.0, "correct"),
    ("modular", MOD, "<answer>60</answer>", 0.0, "wrong"),  # not reduced
    ("modular", MOD, "<answer>11</answer>", 0.0, "wrong"),  # congruent, but not the residue
    ("modular", MOD, "<answer>-3</answer>", 0.0, "wrong"),
    ("modular", MOD, "<answer>4</answer><answer>5</answer>", 0.0, "wrong"),
    ("modular", MOD, "<answer>4 mod 7</answer>", 0.0, "not_an_integer"),
]


@pytest.mark.parametrize("env_name,task,completion,score,reason", TABLE)
def test_scorer_table(env_name, task, completion, score, reason):
    verdict = load_env(env_name).score(completion, task)
    assert (verdict.score, verdict.reason) == (score, reason)


def test_worked_steps_are_true_arithmetic():
    """Every `a op b = c` step in a worked solution is correct, at every level."""
    import re

    step = re.compile(r"^([\d+*]+|\d+-\d+)=(-?\d+)$")
    for name in ("arithmetic", "modular"):
        env = load_env(name)
        for level in env.levels:
            for i in range(100):
                task = env.task(0, i, level)
                steps = env.solution(task)
                assert steps, task
                for s in steps:
                    m = step.match(s)
                    if m:  # eval is fine here: the test's own digits-and-operators strings
                        assert eval(m.group(1)) == int(m.group(2)), (task.task_id, s)
                if name == "arithmetic":
                    assert steps[-1].endswith("=" + task.answer), (task.task_id, steps)
