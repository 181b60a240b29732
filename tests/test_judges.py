"""Judges: literal tables of completions and the verdicts the program and majority judges give."""

from __future__ import annotations

import subprocess
import sys

import pytest

from envs import Environment, Task, Verdict, load_env, make_task
from selfplay.judges import JudgeError, MajorityJudge, ProgramJudge, make_judge

ENVS = {name: load_env(name) for name in ("arithmetic", "clarify", "countdown")}


def _task(answer: str, task_id: str) -> Task:
    return Task(task_id, "arithmetic", 1, "Compute it.", answer)


A, B, C, D = _task("168", "t/a"), _task("12", "t/b"), _task("5", "t/c"), _task("7", "t/d")


def _clarify(specified: bool) -> Task:
    """The first clarify task (seed 0, level 1) that is (under)specified as asked."""
    env = ENVS["clarify"]
    return next(t for i in range(200) if (t := env.task(0, i, 1)).specified == specified)


UNDER = _clarify(specified=False)
MISSING = UNDER.metadata["missing"]
OTHER = next(k for k in UNDER.metadata["keywords"] if k != MISSING)


class Broken(Environment):
    """An environment whose scorer has a bug."""

    name = "broken"

    def generate(self, rng, difficulty: int) -> Task:
        return make_task("Say 1.", "1")

    def check(self, answer: str, task: Task) -> Verdict:
        raise RuntimeError("scorer bug")

    def check_question(self, question: str, task: Task) -> Verdict:
        raise RuntimeError("question scorer bug")


class Overscored(Broken):
    name = "overscored"

    def check(self, answer: str, task: Task) -> Verdict:
        return Verdict(1.5, "answer", answer, "generous")


BROKEN = Broken().task(0, 3, 1)

# -- program judge ------------------------------------------------------------------------

# task, completion, score, kind, reason
PROGRAM = [
    (A, "<think>100+68</think><answer>168</answer>", 1.0, "answer", "correct"),
    (A, "<answer>167</answer><answer>168</answer>", 1.0, "answer", "correct"),  # last tag counts
    (A, "<answer>168</answer><answer>167</answer>", 0.0, "answer", "wrong"),
    (A, "<think>it is 168</think>", 0.0, "malformed", "no_final_tag"),  # buried in reasoning
    (A, "<answer>168</answer> or maybe 167", 1.0, "answer", "correct"),  # trailing: format's job
    (A, "<ask>Which numbers?</ask>", 0.0, "ask", "asked_when_specified"),
    (UNDER, f"<ask>How many {MISSING} are there?</ask>", 1.0, "ask", "asked_missing"),
    (UNDER, f"<ask>How many {OTHER} are there?</ask>", 0.0, "ask", "asked_wrong_quantity"),
    (UNDER, "<answer>9</answer>", 0.0, "answer", "answered_underspecified"),
]


def test_program_judge_table():
    judge = ProgramJudge(ENVS)
    tasks, completions = [r[0] for r in PROGRAM], [r[1] for r in PROGRAM]
    got = [(v.score, v.kind, v.reason) for v in judge(tasks, completions)]
    assert got == [(score, kind, reason) for _, _, score, kind, reason in PROGRAM]
    assert judge.stats() == {"judge/n": len(PROGRAM)}
    assert judge.stats() == {"judge/n": 0}  # reset by the previous call


def test_program_judge_raises_on_scorer_bug():
    judge = ProgramJudge({"broken": Broken()})
    with pytest.raises(JudgeError, match=r"judge program: environment 'broken', task broken/0/1/3"):
        judge([BROKEN], ["<answer>1</answer>"])
    try:
        judge([BROKEN], ["<answer>1</answer>"])
    except JudgeError as err:
        assert isinstance(err.__cause__, RuntimeError) and "scorer bug" in str(err)


def test_program_judge_raises_on_score_out_of_range():
    task = Overscored().task(0, 0, 1)
    with pytest.raises(JudgeError, match=r"overscored.*overscored/0/1/0.*outside \[0, 1\]"):
        ProgramJudge({"overscored": Overscored()})([task], ["<answer>1</answer>"])


@pytest.mark.parametrize("judge_class", [ProgramJudge, MajorityJudge])
def test_unknown_environment_names_env_and_task(judge_class):
    with pytest.raises(KeyError, match=r"t/a.*'arithmetic'"):
        judge_class({"clarify": ENVS["clarify"]})([A], ["<answer>1</answer>"])


@pytest.mark.parametrize("judge_class", [ProgramJudge, MajorityJudge])
def test_batch_shape_is_checked(judge_class):
    with pytest.raises(ValueError, match="2 tasks but 1 completions"):
        judge_class(ENVS)([A, A], ["<answer>1</answer>"])


def test_majority_rejects_two_tasks_with_one_id():
    other = _task("169", "t/a")
    with pytest.raises(ValueError, match="t/a"):
        MajorityJudge(ENVS)([A, other], ["<answer>1</answer>", "<answer>1</answer>"])


# -- majority judge -----------------------------------------------------------------------

