"""Countdown: generation per level, the worked solution, and the scorer's verdicts."""

from __future__ import annotations

import re
import statistics
import time

import pytest

from envs import load_env
from envs.base import Task
from envs.countdown import LEVELS, MAX_DEPTH, Countdown
from envs.format import MAX_FINAL_CHARS

ENV = Countdown()


def hand_task(numbers: list[int], target: int, answer: str) -> Task:
    prompt = f"Use {' '.join(map(str, numbers))} to make {target}."
    meta = {"numbers": numbers, "target": target}
    return Task("countdown/hand/0", "countdown", 3, prompt, answer, metadata=meta)


CLASSIC = hand_task([3, 7, 25, 50], 218, "(25+50)*3-7")
TWIN_FIVES = hand_task([2, 5, 5, 10], 20, "2*(5+5)")
RATIONAL = hand_task([1, 3, 4, 6], 24, "4*6")

# (task, completion, score, kind, reason)
CASES = [
    (CLASSIC, "<answer>(25+50)*3-7</answer>", 1.0, "answer", "correct"),
    (CLASSIC, "<think>75*3=225</think><answer>(25+50)*3-7</answer>", 1.0, "answer", "correct"),
    (CLASSIC, "<answer>  ( 25 + 50 ) *  3 - 7 </answer>", 1.0, "answer", "correct"),
    (CLASSIC, "<answer>(((25)+(50)))*(3)-((7))</answer>", 1.0, "answer", "correct"),
    (CLASSIC, "<answer>3*(50+25)-7</answer>", 1.0, "answer", "correct"),
    (CLASSIC, "<answer>(25+50)*3-7+0</answer>", 0.0, "answer", "number_not_given"),
    (CLASSIC, "<answer>(25+50)*3-8</answer>", 0.0, "answer", "number_not_given"),
    (CLASSIC, "<answer>218</answer>", 0.0, "answer", "number_not_given"),
    (CLASSIC, "<answer>(25+50)*3-7+3-3</answer>", 0.0, "answer", "number_reused"),
    (CLASSIC, "<answer>50*3+50+25-7</answer>", 0.0, "answer", "number_reused"),
    (CLASSIC, "<answer>(25+50)*3+7</answer>", 0.0, "answer", "wrong"),
    (CLASSIC, "<answer>25+50*3-7</answer>", 0.0, "answer", "wrong"),
    (CLASSIC, "<answer>50</answer>", 0.0, "answer", "wrong"),
    # Two final tags: only the last counts, in either direction.
    (CLASSIC, "<answer>3+7</answer>or<answer>(25+50)*3-7</answer>", 1.0, "answer", "correct"),
    (CLASSIC, "<answer>(25+50)*3-7</answer>or<answer>3+7</answer>", 0.0, "answer", "wrong"),
    # The answer only in the reasoning, with no final tag, is malformed.
    (CLASSIC, "<think>(25+50)*3-7</think>", 0.0, "malformed", "no_final_tag"),
    (CLASSIC, "The answer is (25+50)*3-7 = 218.", 0.0, "malformed", "no_final_tag"),
    (CLASSIC, "<answer>(25+50)*3-7", 0.0, "malformed", "unclosed_final_tag"),
    # Garbage inside the tag.
    (CLASSIC, "<answer></answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>lol</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>(25+50*3-7</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>(25+50))*3-7</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>(25+50)*3-7=218</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>25 50</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>25+50+</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>3**7</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>-7+225</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>(25+50)*3-7.0</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>(25+50)×3-7</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>(25+50)*³-7</answer>", 0.0, "answer", "unparsable"),
    (CLASSIC, "<answer>__import__('os').system('true')</answer>", 0.0, "answer", "unparsable"),
    # A number given twice may be used twice, not three times.
    (TWIN_FIVES, "<answer>2*(5+5)</answer>", 1.0, "answer", "correct"),
    (TWIN_FIVES, "<answer>10+5+5</answer>", 1.0, "answer", "correct"),
    (TWIN_FIVES, "<answer>5*5-5</answer>", 0.0, "answer", "number_reused"),
    (TWIN_FIVES, "<answer>2*10*(5/5)</answer>", 1.0, "answer", "correct"),
    # Division by zero is a wrong answer, not a crash.
    (TWIN_FIVES, "<answer>10/(5-5)</answer>", 0.0, "answer", "wrong"),
    (TWIN_FIVES, "<answer>2*10+(5-5)/(5-5)</answer>", 0.0, "answer", "number_reused"),
    # Non-exact division is fine when the exact rational value reaches the target.
    (RATIONAL, "<answer>6/(1-3/4)</answer>", 1.0, "answer", "correct"),
    (RATIONAL, "<answer>6/1-3/4</answer>", 0.0, "answer", "wrong"),
    (RATIONAL, "<answer>4*6</answer>", 1.0, "answer", "correct"),
    (RATIONAL, "<answer>24</answer>", 0.0, "answer", "number_not_given"),
]


