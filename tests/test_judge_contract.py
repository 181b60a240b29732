"""The contract every registered judge keeps (a plug-in gets these checks for free).

Judges come from ``selfplay.judges.registered_judges()``: the built-ins and any installed
package's ``selfplay.judges`` entry points ("model" needs a model; ``tests/test_model_judge.py``
covers it). ``tests/test_plugins.py`` runs this file against a real installed plug-in.
"""

import math

import pytest

from envs import Verdict, load_env
from selfplay.judges import judge_names, registered_judges

ENVS = {name: load_env(name) for name in ("arithmetic", "countdown")}
NAMES = sorted(registered_judges())
G = 4


def groups(answers) -> tuple[list, list]:
    """Tasks and completions: one group of ``G`` per task, completion j from ``answers(task, j)``."""
    tasks = [ENVS[env].task(3, i, 1) for env in ENVS for i in range(3)]
    batch = [(t, answers(t, j)) for t in tasks for j in range(G)]
    return [t for t, _ in batch], [c for _, c in batch]


@pytest.fixture(params=NAMES)
def judge(request):
    return registered_judges()[request.param](ENVS)


def test_builtins_are_registered():
    assert {"program", "majority"} <= set(NAMES)
    assert set(judge_names()) == {*NAMES, "model"}


def test_one_verdict_per_completion_in_range(judge):
    tasks, completions = groups(lambda t, j: ["<answer>1</answer>", "junk", "", "<ask>?</ask>"][j])
    verdicts = judge(tasks, completions)
    assert len(verdicts) == len(completions)
    for verdict in verdicts:
        assert isinstance(verdict, Verdict)
        assert 0.0 <= verdict.score <= 1.0 and verdict.kind in ("answer", "ask", "malformed")


def test_a_group_giving_the_true_answer_scores_one(judge):
    tasks, completions = groups(lambda t, j: "<think>so</think>" + ENVS[t.env].target(t))
    assert [v.score for v in judge(tasks, completions)] == [1.0] * len(tasks)


def test_malformed_completions_score_zero(judge):
    tasks, completions = groups(lambda t, j: "no answer tag here")
    assert [v.score for v in judge(tasks, completions)] == [0.0] * len(tasks)


def test_stats_are_namespaced_finite_numbers(judge):
    tasks, completions = groups(lambda t, j: "<answer>1</answer>")
    judge(tasks, completions)
    stats = judge.stats()
    assert stats and all(k.startswith("judge/") for k in stats), stats
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values()), stats


def test_a_mismatched_batch_is_an_error(judge):
    tasks, completions = groups(lambda t, j: "<answer>1</answer>")
    with pytest.raises((ValueError, TypeError)):
        judge(tasks, completions[:-1])
