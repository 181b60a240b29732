"""Clarify: word problems where the right move is sometimes to ask, not answer."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from envs import Task, load_env, render_completion
from envs.clarify import UNCLEAR, Clarify

META = {
    "template": "total",
    "keywords": ["apples", "pears"],
    "values": [5, 3],
    "asks": ["How many apples does Tom have?", "How many pears does Tom have?"],
    "facts": ["Tom has 5 apples.", "Tom has 3 pears."],
    "steps": ["5+3=8"],
}
SPECIFIED = Task(
    "clarify/hand/1/0",
    "clarify",
    1,
    "Tom has 5 apples and 3 pears. How many fruits does he have?",
    "8",
    True,
    {**META, "missing": None, "hidden": None},
)
UNDERSPECIFIED = Task(
    "clarify/hand/1/1",
    "clarify",
    1,
    "Tom has some apples and 3 pears. How many fruits does he have?",
    None,
    False,
    {**META, "missing": "apples", "hidden": 5},
)

# (completion, score, reason) on UNDERSPECIFIED
UNDERSPECIFIED_CASES = [
    ("<ask>How many apples does Tom have?</ask>", 1.0, "asked_missing"),
    ("<think>apples unknown</think><ask>How many APPLES?</ask>", 1.0, "asked_missing"),
    ("<ask>How many apple does Tom have?</ask>", 1.0, "asked_missing"),
    ("<ask>How many pears does Tom have?</ask>", 0.0, "asked_wrong_quantity"),
    ("<ask>How many apples and pears are there?</ask>", 0.0, "asked_wrong_quantity"),
    ("<ask>Can you clarify?</ask>", 0.0, "asked_vaguely"),
    ("<ask>How many fruits does he have?</ask>", 0.0, "asked_vaguely"),
    ("<ask>How many pineapples does Tom have?</ask>", 0.0, "asked_vaguely"),
    ("<answer>8</answer>", 0.0, "answered_underspecified"),
    ("<ask>How many apples?</ask><answer>8</answer>", 0.0, "answered_underspecified"),
    ("<answer>8</answer><ask>How many apples?</ask>", 1.0, "asked_missing"),
    ("Tom has 8 fruits.", 0.0, "no_final_tag"),
    ("<ask>How many apples does Tom have?", 0.0, "unclosed_final_tag"),
]

# (completion, score, reason) on SPECIFIED
SPECIFIED_CASES = [
    ("<answer>8</answer>", 1.0, "correct"),
    ("<think>5+3=8</think><answer> 8 </answer>", 1.0, "correct"),
    ("<answer>9</answer>", 0.0, "wrong"),
    ("<answer>eight</answer>", 0.0, "not_an_integer"),
    ("<ask>How many apples does Tom have?</ask>", 0.0, "asked_when_specified"),
    ("<ask>Can you clarify?</ask>", 0.0, "asked_when_specified"),
]

RESERVED = re.compile(r"\b(wait|wrong|mistake|check)\b", re.IGNORECASE)


def tasks(env: Clarify, difficulty: int, n: int, seed: int = 0) -> list[Task]:
    return [env.task(seed, i, difficulty) for i in range(n)]


@pytest.mark.parametrize(("completion", "score", "reason"), UNDERSPECIFIED_CASES)
def test_underspecified_table(completion: str, score: float, reason: str) -> None:
    verdict = Clarify().score(completion, UNDERSPECIFIED)
    assert (verdict.score, verdict.reason) == (score, reason)


@pytest.mark.parametrize(("completion", "score", "reason"), SPECIFIED_CASES)
def test_specified_table(completion: str, score: float, reason: str) -> None:
    verdict = Clarify().score(completion, SPECIFIED)
    assert (verdict.score, verdict.reason) == (score, reason)


def test_generated_metadata_has_hand_built_shape() -> None:
    # Guards the hand-built tasks above against drifting from what `generate` makes.
    env = Clarify(unspecified_rate=0.5)
    for task in tasks(env, 1, 50):
        assert set(task.metadata) == set(UNDERSPECIFIED.metadata)


def test_rate_zero_gives_no_underspecified_task() -> None:
    env = Clarify(unspecified_rate=0.0)
    for difficulty in env.levels:
        for task in tasks(env, difficulty, 300):
            assert task.specified and task.answer is not None and task.metadata["missing"] is None


def test_rate_one_gives_only_underspecified_tasks() -> None:
    env = Clarify(unspecified_rate=1.0)
    for difficulty in env.levels:
        for task in tasks(env, difficulty, 300):
            assert not task.specified and task.answer is None
            assert task.metadata["missing"] in task.metadata["keywords"]
            assert task.metadata["hidden"] is not None
            assert "some" in task.prompt.lower()


def test_default_rate_is_about_three_tenths() -> None:
    env = Clarify()
    share = sum(not t.specified for t in tasks(env, 2, 1000)) / 1000
    assert 0.24 <= share <= 0.36


def test_tasks_are_deterministic() -> None:
    a, b = Clarify(), Clarify()
    for difficulty in a.levels:
        assert tasks(a, difficulty, 50, seed=3) == tasks(b, difficulty, 50, seed=3)
        assert tasks(a, difficulty, 50, seed=3) != tasks(a, difficulty, 50, seed=4)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_target_and_solution_score_full_marks(difficulty: int) -> None:
    env = Clarify(unspecified_rate=0.5)
    for task in tasks(env, difficulty, 200):
        assert env.score(env.target(task), task).score == 1.0
        assert env.score(render_completion(env.solution(task), env.target(task)), task).score == 1.0
        assert not any(RESERVED.search(step) for step in env.solution(task))
        if task.specified:
            assert env.solution(task)[-1].endswith(f"={task.answer}")
        else:
            assert env.target(task).startswith("<ask>")
            assert env.solution(task) == [f"{task.metadata['missing']} unknown"]


def test_levels_differ() -> None:
    env = Clarify()
    biggest = {}
    for difficulty in env.levels:
        made = tasks(env, difficulty, 200)
        assert all(len(t.metadata["keywords"]) == difficulty + 1 for t in made)
        assert all(len(t.metadata["steps"]) == difficulty for t in made)
        biggest[difficulty] = max(max(t.metadata["values"]) for t in made)
    assert biggest[1] < biggest[2] < biggest[3]


def test_every_template_appears_and_level_one_prompts_are_short() -> None:
    made = tasks(Clarify(unspecified_rate=0.5), 1, 300)
    assert {t.metadata["template"] for t in made} == {"total", "shop", "bus", "share"}
    assert max(len(t.prompt) for t in made) <= 120


def test_keywords_never_overlap_and_each_ask_names_only_its_quantity() -> None:
    env = Clarify(unspecified_rate=1.0)
    for difficulty in env.levels:
        for task in tasks(env, difficulty, 200):
            keywords = task.metadata["keywords"]
            assert len(set(keywords)) == len(keywords)
            for keyword, ask in zip(keywords, task.metadata["asks"], strict=True):
                pretend = replace(task, metadata={**task.metadata, "missing": keyword})
                assert env.check_question(ask, pretend).score == 1.0, (task.prompt, ask)


def test_respond_reveals_only_what_is_asked() -> None:
    env = Clarify()
    assert env.respond(UNDERSPECIFIED, "How many apples does Tom have?") == "Tom has 5 apples."
    assert env.respond(UNDERSPECIFIED, "How many pears does Tom have?") == "Tom has 3 pears."
    assert env.respond(UNDERSPECIFIED, "Can you clarify?") == UNCLEAR
    assert not re.search(r"\d", UNCLEAR)


def test_respond_on_generated_tasks() -> None:
    env = Clarify(unspecified_rate=1.0)
    for difficulty in env.levels:
        for task in tasks(env, difficulty, 100):
            question = env.target(task)[len("<ask>") : -len("</ask>")]
            assert str(task.metadata["hidden"]) in env.respond(task, question)
            assert env.respond(task, "Can you clarify?") == UNCLEAR


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "0.3"])
def test_bad_rate_raises(rate: object) -> None:
    with pytest.raises(ValueError, match="clarify.*unspecified_rate"):
        Clarify(unspecified_rate=rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clarify"):
        load_env("clarify", unspecified_rate=rate)


def test_registry_loads_clarify() -> None:
    env = load_env("clarify", unspecified_rate=0.0)
    assert isinstance(env, Clarify) and env.levels == (1, 2, 3)
