"""Challenger proposals: the tag format, round trips, levels, ids and every rejection."""

from __future__ import annotations

import pickle

import pytest

from envs import (
    REJECTIONS,
    Rejected,
    challenger_prompt,
    load_env,
    parse_proposal,
    render_proposal,
    task_from_proposal,
)
from envs.arithmetic import Arithmetic
from envs.arithmetic import level_of as arithmetic_level
from envs.countdown import Countdown
from envs.countdown import level_of as countdown_level
from envs.proposals import MAX_PROPOSAL_CHARS

ARITHMETIC = Arithmetic()
COUNTDOWN = Countdown()
SEEDS = range(60)


def propose(env, content: str):
    return task_from_proposal(env, render_proposal(content))


def rejection(env, content: str) -> tuple[str, str]:
    with pytest.raises(Rejected) as caught:
        propose(env, content)
    return caught.value.reason, caught.value.detail


# -- the format ---------------------------------------------------------------------


def test_prompt_and_render():
    assert challenger_prompt("countdown") == "Propose a task for countdown."
    assert render_proposal("2*3") == "<task>2*3</task>"
    assert parse_proposal(render_proposal("2*3")) == "2*3"


def test_parse_takes_the_last_well_formed_tag():
    assert parse_proposal("<task>1+2</task> no, <task> 3+4 </task>") == "3+4"
    assert parse_proposal("<think><task>1+2</task></think><task>5*6</task>trailing") == "5*6"
    # An unclosed tag after the last closed one does not count.
    assert parse_proposal("<task>1+2</task><task>3+4") == "1+2"
    # A tag nested in another is not well formed; the inner one is.
    assert parse_proposal("<task>1+<task>2+3</task>") == "2+3"


@pytest.mark.parametrize(
    ("completion", "detail"),
    [
        ("1+2", "no_task_tag"),
        ("<task>1+2", "no_task_tag"),
        ("<answer>1+2</answer>", "no_task_tag"),
        ("<task></task>", "empty"),
        ("<task>  \n </task>", "empty"),
        (render_proposal("1+" * MAX_PROPOSAL_CHARS + "1"), "too_long"),
    ],
)
def test_parse_rejects(completion, detail):
    with pytest.raises(Rejected) as caught:
        parse_proposal(completion)
    assert (caught.value.reason, caught.value.detail) == ("unparsable", detail)


def test_rejected_says_why_and_pickles():
    error = Rejected("invalid", "too_large")
    assert isinstance(error, ValueError)
    assert str(error) == "invalid: too_large"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail, str(copy)) == ("invalid", "too_large", "invalid: too_large")
    assert set(REJECTIONS) == {"unparsable", "invalid", "unsafe", "duplicate"}
    with pytest.raises(ValueError, match="not in"):
        Rejected("rude", "x")


def test_envs_without_proposals_say_so():
    env = load_env("modular")
    with pytest.raises(NotImplementedError, match="modular"):
        task_from_proposal(env, "<task>1+2</task>")
    with pytest.raises(NotImplementedError, match="modular"):
        env.proposal(env.task(0, 0, env.levels[0]))


# -- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("level", ARITHMETIC.levels)
def test_arithmetic_round_trip(level):
    for seed in SEEDS:
        task = ARITHMETIC.task(seed, 0, level)
        back = ARITHMETIC.from_proposal(ARITHMETIC.proposal(task))
        assert (back.prompt, back.answer) == (task.prompt, task.answer)
        assert back.metadata == task.metadata
        assert 1 <= back.difficulty <= level


@pytest.mark.parametrize("level", COUNTDOWN.levels)
def test_countdown_round_trip(level):
    for seed in SEEDS:
        task = COUNTDOWN.task(seed, 0, level)
        back = COUNTDOWN.from_proposal(COUNTDOWN.proposal(task))
        assert back.metadata["target"] == task.metadata["target"]
        # The proposal gives exactly the numbers its expression uses, a subset of those given.
        used = back.metadata["numbers"]
        assert used == sorted(used) and set(used) <= set(task.metadata["numbers"])
        assert COUNTDOWN.check(task.answer, back).score == 1.0
        assert 1 <= back.difficulty <= level