# Five groups, interleaved out of order. Per group, with the program's score in brackets:
#   t/a (truth 168): 167 x2 beats 168 -> label "167" is wrong; agree 1 of 4 (the malformed one)
#   t/b (truth 12):  13, 12, 12, 13 tie -> first seen "13" wins, wrong; agree 0 of 4
#   t/c (truth 5):   5 x3 -> label right; the ask scores 0 both ways; agree 5 of 5
#   t/d (truth 7):   no answers -> no label; every score is 0 both ways; agree 2 of 2
#   clarify, underspecified: no vote, no ground truth; asks go to check_question
# agreement = (1 + 0 + 5 + 2) / (4 + 4 + 5 + 2) = 8/15; label_accuracy = 1/3 (t/d has no label).
# task, completion, score, kind, reason
MAJORITY = [
    (C, "<answer>5</answer>", 1.0, "answer", "majority"),
    (A, "<answer>167</answer>", 1.0, "answer", "majority"),
    (UNDER, f"<ask>How many {MISSING}?</ask>", 1.0, "ask", "asked_missing"),
    (B, "<answer>13</answer>", 1.0, "answer", "majority"),
    (D, "<ask>What?</ask>", 0.0, "ask", "asked_when_specified"),
    (A, "<think>100+67</think><answer>  167 </answer>", 1.0, "answer", "majority"),
    (C, "<answer>4</answer><answer>5</answer>", 1.0, "answer", "majority"),  # last tag counts
    (B, "<answer>12</answer>", 0.0, "answer", "minority"),
    (UNDER, f"<ask>How many {OTHER}?</ask>", 0.0, "ask", "asked_wrong_quantity"),
    (A, "<answer>168</answer>", 0.0, "answer", "minority"),
    (C, "<answer>5</answer> is it", 1.0, "answer", "majority"),
    (D, "the answer is 7", 0.0, "malformed", "no_majority"),
    (B, "<answer>12</answer>", 0.0, "answer", "minority"),
    (UNDER, "<answer>9</answer>", 0.0, "answer", "answered_underspecified"),
    (C, "<answer>6</answer>", 0.0, "answer", "minority"),
    (A, "so it must be 168", 0.0, "malformed", "malformed"),  # an answer buried, no tag
    (B, "<answer>13</answer>", 1.0, "answer", "majority"),
    (UNDER, "<answer>9</answer>", 0.0, "answer", "answered_underspecified"),  # 2 of 4: no vote
    (C, "<ask>Which numbers?</ask>", 0.0, "ask", "asked_when_specified"),
]


def test_majority_judge_table():
    judge = MajorityJudge(ENVS)
    tasks, completions = [r[0] for r in MAJORITY], [r[1] for r in MAJORITY]
    got = [(v.score, v.kind, v.reason) for v in judge(tasks, completions)]
    assert got == [(score, kind, reason) for _, _, score, kind, reason in MAJORITY]
    assert judge.stats() == pytest.approx(
        {
            "judge/n": 19,
            "judge/groups": 4,
            "judge/no_majority_groups": 1,
            "judge/agreement": 8 / 15,
            "judge/label_accuracy": 1 / 3,
        }
    )
    # Reset: nothing judged since, so no accuracy is claimed.
    assert judge.stats() == {"judge/n": 0, "judge/groups": 0, "judge/no_majority_groups": 0}


@pytest.mark.parametrize(
    "first, second",
    [("12", "13"), ("13", "12")],  # both orders: the first seen wins, not the smaller
)
def test_majority_tie_goes_to_first_seen(first, second):
    verdicts = MajorityJudge(ENVS)(
        [B, B], [f"<answer>{first}</answer>", f"<answer>{second}</answer>"]
    )
    assert [v.score for v in verdicts] == [1.0, 0.0]


def test_majority_is_weak_on_countdown():
    """Right expressions differ, so they split the vote; a repeated wrong one wins.

    The wrong one repeats only up to whitespace, which normalisation removes.
    """
    task = Task(
        "t/cd",
        "countdown",
        2,
        "Use 2 3 4 to make 10.",
        "2*3+4",
        metadata={"numbers": [2, 3, 4], "target": 10},
    )
    judge = MajorityJudge(ENVS)
    completions = [
        f"<answer>{e}</answer>" for e in ("2*3+4", "4+2*3", "2 + 3 + 4", " 2  +  3 +\n4")
    ]
    assert [v.score for v in judge([task] * 4, completions)] == [0.0, 0.0, 1.0, 1.0]
    stats = judge.stats()
    assert stats["judge/agreement"] == 0.0 and stats["judge/label_accuracy"] == 0.0


def test_majority_raises_on_scorer_bug():
    judge = MajorityJudge({"broken": Broken()})
    # The ask goes to check_question; the answer to the program scorer for the agreement metric.
    with pytest.raises(
        JudgeError, match=r"judge majority: environment 'broken', task broken/0/1/3"
    ):
        judge([BROKEN], ["<ask>Which?</ask>"])
    with pytest.raises(JudgeError, match=r"environment 'broken', task broken/0/1/3: scorer bug"):
        judge([BROKEN], ["<answer>1</answer>"])


def test_make_judge():
    assert isinstance(make_judge("program", ENVS), ProgramJudge)
    assert isinstance(make_judge("majority", ENVS), MajorityJudge)
    with pytest.raises(ValueError, match="'llm'.*program, majority"):
        make_judge("llm", ENVS)


def test_judges_import_without_torch():
    code = "import selfplay.judges, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
