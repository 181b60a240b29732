"""The contract every registered environment must keep (a plug-in gets these checks for free)."""

import random
import statistics
import sys
from pathlib import Path

import pytest

from envs import Environment, load_env, registered_envs

# Environments that need options to load: the verifiers import wraps a verifiers module, here
# tests/plugins/vf_quiz (two levels, from its difficulty column).
sys.path.insert(0, str(Path(__file__).parent / "plugins" / "vf_quiz"))
OPTIONS = {"verifiers": {"module": "vf_quiz"}}


def _available():
    names = []
    for name in sorted(registered_envs()):
        try:
            env = load_env(name, **OPTIONS.get(name, {}))
            env.task(0, 0, env.levels[0])
        except ImportError:  # an optional extra (reasoning-gym) that is not installed
            continue
        names.append(name)
    return names


ENV_NAMES = _available()
N = 40


@pytest.fixture(params=ENV_NAMES)
def env(request) -> Environment:
    from selfplay.sandbox import equip

    # as selfplay loads every environment: one that runs programs gets the shared sandbox
    return equip(load_env(request.param, **OPTIONS.get(request.param, {})))


def test_builtins_are_registered():
    assert {"arithmetic", "countdown", "modular", "clarify"} <= set(ENV_NAMES)


def test_same_seed_same_task(env):
    for level in env.levels:
        assert env.task(7, 3, level) == env.task(7, 3, level)
        tasks = {env.task(7, i, level).prompt for i in range(N)}
        assert len(tasks) > 1, f"{env.name} level {level}: every index gives the same prompt"


def test_task_fields(env):
    for level in env.levels:
        task = env.task(1, 2, level)
        assert (task.env, task.difficulty) == (env.name, level)
        assert task.task_id == f"{env.name}/1/{level}/2"
        assert task.prompt.strip()
        assert (task.answer is None) == (not task.specified)


def test_true_answer_scores_one(env):
    for level in env.levels:
        for i in range(N):
            task = env.task(0, i, level)
            verdict = env.score("<think>working</think>" + env.target(task), task)
            assert verdict.score == 1.0, (task, verdict)


def test_wrong_and_empty_answers_score_zero(env):
    for level in env.levels:
        for i in range(N):
            task = env.task(0, i, level)
            for completion in ("", "<answer></answer>", "no tags at all", "<answer>zzz</answer>"):
                verdict = env.score(completion, task)
                assert verdict.score == 0.0, (task.task_id, completion, verdict)


def test_scores_stay_in_unit_interval(env):
    rng = random.Random(0)
    junk = ["<answer>-1</answer>", "<answer>1e9</answer>", "<ask>?</ask>", "<answer>((</answer>"]
    for level in env.levels:
        for i in range(10):
            task = env.task(3, i, level)
            for completion in junk + [f"<answer>{rng.randint(-99, 999)}</answer>"]:
                assert 0.0 <= env.score(completion, task).score <= 1.0


def test_levels_differ(env):
    """Harder levels change the task distribution (here: prompts or answers get longer)."""

    def size(level):
        tasks = [env.task(5, i, level) for i in range(N)]
        return statistics.mean(len(t.prompt) + len(t.answer or "") for t in tasks)

    sizes = [size(level) for level in env.levels]
    assert sizes[-1] > sizes[0], f"{env.name}: levels {env.levels} have sizes {sizes}"


def test_unknown_level_is_rejected(env):
    with pytest.raises(ValueError, match=env.name):
        env.task(0, 0, max(env.levels) + 100)


def test_unknown_environment_names_itself():
    with pytest.raises(KeyError, match="no_such_env"):
        load_env("no_such_env")


def test_bad_options_name_the_environment():
    with pytest.raises(ValueError, match="arithmetic"):
        load_env("arithmetic", nonsense=1)