@pytest.mark.parametrize("env", [ARITHMETIC, COUNTDOWN], ids=lambda env: env.name)
def test_computed_answer_scores_correct(env):
    for level in env.levels:
        for seed in range(20):
            task = propose(env, env.proposal(env.task(seed, 1, level)))
            assert (task.env, task.metadata["proposal"]) == (env.name, env.proposal(task))
            completion = f"<think></think><answer>{task.answer}</answer>"
            assert env.score(completion, task).score == 1


def test_proposed_task_fields():
    task = propose(ARITHMETIC, " 12 + 34 ")
    assert task.task_id.startswith("arithmetic/proposed/1/")
    assert len(task.task_id.rsplit("/", 1)[1]) == 12
    assert (task.env, task.difficulty) == ("arithmetic", 1)
    assert (task.prompt, task.answer) == ("Compute 12+34.", "46")
    assert task.metadata == {
        "expression": "12+34",
        "steps": ["2+4=6", "1+3=4", "12+34=46"],
        "proposal": "12 + 34",
    }
    task = propose(COUNTDOWN, "(25+50)*3-7")
    assert (task.prompt, task.answer) == ("Use 3 7 25 50 to make 218.", "(25+50)*3-7")
    assert task.difficulty == 5  # two big numbers: only level 5 gives two
    assert task.metadata == {"numbers": [3, 7, 25, 50], "target": 218, "proposal": "(25+50)*3-7"}


# -- ids ----------------------------------------------------------------------------


def test_same_task_same_id():
    assert propose(ARITHMETIC, "12+34").task_id == propose(ARITHMETIC, "12 + 34").task_id
    assert propose(ARITHMETIC, "12+34").task_id != propose(ARITHMETIC, "34+12").task_id
    first, second = propose(COUNTDOWN, "3*4+5"), propose(COUNTDOWN, "4*3+5")
    assert first.task_id == second.task_id
    assert first.prompt == second.prompt == "Use 3 4 5 to make 17."
    assert propose(COUNTDOWN, "(3+4)*5").task_id != first.task_id


# -- levels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "level"),
    [
        ("12+34", 1),
        ("99-1", 1),
        ("123+4", 2),
        ("12*34", 2),
        ("123*4", 2),
        ("1234+5", 3),
        ("5+3+2", 4),
        ("123*4-5", 4),
        ("1234+5+6", 5),
        ("12345-1", 6),
        ("1+2+3+4", 6),
    ],
)
def test_arithmetic_level(expression, level):
    assert propose(ARITHMETIC, expression).difficulty == level


def test_arithmetic_level_of():
    assert arithmetic_level([12, 34], ["+"]) == 1
    assert arithmetic_level([12, 34], ["*"]) == 2
    assert arithmetic_level([1, 2, 3, 4, 5], ["+"] * 4) is None
    assert arithmetic_level([123456, 1], ["+"]) is None


@pytest.mark.parametrize(
    ("expression", "level"),
    [
        ("2*3", 1),
        ("9+9", 1),
        ("10-1", 2),
        ("9*9+9", 2),
        ("10*10+10", 2),
        ("10*10*3", 3),
        ("25+3", 3),
        ("(25+50)*3-7", 5),  # two big numbers: only level 5 gives two
        ("1+2+3+4+5", 4),
        ("12*50+1", 4),
        ("1+2+3+4+5+6", 5),
        ("15+1", 5),
        ("50+50", 5),
        ("25+50+75", None),  # three big numbers: no level gives three
        ("30+1", None),  # neither small at any level nor one of BIG
    ],
)
def test_countdown_level(expression, level):
    if level is None:
        assert rejection(COUNTDOWN, expression) == ("invalid", "too_large")
    else:
        assert propose(COUNTDOWN, expression).difficulty == level


def test_countdown_level_of():
    assert countdown_level([2, 3], 6) == 1
    assert countdown_level([2, 3], 100) == 2
    assert countdown_level([2, 3], 200) == 3
    assert countdown_level([3, 100], 300) == 3
    assert countdown_level([1, 2, 3, 4, 5, 6, 7], 28) is None
    assert countdown_level([30, 1], 31) is None


