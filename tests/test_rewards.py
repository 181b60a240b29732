"""Reward components: literal tables of completions and the rewards they must get."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from envs import Environment, Task, Verdict, load_env, make_task, task_to_json
from rewards import (
    RewardError,
    build_rewards,
    calibration,
    clarify,
    completion_text,
    correct,
    format_reward,
    length,
)
from selfplay.judges import JudgeError, MajorityJudge, ProgramJudge

ENVS = {name: load_env(name) for name in ("arithmetic", "clarify")}
ARITH = Task("t/arith", "arithmetic", 1, "Compute 100+68.", "168")


def _clarify(specified: bool) -> Task:
    """The first clarify task (seed 0, level 1) that is (under)specified as asked."""
    env = ENVS["clarify"]
    return next(t for i in range(200) if (t := env.task(0, i, 1)).specified == specified)


SPEC, UNDER = _clarify(specified=True), _clarify(specified=False)
# Placeholders the table's completions use, filled from the generated clarify tasks.
FILL = {
    "answer": SPEC.answer,
    "keyword": SPEC.metadata["keywords"][0],
    "missing": UNDER.metadata["missing"],
    "other": next(k for k in UNDER.metadata["keywords"] if k != UNDER.metadata["missing"]),
}


def columns(tasks: list[Task]) -> dict:
    """Every column TRL would pass: the dataset's own and TRL's extras."""
    return {
        "task": [task_to_json(t) for t in tasks],
        "task_id": [t.task_id for t in tasks],
        "env": [t.env for t in tasks],
        "difficulty": [t.difficulty for t in tasks],
        "specified": [t.specified for t in tasks],
        "completion_ids": [[1, 2, 3] for _ in tasks],
        "trainer_state": object(),
        "log_extra": lambda *args: None,
        "log_metric": lambda *args: None,
    }


def call(reward, tasks: list[Task], completions: list) -> list[float | None]:
    return reward(prompts=[t.prompt for t in tasks], completions=completions, **columns(tasks))


# task, completion, correct, format, clarify
TABLE = [
    (ARITH, "<think>100+68=168</think><answer>168</answer>", 1.0, 1.0, 1.0),
    (ARITH, "<answer>168</answer>", 1.0, 1.0, 1.0),
    (ARITH, "<answer>168</answer>\n  ", 1.0, 1.0, 1.0),  # trailing whitespace is fine
    (ARITH, "<answer>167</answer>", 0.0, 1.0, 1.0),
    (ARITH, "<answer>167</answer><answer>168</answer>", 1.0, 1.0, 1.0),  # the last tag counts
    (ARITH, "<answer>168</answer><answer>167</answer>", 0.0, 1.0, 1.0),
    (ARITH, "<think>so it is 168</think>", 0.0, 0.0, 1.0),  # buried in reasoning, no tag
    (ARITH, "The answer is 168.", 0.0, 0.0, 1.0),
    (ARITH, "<answer>168</answer> I think", 1.0, 0.0, 1.0),  # trailing text
    (ARITH, "<answer>168</answer><think>check</think>", 1.0, 0.0, 1.0),
    (ARITH, "<think>never closed <answer>168</answer>", 1.0, 0.0, 1.0),
    (ARITH, "<think>a</think><think>b <answer>168</answer>", 1.0, 0.0, 1.0),
    (ARITH, "opened by the prompt</think><answer>168</answer>", 1.0, 1.0, 1.0),
    (ARITH, "<answer>168", 0.0, 0.0, 1.0),  # unclosed
    (ARITH, "", 0.0, 0.0, 1.0),
    (ARITH, "<ask>Which numbers?</ask>", 0.0, 1.0, 0.0),  # an ask on a specified task
    (SPEC, "<think>sum</think><answer>{answer}</answer>", 1.0, 1.0, 1.0),
    (SPEC, "<ask>How many {keyword} are there?</ask>", 0.0, 1.0, 0.0),
    (UNDER, "<ask>How many {missing} are there?</ask>", None, 1.0, 1.0),
    (UNDER, "<think>{missing} unknown</think><ask>How many {missing}?</ask>", None, 1.0, 1.0),
    (UNDER, "<ask>How many {missing}?</ask> Thanks!", None, 0.0, 1.0),
    (UNDER, "<ask>How many {other} are there?</ask>", None, 1.0, 0.0),  # the wrong quantity
    (UNDER, "<ask>Can you clarify?</ask>", None, 1.0, 0.0),
    (UNDER, "<answer>9</answer>", None, 1.0, 0.0),
    (UNDER, "I do not know.", None, 0.0, 0.0),
    # a confidence right after the answer is part of a clean ending and changes no answer
    (ARITH, "<answer>168</answer><confidence>0.8</confidence>", 1.0, 1.0, 1.0),
    (ARITH, "<think>a</think><answer>168</answer>\n<confidence>.8</confidence>\n", 1.0, 1.0, 1.0),
    (ARITH, "<answer>168</answer><confidence>high</confidence>", 1.0, 1.0, 1.0),  # unreadable
    (ARITH, "<answer>168</answer><confidence>0.8", 1.0, 0.0, 1.0),  # unclosed: trailing text
    (ARITH, "<answer>168</answer><confidence>0.8</confidence> ok", 1.0, 0.0, 1.0),
    (ARITH, "<answer>168</answer> ok <confidence>0.8</confidence>", 1.0, 0.0, 1.0),
    (ARITH, "<answer>168</answer><confidence>1</confidence><answer>167</answer>", 0.0, 1.0, 1.0),
    (UNDER, "<ask>How many {missing}?</ask><confidence>0.5</confidence>", None, 0.0, 1.0),
]


def _plain(text: str) -> str:
    return text


def _chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize("wrap", [_plain, _chat], ids=["plain", "conversational"])
@pytest.mark.parametrize("row", TABLE, ids=[f"{r[0].env}:{r[1][:40]}" for r in TABLE])
def test_table(row, wrap):
    task, text, want_correct, want_format, want_clarify = row
    completion = wrap(text.format(**FILL))
    judge = ProgramJudge(ENVS)
    got = [
        call(f, [task], [completion])[0] for f in (correct(judge), format_reward, clarify(judge))
    ]
    assert got == [want_correct, want_format, want_clarify]


def test_table_as_one_batch():
    tasks, completions = [r[0] for r in TABLE], [r[1].format(**FILL) for r in TABLE]
    judge = ProgramJudge(ENVS)
    for column, reward in ((2, correct(judge)), (3, format_reward), (4, clarify(judge))):
        assert call(reward, tasks, completions) == [r[column] for r in TABLE], reward.__name__


def test_conversation_uses_the_last_message():
    conversation = [
        {"role": "user", "content": "<answer>168</answer>"},
        {"role": "assistant", "content": "<answer>167</answer>"},
    ]
    assert completion_text(conversation) == "<answer>167</answer>"
    assert call(correct(ProgramJudge(ENVS)), [ARITH], [conversation]) == [0.0]


@pytest.mark.parametrize("bad", [5, [], [{"role": "assistant", "content": None}], ["text"]])
def test_unreadable_completion_raises(bad):
    with pytest.raises(TypeError):
        completion_text(bad)
    with pytest.raises(RewardError, match=r"reward format: environment 'arithmetic', task t/arith"):
        call(format_reward, [ARITH], [bad])


LIMIT = 10
# completion, length reward with limit 10 (reasoning: the <think> content, else the text before)
LENGTH = [
    ("<answer>1</answer>", 0.0),
    ("<think>0123456789</think><answer>1</answer>", 0.0),
    ("<think>   0123456789   </think><answer>1</answer>", 0.0),  # stripped
    ("<think>0123456789ab</think><answer>1</answer>", -0.2),
    ("<think>" + "x" * 15 + "</think><answer>1</answer>", -0.5),
    ("<think>" + "x" * 20 + "</think><answer>1</answer>", -1.0),
    ("x" * 100 + "<answer>1</answer>", -1.0),  # capped at -1
    ("x" * 13, -0.3),  # malformed: all of it is reasoning
]


@pytest.mark.parametrize("text, want", LENGTH)
def test_length_table(text, want):
    assert call(length(LIMIT), [ARITH], [text]) == [pytest.approx(want)]


@pytest.mark.parametrize("limit", [0, -5, True, 2.5])
def test_length_limit_must_be_positive_int(limit):
    with pytest.raises(ValueError, match="limit"):
        length(limit)


def test_names_for_trl_logging():
    judge = ProgramJudge(ENVS)
    rewards = (correct(judge), format_reward, clarify(judge), length(5), calibration(judge))
    assert [f.__name__ for f in rewards] == [
        "correct",
        "format",
        "clarify",
        "length",
        "calibration",
    ]


# -- calibration ----------------------------------------------------------------------------

# task, completion, calibration: -(p - y)**2 with y = 1 for a right answer, else 0
CALIBRATION = [
    (ARITH, "<answer>168</answer><confidence>0.8</confidence>", -0.04),
    (ARITH, "<think>100+68=168</think><answer>168</answer><confidence>1</confidence>", 0.0),
    (ARITH, "<answer>168</answer><confidence>0</confidence>", -1.0),
    (ARITH, "<answer>167</answer><confidence>0.8</confidence>", -0.64),
    (ARITH, "<answer>167</answer><confidence>0.3</confidence>", -0.09),
    (ARITH, "<answer>167</answer><confidence>0</confidence>", 0.0),
    (ARITH, "<answer>168</answer>\n<confidence> .5 </confidence>", -0.25),
    (ARITH, "<answer>168</answer><confidence>0.9</confidence> I think", -0.01),  # format pays
    # no readable confidence: the worst Brier score
    (ARITH, "<answer>168</answer>", -1.0),
    (ARITH, "<answer>168</answer><confidence>sure</confidence>", -1.0),
    (ARITH, "<answer>168</answer><confidence>1.5</confidence>", -1.0),
    (ARITH, "<answer>168</answer><confidence>0.9", -1.0),
    (ARITH, "<answer>168</answer> so <confidence>0.9</confidence>", -1.0),
    (
        ARITH,
        "<think><answer>168</answer><confidence>1</confidence></think><answer>168</answer>",
        -1.0,
    ),
    (ARITH, "<answer>167</answer><confidence>0</confidence><answer>168</answer>", -1.0),
    (ARITH, "The answer is 168. <confidence>1</confidence>", -1.0),  # malformed
    (ARITH, "", -1.0),
    # not applicable: an ask, and underspecified tasks (clarify's)
    (ARITH, "<ask>Which numbers?</ask>", None),
    (ARITH, "<ask>Which numbers?</ask><confidence>0.9</confidence>", None),
    (SPEC, "<answer>{answer}</answer><confidence>0.5</confidence>", -0.25),
    (SPEC, "<ask>How many {keyword} are there?</ask>", None),
    (UNDER, "<answer>9</answer><confidence>0.9</confidence>", None),
    (UNDER, "<answer>9</answer>", None),
    (UNDER, "<ask>How many {missing}?</ask>", None),
]


@pytest.mark.parametrize("wrap", [_plain, _chat], ids=["plain", "conversational"])
@pytest.mark.parametrize("row", CALIBRATION, ids=[f"{r[0].env}:{r[1][:50]}" for r in CALIBRATION])
def test_calibration_table(row, wrap):
    task, text, want = row
    (got,) = call(calibration(ProgramJudge(ENVS)), [task], [wrap(text.format(**FILL))])
    assert got == (None if want is None else pytest.approx(want, abs=1e-12))


def test_calibration_table_as_one_batch():
    tasks, texts = [r[0] for r in CALIBRATION], [r[1].format(**FILL) for r in CALIBRATION]
    got = call(calibration(ProgramJudge(ENVS)), tasks, texts)
    assert got == [None if r[2] is None else pytest.approx(r[2], abs=1e-12) for r in CALIBRATION]


def test_calibration_is_proper():
    """The expected reward is highest at the true chance of being right (here 0.7)."""

    def expected(p: float) -> float:
        right, wrong = (f"<answer>{x}</answer><confidence>{p}</confidence>" for x in (168, 167))
        return 0.7 * call(reward, [ARITH], [right])[0] + 0.3 * call(reward, [ARITH], [wrong])[0]

    reward = calibration(ProgramJudge(ENVS))
    values = {p: expected(p) for p in (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 1.0)}
    assert max(values, key=values.get) == 0.7
    assert values[0.7] == pytest.approx(-0.21)  # the Brier score of a calibrated 0.7: p(1-p)
    assert values[1.0] > -1.0  # any stated confidence beats stating none


def test_calibration_partial_credit_counts_as_wrong():
    partial = Fixed(Verdict(0.5, "answer", "168", "partial"))
    text = "<answer>168</answer><confidence>0.5</confidence>"
    assert call(calibration(partial), [ARITH], [text]) == [-0.25]
    sure = "<answer>168</answer><confidence>1</confidence>"
    assert call(calibration(partial), [ARITH], [sure]) == [-1.0]


def test_calibration_fails_loudly():
    # The judge says answer where the completion has none: a judge bug, not a -1.
    liar = Fixed(Verdict(1.0, "answer", "168", "correct"))
    with pytest.raises(
        RewardError,
        match=r"reward calibration: environment 'arithmetic', task t/arith: the judge saw an answer",
    ):
        call(calibration(liar), [ARITH], ["no tag at all"])
    task = Broken().task(0, 3, 1)
    with pytest.raises(
        RewardError, match=r"reward calibration.*'broken'.*broken/0/1/3.*scorer bug"
    ):
        call(calibration(ProgramJudge({"broken": Broken()})), [task], ["<answer>1</answer>"])
    with pytest.raises(RewardError, match=r"reward calibration: environment 'arithmetic'"):
        call(calibration(ProgramJudge(ENVS)), [ARITH], [5])


def test_calibration_in_a_dialogue_judges_the_final_turn():
    from envs.dialogue import resolve, turns_to_json

    env, missing = ENVS["clarify"], FILL["missing"]
    ask = f"<ask>How many {missing}?</ask>"
    turns = [
        {"role": "model", "text": ask},
        {"role": "env", "text": env.respond(UNDER, f"How many {missing}?")},
    ]
    final = resolve(env, UNDER, turns)
    assert final.specified and final.answer is not None

    def dialogue(last: str | None) -> tuple[str, str]:
        said = turns + [{"role": "model", "text": last}] if last else turns[:1]
        return turns_to_json(said), task_to_json(final if last else UNDER)

    lasts = [
        f"<answer>{final.answer}</answer><confidence>0.9</confidence>",
        "<answer>-1</answer><confidence>0.9</confidence>",
        f"<answer>{final.answer}</answer>",
        None,  # the dialogue ended on the ask: not applicable
    ]
    talks = [dialogue(last) for last in lasts]
    cols = columns([UNDER] * len(lasts)) | {
        "turns": [t for t, _ in talks],
        "final_task": [f for _, f in talks],
    }
    got = calibration(ProgramJudge(ENVS))(prompts=[""] * 4, completions=[""] * 4, **cols)
    assert got == [pytest.approx(-0.01), pytest.approx(-0.81), -1.0, None]
    # an answer to a task left underspecified is wrong: a low confidence is right there
    guess = turns_to_json(
        [{"role": "model", "text": "<answer>9</answer><confidence>0.1</confidence>"}]
    )
    cols = columns([UNDER]) | {"turns": [guess], "final_task": [task_to_json(UNDER)]}
    got = calibration(ProgramJudge(ENVS))(prompts=[""], completions=[""], **cols)
    assert got == [pytest.approx(-0.01)]


def test_clarify_works_with_the_majority_judge():
    completions = [
        "<ask>How many {missing}?</ask>",
        "<ask>How many {other}?</ask>",
        "<answer>9</answer>",
        "<answer>9</answer>",
    ]
    completions = [c.format(**FILL) for c in completions]
    judge = MajorityJudge(ENVS)
    assert call(clarify(judge), [UNDER] * 4, completions) == [1.0, 0.0, 0.0, 0.0]
    assert call(correct(judge), [UNDER] * 4, completions) == [None] * 4


# -- build_rewards --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights, names, values",
    [
        (
            {"correct": 1.0, "format": 0.2, "clarify": 0.5, "length": 0.0},
            ["correct", "format", "clarify"],
            [1.0, 0.2, 0.5],
        ),
        ({"length": 0.1, "correct": 2}, ["correct", "length"], [2.0, 0.1]),  # fixed order
        ({"format": -1.0}, ["format"], [-1.0]),
        ({"calibration": 0.5, "correct": 1.0}, ["correct", "calibration"], [1.0, 0.5]),
    ],
)
def test_build_rewards(weights, names, values):
    functions, got = build_rewards(weights, ProgramJudge(ENVS), length_limit=100)
    assert [f.__name__ for f in functions] == names
    assert got == values


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"corect": 1.0}, r"unknown component 'corect' \(known: correct, format, clarify, length"),
        ({"correct": 0.0, "format": 0}, "zero"),
        ({}, "zero"),
        ({"correct": "1"}, "'correct' must be a finite number"),
        ({"correct": math.nan}, "'correct' must be a finite number"),
    ],
)
def test_build_rewards_rejects(weights, message):
    with pytest.raises(ValueError, match=message):
        build_rewards(weights, ProgramJudge(ENVS), length_limit=100)


def test_build_rewards_judges_each_batch_once():
    judge = ProgramJudge(ENVS)
    weights = {"correct": 1.0, "clarify": 1.0, "calibration": 0.5}
    functions, _ = build_rewards(weights, judge, length_limit=100)
    for f in functions:
        call(f, [ARITH, ARITH], ["<answer>168</answer>", "<answer>1</answer>"])
    assert judge.stats() == {"judge/n": 2}
    for f in functions:  # a new batch is judged afresh
        call(f, [ARITH], ["<answer>2</answer>"])
    assert judge.stats() == {"judge/n": 1}


# -- failing loudly -----------------------------------------------------------------------


class Broken(Environment):
    """An environment whose scorer has a bug."""

    name = "broken"

    def generate(self, rng, difficulty: int) -> Task:
        return make_task("Say 1.", "1")

    def check(self, answer: str, task: Task) -> Verdict:
        raise RuntimeError("scorer bug")


class Fixed:
    """A judge that returns the same verdict for everything."""

    def __init__(self, verdict: Verdict, extra: int = 0):
        self.verdict, self.extra = verdict, extra

    def __call__(self, tasks: list[Task], completions: list[str]) -> list[Verdict]:
        return [self.verdict] * (len(tasks) + self.extra)

    def stats(self) -> dict[str, float]:
        return {}


def test_scorer_bug_raises_naming_component_env_and_task():
    task = Broken().task(0, 3, 1)
    reward = correct(ProgramJudge({"broken": Broken()}))
    with pytest.raises(
        RewardError, match=r"reward correct.*'broken'.*broken/0/1/3.*scorer bug"
    ) as info:
        call(reward, [task], ["<answer>1</answer>"])
    assert isinstance(info.value.__cause__, JudgeError)
    assert isinstance(info.value.__cause__.__cause__, RuntimeError)


@pytest.mark.parametrize("score", [1.5, -0.1, math.nan])
@pytest.mark.parametrize("component", [correct, clarify, calibration])
def test_judge_score_out_of_range_raises(component, score):
    judge = Fixed(Verdict(score, "ask", "x", "bogus"))
    with pytest.raises(
        RewardError,
        match=rf"reward {component.__name__}: environment 'clarify', task {UNDER.task_id}: judge score",
    ):
        call(component(judge), [UNDER], ["<ask>x</ask>"])


def test_judge_returning_too_few_verdicts_raises():
    judge = Fixed(Verdict(1.0, "answer", "1", "correct"), extra=-1)
    with pytest.raises(RewardError, match="0 verdicts for 1"):
        call(correct(judge), [ARITH], ["<answer>168</answer>"])


def test_judge_crash_names_the_batch():
    def crash(tasks, completions):
        raise TypeError("judge bug")

    with pytest.raises(
        RewardError, match=r"reward clarify: judge failed.*'arithmetic'.*t/arith.*judge bug"
    ):
        call(clarify(crash), [ARITH], ["<answer>168</answer>"])


def test_missing_or_mismatched_task_column_raises():
    with pytest.raises(RewardError, match="no 'task' column"):
        format_reward(prompts=["p"], completions=["<answer>1</answer>"], task_id=["t/arith"])
    cols = columns([ARITH]) | {"task_id": ["t/other"]}
    with pytest.raises(RewardError, match=r"task t/arith: the task_id column says 't/other'"):
        format_reward(prompts=["p"], completions=["<answer>1</answer>"], **cols)


def test_undecodable_task_raises():
    cols = columns([ARITH]) | {"task": ['{"task_id": "t/arith"}']}
    with pytest.raises(RewardError, match=r"reward format: item 0 \(task_id column: 't/arith'\)"):
        format_reward(prompts=["p"], completions=["<answer>1</answer>"], **cols)


def test_empty_batch():
    assert call(correct(ProgramJudge(ENVS)), [], []) == []


def test_rewards_import_without_torch():
    code = "import rewards, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_behaviour_shaping_component_uses_the_tagger_it_is_given():
    from selfplay.behaviours import TAGGERS

    functions, weights = build_rewards(
        {"correct": 1.0, "self_correction_verified": 0.5}, ProgramJudge(ENVS), 100, TAGGERS
    )
    assert [f.__name__ for f in functions] == ["correct", "self_correction_verified"]
    assert weights == [1.0, 0.5]
    shaped = functions[1]
    corrected = "<think>100+68=167\nwait, 100+68=168</think><answer>168</answer>"
    plain = "<think>100+68=168</think><answer>168</answer>"
    assert call(shaped, [ARITH, ARITH], [corrected, plain]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown component 'self_correction_verified'"):
        build_rewards({"self_correction_verified": 1.0}, ProgramJudge(ENVS), 100)