@pytest.mark.parametrize(("task", "completion", "score", "kind", "reason"), CASES)
def test_verdicts_on_hand_built_tasks(task, completion, score, kind, reason):
    verdict = ENV.score(completion, task)
    assert (verdict.score, verdict.kind, verdict.reason) == (score, kind, reason)


def test_target_itself_a_given_number_is_accepted_alone():
    task = hand_task([4, 9, 13], 13, "4+9")
    assert ENV.score("<answer>13</answer>", task).score == 1.0
    assert ENV.score("<answer>4+9</answer>", task).score == 1.0


# (answer of 400-512 characters, reason): each must be refused fast, without recursing deeply.
HOSTILE = [
    ("(" * 200 + "3" + ")" * 200, "unparsable"),
    ("(" * 400, "unparsable"),
    ("(" * 150 + "3+" * 125 + "7", "unparsable"),
    ("3+" * 200 + "7", "unparsable"),
    ("((3*7)/" * 56 + "3" + "))" * 56, "unparsable"),
    ("9" * 500, "number_not_given"),
]


@pytest.mark.parametrize(("answer", "reason"), HOSTILE)
def test_hostile_answers_return_quickly(answer, reason):
    assert 400 <= len(answer) <= MAX_FINAL_CHARS  # short enough to reach the parser
    start = time.perf_counter()
    verdict = ENV.score(f"<answer>{answer}</answer>", CLASSIC)
    assert time.perf_counter() - start < 0.5
    assert (verdict.score, verdict.kind, verdict.reason) == (0.0, "answer", reason)


def test_nesting_cap_is_exact():
    def nested(levels: int) -> str:  # the answer's own pair of parentheses is one level
        return "(" * (levels - 1) + "(25+50)*3-7" + ")" * (levels - 1)

    assert ENV.score(f"<answer>{nested(MAX_DEPTH)}</answer>", CLASSIC).reason == "correct"
    assert ENV.score(f"<answer>{nested(MAX_DEPTH + 1)}</answer>", CLASSIC).reason == "unparsable"


def test_over_long_answer_is_malformed():
    verdict = ENV.score("<answer>" + "(" * (MAX_FINAL_CHARS + 1) + "</answer>", CLASSIC)
    assert (verdict.kind, verdict.reason) == ("malformed", "final_too_long")


def test_solution_steps_of_hand_task():
    assert ENV.solution(CLASSIC) == ["25+50=75", "75*3=225", "225-7=218"]
    assert ENV.target(CLASSIC) == "<answer>(25+50)*3-7</answer>"


def test_same_seed_index_difficulty_gives_same_task():
    for level in ENV.levels:
        for index in range(20):
            assert ENV.task(7, index, level) == Countdown().task(7, index, level)


def test_different_indices_and_seeds_give_different_tasks():
    for level in (3, 5):
        prompts = {ENV.task(7, index, level).prompt for index in range(50)}
        assert len(prompts) >= 45
    other_seed = [ENV.task(8, index, 5).prompt for index in range(50)]
    same_seed = [ENV.task(7, index, 5).prompt for index in range(50)]
    assert sum(a != b for a, b in zip(other_seed, same_seed, strict=True)) >= 45


STEP = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)")


@pytest.mark.parametrize("level", ENV.levels)
def test_every_level_generates_solvable_tasks(level):
    count = LEVELS[level][0]
    for index in range(200):
        task = ENV.task(0, index, level)
        numbers, target = task.metadata["numbers"], task.metadata["target"]
        assert task.task_id == f"countdown/0/{level}/{index}"
        assert task.prompt == f"Use {' '.join(map(str, numbers))} to make {target}."
        assert len(numbers) == count
        assert isinstance(target, int) and target > 0 and target not in numbers
        assert ENV.score(ENV.target(task), task).reason == "correct"
        steps = ENV.solution(task)
        assert steps[-1].endswith(f"={target}")
        # One binary operation per step, on positive integers, each arithmetically right.
        assert len(steps) == sum(task.answer.count(op) for op in "+-*/") >= 1
        for step in steps:
            a, op, b, c = STEP.fullmatch(step).groups()
            a, b, c = int(a), int(b), int(c)
            assert {"+": a + b == c, "-": a - b == c, "*": a * b == c, "/": a == b * c}[op]


def test_higher_levels_give_more_and_larger_numbers():
    def mean(level: int, key) -> float:
        return statistics.mean(key(ENV.task(1, i, level).metadata) for i in range(200))

    counts = [mean(level, lambda m: len(m["numbers"])) for level in ENV.levels]
    totals = [mean(level, lambda m: sum(m["numbers"])) for level in ENV.levels]
    targets = [mean(level, lambda m: m["target"]) for level in ENV.levels]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert totals == sorted(totals) and len(set(totals)) == len(totals)
    assert targets == sorted(targets) and len(set(targets)) == len(targets)


def test_registry_and_bad_difficulty():
    assert isinstance(load_env("countdown"), Countdown)
    with pytest.raises(ValueError):
        ENV.task(0, 0, 6)