# -- rejections ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason", "detail"),
    [
        ("__import__('os')", "unsafe", "forbidden_character"),
        ("os.system('ls')", "unsafe", "forbidden_character"),
        ("1+1 and print(1)", "unsafe", "forbidden_character"),
        ("1e5+1", "unsafe", "forbidden_character"),
        ("١+٢", "unsafe", "forbidden_character"),  # digits, but not ASCII ones
        ("3+", "unparsable", "malformed"),
        ("+3+4", "unparsable", "malformed"),
        ("3++4", "unparsable", "malformed"),
        ("3**4", "unparsable", "malformed"),
        ("8/2", "unparsable", "malformed"),
        ("(1+2)*3", "unparsable", "malformed"),
        ("-3+4", "unparsable", "malformed"),
        ("12", "invalid", "too_few_operands"),
        ("007+1", "invalid", "leading_zero"),
        ("0+00", "invalid", "leading_zero"),
        ("123456+1", "invalid", "too_large"),
        ("1+2+3+4+5", "invalid", "too_large"),
        ("5-9", "invalid", "negative_intermediate"),
        ("2-3*4", "invalid", "negative_intermediate"),
        ("1+1" + "+1" * 5000, "invalid", "too_large"),
    ],
)
def test_arithmetic_rejections(content, reason, detail):
    with pytest.raises(Rejected) as caught:
        ARITHMETIC.from_proposal(content)
    assert (caught.value.reason, caught.value.detail) == (reason, detail)


def test_arithmetic_accepts_zero_and_spaces():
    assert propose(ARITHMETIC, "0+0").answer == "0"
    assert propose(ARITHMETIC, "9 - 9").answer == "0"
    assert propose(ARITHMETIC, "12\t*\n3").prompt == "Compute 12*3."


@pytest.mark.parametrize(
    ("content", "reason", "detail"),
    [
        ("__import__('os')", "unsafe", "forbidden_character"),
        ("2*3=6", "unsafe", "forbidden_character"),
        ("2.5*2", "unsafe", "forbidden_character"),
        ("3+", "unparsable", "malformed"),
        ("(2*3", "unparsable", "malformed"),
        ("2 3", "unparsable", "malformed"),
        ("-2+5", "unparsable", "malformed"),
        ("(" * 40 + "2+3" + ")" * 40, "unparsable", "malformed"),
        ("7", "invalid", "too_few_numbers"),
        ("(7)", "invalid", "too_few_numbers"),
        ("3/0+1", "invalid", "zero"),
        ("3/(2-2)+1", "invalid", "division_by_zero"),
        ("7/2", "invalid", "not_integer"),
        ("2-7", "invalid", "not_positive"),
        ("3-3", "invalid", "not_positive"),
        ("101+1", "invalid", "too_large"),
        ("1+1+1+1+1+1+1", "invalid", "too_large"),
        ("25*50", "invalid", "too_large"),
        ("1*5", "invalid", "trivial"),
        ("50+50-50", "invalid", "trivial"),
    ],
)
def test_countdown_rejections(content, reason, detail):
    with pytest.raises(Rejected) as caught:
        COUNTDOWN.from_proposal(content)
    assert (caught.value.reason, caught.value.detail) == (reason, detail)


def test_countdown_accepts_rationals_along_the_way():
    task = propose(COUNTDOWN, "(1+1/2)*4")
    assert (task.metadata["numbers"], task.metadata["target"]) == ([1, 1, 2, 4], 6)
    assert task.answer == "(1+1/2)*4"
    # 50+50 makes 100, one of BIG but not one of the numbers given: not trivial.
    assert propose(COUNTDOWN, "50+50").metadata["target"] == 100


def test_countdown_answer_is_canonical():
    task = propose(COUNTDOWN, " ((2)) * ( 3 + 4 ) ")
    assert task.answer == "2*(3+4)"
    assert task.metadata["proposal"] == "((2)) * ( 3 + 4 )"
