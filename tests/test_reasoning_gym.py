"""The reasoning-gym adapter: reasoning-gym's own scorer, curriculum levels, clear errors."""

from __future__ import annotations

import pickle
import statistics
import subprocess
import sys

import pytest

pytest.importorskip("reasoning_gym")

from envs import load_env  # noqa: E402
from envs.reasoning_gym import ReasoningGym  # noqa: E402

DATASETS = ["leg_counting", "basic_arithmetic", "word_sorting"]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("difficulty", [1, 3, 5])
def test_true_answer_scores_one_and_wrong_ones_zero(dataset: str, difficulty: int) -> None:
    env = load_env("reasoning_gym", dataset=dataset)
    for index in range(5):
        task = env.task(7, index, difficulty)
        assert task.prompt and task.answer
        right = env.score(f"<think>easy</think><answer>{task.answer}</answer>", task)
        assert (right.score, right.kind, right.reason) == (1.0, "answer", "correct")
        for wrong in ("", "no idea", "zzz"):
            verdict = env.score(f"<answer>{wrong}</answer>", task)
            assert (verdict.score, verdict.reason) == (0.0, "wrong"), (wrong, task.answer)


def test_fractional_score_is_partial() -> None:
    # leg_counting uses reasoning-gym's default scorer: the reference inside a longer
    # answer earns len(reference) / len(answer).
    env = ReasoningGym("leg_counting")
    task = env.task(0, 0, 3)
    verdict = env.score(f"<answer>{task.answer}xx</answer>", task)
    assert verdict.reason == "partial"
    assert verdict.score == pytest.approx(len(task.answer) / (len(task.answer) + 2))


def test_deterministic_and_rebuilt_alone() -> None:
    a, b = ReasoningGym("basic_arithmetic"), ReasoningGym("basic_arithmetic")
    first = [a.task(3, i, 4) for i in range(10)]
    assert first == [b.task(3, i, 4) for i in range(10)]
    assert b.task(3, 6, 4) == first[6]
    assert len({t.prompt for t in first}) > 5
    assert a.task(4, 0, 4) != first[0]


def test_levels_follow_the_curriculum() -> None:
    env = ReasoningGym("leg_counting")
    easy = [env.task(1, i, 1) for i in range(30)]
    hard = [env.task(1, i, 5) for i in range(30)]
    easy_animals = [t.metadata["entry"]["num_animals"] for t in easy]
    hard_animals = [t.metadata["entry"]["num_animals"] for t in hard]
    assert max(easy_animals) == 1  # level 0 of num_animals is exactly one animal
    assert statistics.mean(hard_animals) > 2
    easy_length = statistics.mean(len(t.prompt) for t in easy)
    assert statistics.mean(len(t.prompt) for t in hard) > easy_length
    assert env.dataset_config(1)["max_animals"] < env.dataset_config(5)["max_animals"]


def test_options_override_the_curriculum() -> None:
    env = ReasoningGym("leg_counting", min_animals=3, max_animals=3)
    for difficulty in env.levels:
        assert env.dataset_config(difficulty)["max_animals"] == 3
        assert env.task(0, 0, difficulty).metadata["entry"]["num_animals"] == 3


def test_tasks_carry_what_the_scorer_needs() -> None:
    env = ReasoningGym("word_sorting")
    task = env.task(0, 0, 2)
    assert task.metadata["dataset"] == "word_sorting"
    assert isinstance(task.metadata["seed"], int)
    assert "sorted_words" in task.metadata["entry"]
    # A copy sent to another process drops its caches and still scores.
    copy = pickle.loads(pickle.dumps(env))
    assert copy.score(env.target(task), task).score == 1.0


def test_unknown_dataset_names_it_and_suggests() -> None:
    with pytest.raises(ValueError, match=r"'leg_countin'.*'leg_counting'"):
        ReasoningGym("leg_countin")
    with pytest.raises(ValueError, match="no_such_dataset_xyz"):
        load_env("reasoning_gym", dataset="no_such_dataset_xyz")


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="no config fields.*'wings'"):
        ReasoningGym("leg_counting", wings=2)
    with pytest.raises(ValueError, match="set per task"):
        ReasoningGym("leg_counting", seed=1)
    with pytest.raises(ValueError, match="difficulty 9"):
        ReasoningGym().task(0, 0, 9)


def test_scorer_crash_raises_with_context() -> None:
    # prime_factorization's scorer does int() on every factor, so a word makes it raise.
    env = ReasoningGym("prime_factorization")
    task = env.task(0, 0, 1)
    assert env.score(env.target(task), task).score == 1.0
    with pytest.raises(RuntimeError, match=r"prime_factorization.*reasoning_gym/0/1/0"):
        env.score("<answer>lots</answer>", task)


def test_out_of_range_score_raises() -> None:
    env = ReasoningGym("leg_counting")
    task = env.task(0, 0, 1)
    env._scorers[1] = lambda answer, entry: 1.5
    with pytest.raises(ValueError, match=r"leg_counting.*reasoning_gym/0/1/0.*outside"):
        env.check(task.answer or "", task)


def test_task_from_another_dataset_is_refused() -> None:
    task = ReasoningGym("leg_counting").task(0, 0, 1)
    with pytest.raises(ValueError, match="from dataset 'leg_counting'"):
        ReasoningGym("basic_arithmetic").check("1", task)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    with pytest.raises(ImportError, match=r"gym.*pip install -e '\.\[gym\]'"):
        ReasoningGym("leg_counting")


def test_envs_import_without_the_package() -> None:
    code = (
        "import sys; sys.modules['reasoning_gym'] = None\n"
        "from envs import load_env\n"
        "try:\n    load_env('reasoning_gym')\n"
        "except ImportError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install -e '.[gym]'" in out.stdout
