"""Behaviour taggers on hand-written traces, with and without each behaviour, and the metrics."""

from __future__ import annotations

import time

import pytest

from envs import Task, Verdict
from selfplay.behaviours import (
    CLARIFY_OUTCOMES,
    aggregate,
    asked,
    backtracking,
    clarify_outcome,
    reasoning_length,
    self_correction_lexical,
    self_correction_verified,
    states_confidence,
    tag,
    verification,
)

ARITH = Task("t/arith", "arithmetic", 1, "Compute 7+5.", "12")
COUNTDOWN = Task(
    "t/cd", "countdown", 2, "Use 3 4 8 to make 20.", "4*3+8", metadata={"numbers": [3, 4, 8]}
)
VAGUE = Task("t/vague", "clarify", 1, "Ben has 5 figs and some pears.", None, specified=False)
RIGHT = Verdict(1.0, "answer", "12", "correct")
WRONG = Verdict(0.0, "answer", "13", "wrong")
ASKED = Verdict(1.0, "ask", "How many pears?", "asked_when_needed")
ASKED_WRONGLY = Verdict(0.0, "ask", "How many figs?", "asked_when_specified")
MALFORMED = Verdict(0.0, "malformed", None, "no_final_tag")


def think(reasoning: str, final: str = "<answer>12</answer>") -> str:
    return f"<think>{reasoning}</think>{final}"


# -- reasoning length ------------------------------------------------------------------------

LENGTHS = [
    # completion, reasoning chars, non-empty lines
    (think("7+5=12"), 6, 1),
    (think("a\n\n  \nb"), 7, 2),  # blank and whitespace-only lines are not steps
    (think(""), 0, 0),
    ("7+5=12\n9+1=10\n<answer>12</answer>", 13, 2),  # no <think>: the text before the final tag
    ("just text, no tags", 18, 1),
]


@pytest.mark.parametrize(("text", "chars", "steps"), LENGTHS)
def test_reasoning_length(text, chars, steps):
    assert reasoning_length(text) == {"reasoning_chars": chars, "reasoning_steps": steps}


# -- self-correction -------------------------------------------------------------------------

LEXICAL = [
    # reasoning, has a correction marker
    ("7+5=13\nwait, 7+5=12", True),
    ("Wait. 7+5=12", True),
    ("WAIT", True),
    ("7+5=12\nlet me check that", True),
    ("let me re-check", True),
    ("recheck: 7+5=12", True),
    ("actually it is 12", True),
    ("oops, 13 is wrong", True),
    ("no, 7+5=12", True),
    ("No, it is 12", True),
    ("I made a\nmistake", True),  # any whitespace between the words
    ("that's wrong", True),
    ("that’s wrong", True),  # typographic apostrophe
    ("that is wrong", True),
    ("correction: 12", True),
    ("I know, 7+5=12", False),  # "no," inside "know,"
    ("nothing to fix, 7+5=12", False),
    ("no 7+5 is 12", False),  # "no" without the comma
    ("awaiting the result", False),
    ("waiting", False),
    ("actually_not", False),  # joined to a word by an underscore
    ("corrections", False),
    ("7+5=12", False),
    ("", False),
]


@pytest.mark.parametrize(("reasoning", "expected"), LEXICAL)
def test_self_correction_lexical(reasoning, expected):
    assert self_correction_lexical(think(reasoning)) is expected


VERIFIED = [
    # reasoning, final tag, verdict, verified self-correction
    ("7+5=13\nwait, 7+5=12", "<answer>12</answer>", RIGHT, True),
    ("7+5=13\nwait, 7+5=12", "<answer>13</answer>", WRONG, False),  # correct answer required
    ("7+5=13\n7+5=12", "<answer>12</answer>", RIGHT, True),  # no marker needed
    ("7+5=12\nwait, 7+5=12", "<answer>12</answer>", RIGHT, False),  # marker, nothing changed
    ("7+5=12", "<answer>12</answer>", RIGHT, False),
    ("7 + 5 = 13\nwait, 7+5=12", "<answer>12</answer>", RIGHT, True),  # spaces do not matter
    ("7+5\n= 13\n7+5\n= 12", "<answer>12</answer>", RIGHT, True),  # steps split over two lines
    ("(3+4)*5 = 7*5 = 36\n7*5=35", "<answer>35</answer>", RIGHT, True),  # a chain's last link
    ("5+7=13\n7+5=12", "<answer>12</answer>", RIGHT, False),  # different lhs: not the same step
    ("x7+5=13\n7+5=12", "<answer>12</answer>", RIGHT, False),  # "x7+5" is not a step
    # An answer stated in the reasoning that the final answer replaces.
    ("7+6=13\nanswer: 13\nhmm, 7+5=12", "<answer>12</answer>", RIGHT, True),
    ("7+6=13\n<answer>13</answer>\n7+5=12", "<answer>12</answer>", RIGHT, True),
    ("7+5=12\nthe answer is 12.", "<answer>12</answer>", RIGHT, False),  # same as the final
    ("7+5=12\nanswer: +012", "<answer>12</answer>", RIGHT, False),  # same integer
    ("answer the question: 7+5=12", "<answer>12</answer>", RIGHT, False),  # not a stated answer
    # A lone "= N" right before a restart (the next step redoes an earlier one) ...
    ("4+8=12\n12*3=36\n= 36\n4+8=12\n12+8=20", "<answer>4*3+8</answer>", RIGHT, True),
    # ... but not in an equation chain, where "= 35" is an intermediate result.
    ("(3+4)*5\n= 7*5\n= 35\n35+1=36", "<answer>36</answer>", RIGHT, False),
    ("3+4=7\n= 7\n7*5=35", "<answer>35</answer>", RIGHT, False),
    # A correct question after an answer stated in the reasoning: answering turned into asking.
    ("5+8=13\n<answer>13</answer>\nwait, pears unknown", "<ask>How many pears?</ask>", ASKED, True),
    ("pears unknown", "<ask>How many pears?</ask>", ASKED, False),
]


@pytest.mark.parametrize(("reasoning", "final", "verdict", "expected"), VERIFIED)
def test_self_correction_verified(reasoning, final, verdict, expected):
    assert self_correction_verified(think(reasoning, final), ARITH, verdict) is expected


def test_lexical_and_verified_disagree_where_they_should():
    said_not_done = think("7+5=12\nwait, 7+5=12")
    done_not_said = think("7+5=13\n7+5=12")
    assert self_correction_lexical(said_not_done) and not self_correction_verified(
        said_not_done, ARITH, RIGHT
    )
    assert not self_correction_lexical(done_not_said) and self_correction_verified(
        done_not_said, ARITH, RIGHT
    )


def test_organism_corrections_are_verified():
    # The corpus writes a correction as a wrong step, then "wait, " and the right one.
    text = think("12+9=22\nwait, 12+9=21\n21*2=42", "<answer>42</answer>")
    verdict = Verdict(1.0, "answer", "42", "correct")
    assert self_correction_lexical(text)
    assert self_correction_verified(text, ARITH, verdict)


# -- verification ----------------------------------------------------------------------------

VERIFICATION = [
    # reasoning, final answer, re-checks a result
    ("12+9=21\n12+9=21", "21", True),  # the same step twice, same value
    ("12+9=21\ncheck: 21-9=12", "21", True),  # marker and inverse step
    ("25+50=75\n75-50=25", "75", True),  # inverse of a sum
    ("25+50=75\n75-25=50", "75", True),
    ("53-5=48\n48+5=53", "48", True),  # inverse of a difference
    ("29*5=145\n145/5=29", "145", True),  # inverse of a product
    ("29*5=145\n145/29=5", "145", True),
    ("144/12=12\n12*12=144", "12", True),  # inverse of a quotient
    ("7+5=12\nlet me verify", "12", True),
    ("7+5=12\nVerifying: fine", "12", True),
    ("7+5=12\ndouble-check it", "12", True),
    ("7+5=12\nDouble check it", "12", True),
    ("7+5=12", "12", False),  # clean
    ("7+5=12\nthat is unverified", "12", False),  # "verified" inside a word
    ("7+5=12\nI checked nothing", "12", False),
    ("12+9=21\n12+9=22", "22", False),  # same lhs, a different value: a correction, not a check
    # Column digit steps repeat and undo by coincidence: no check.
    ("8+0=8\n5+3=8\n8+0=8", "8", False),
    ("9+1=10\n10-1=9", "10", False),
    # An inverse step whose result is used again is part of the computation.
    ("50-6=44\n44+6=50\n7+50=57", "57", False),
    # An inverse step whose result is the final answer computes it (the task 79+8707-79).
    ("79+8707=8786\n8786-79=8707", "8707", False),
]


@pytest.mark.parametrize(("reasoning", "final", "expected"), VERIFICATION)
def test_verification(reasoning, final, expected):
    assert verification(think(reasoning, f"<answer>{final}</answer>")) is expected


# -- backtracking ----------------------------------------------------------------------------

BACKTRACKING = [
    # reasoning, given numbers, abandons an approach
    ("4+8=12\n12*3=36\nlet me try 4*3", None, True),
    ("Instead, 4*3=12", None, True),
    ("that doesn’t work", None, True),
    ("that does not work", None, True),
    ("dead end. 4*3=12", None, True),
    ("start over", None, True),
    ("try another pair", None, True),
    ("insteadof", None, False),
    ("4*3=12\n12+8=20", None, False),
    # Structural (given numbers): a given number reused after its chain was dropped.
    ("4+8=12\n12*3=36\n4*3=12\n12+8=20", [3, 4, 8], True),
    ("4+8=12\n12*3=36\n4*3=12\n12+8=20", None, False),  # no numbers: markers only
    ("4*3=12\n12+8=20", [3, 4, 8], False),  # clean
    ("4/4=1\n1+8=9\n75-9=66", [4, 4, 8, 75], False),  # a number given twice, used twice
    ("2+3=5\n5*5=25", [2, 3, 5], False),  # a result equal to a given number
    ("4+8=13\nwait, 4+8=12\n12*3=36", [3, 4, 8], False),  # a correction redoes, not restarts
    ("4+9=13\n13+3=16", [3, 4, 8], False),  # 9 was never given: a mistake, not a restart
]


@pytest.mark.parametrize(("reasoning", "numbers", "expected"), BACKTRACKING)
def test_backtracking(reasoning, numbers, expected):
    assert backtracking(think(reasoning, "<answer>4*3+8</answer>"), numbers) is expected


# -- asking ----------------------------------------------------------------------------------

CLARIFY = [
    # task, verdict, outcome
    (VAGUE, ASKED, "true_positive"),
    (ARITH, ASKED_WRONGLY, "false_positive"),
    (VAGUE, Verdict(0.0, "answer", "13", "answered_underspecified"), "false_negative"),
    (VAGUE, MALFORMED, "false_negative"),  # not asking, in any form
    (ARITH, RIGHT, "true_negative"),
    (ARITH, WRONG, "true_negative"),
]


@pytest.mark.parametrize(("task", "verdict", "outcome"), CLARIFY)
def test_clarify_outcome(task, verdict, outcome):
    assert clarify_outcome(task, verdict) == outcome
    assert asked(verdict) is outcome.endswith("positive")


# -- one row ---------------------------------------------------------------------------------


def test_tag_row():
    reasoning = "4+8=12\n12*3=36\nwait, 4*3=12\n12+8=20"
    verdict = Verdict(1.0, "answer", "4*3+8", "correct")
    assert tag(think(reasoning, "<answer>4*3+8</answer>"), COUNTDOWN, verdict) == {
        "reasoning_chars": 35,  # 7 + 8 + 13 + 7 characters, newlines included
        "reasoning_steps": 4,
        "self_correction_lexical": True,
        "self_correction_verified": False,  # no step changed its value
        "verification": False,
        "backtracking": True,  # 4 reused: the task's numbers come from its metadata
        "asked": False,
        "clarify_outcome": "true_negative",
        "states_confidence": False,
        "confidence": None,
    }


# completion, states_confidence, confidence
CONFIDENCES = [
    (think("7+5=12", "<answer>12</answer><confidence>0.8</confidence>"), True, 0.8),
    (think("7+5=12", "<answer>12</answer>\n<confidence>1</confidence>"), True, 1.0),
    (think("7+5=12", "<answer>12</answer><confidence>0</confidence>"), True, 0.0),
    (think("7+5=12", "<answer>12</answer>"), False, None),
    (think("7+5=12", "<answer>12</answer><confidence>sure</confidence>"), False, None),
    (think("7+5=12", "<answer>12</answer><confidence>1.2</confidence>"), False, None),
    (think("pears?", "<ask>How many pears?</ask><confidence>0.9</confidence>"), False, None),
    (think("<answer>3</answer><confidence>0.9</confidence>", "<answer>12</answer>"), False, None),
]


@pytest.mark.parametrize("text, states, confidence", CONFIDENCES)
def test_states_confidence(text, states, confidence):
    tags = tag(text, ARITH, RIGHT)
    assert (tags["states_confidence"], tags["confidence"]) == (states, confidence)
    assert states_confidence(text) is states
    # the rest of the row is read as without the confidence tag
    plain = text.replace("<confidence>", "<c>").replace("</confidence>", "</c>")
    assert tags["self_correction_verified"] == tag(plain, ARITH, RIGHT)["self_correction_verified"]


def test_tag_ignores_numbers_that_are_not_a_list_of_ints():
    text = think("4+8=12\n12*3=36\n4*3=12")
    odd = Task("t/odd", "odd", 1, "p", "12", metadata={"numbers": "3 4 8"})
    assert tag(text, odd, RIGHT)["backtracking"] is False


# -- aggregate -------------------------------------------------------------------------------


def row(chars, steps, lexical, verified, verifies, backtracks, did_ask, outcome, sure=False):
    return {
        "reasoning_chars": chars,
        "reasoning_steps": steps,
        "self_correction_lexical": lexical,
        "self_correction_verified": verified,
        "verification": verifies,
        "backtracking": backtracks,
        "asked": did_ask,
        "clarify_outcome": outcome,
        "states_confidence": sure,
        "confidence": 0.9 if sure else None,
    }


ROWS = [
    row(10, 2, True, True, False, False, False, "true_negative"),
    row(20, 4, True, False, True, False, True, "true_positive"),
    row(0, 0, False, False, False, True, True, "false_positive"),
    row(30, 6, False, False, False, False, False, "false_negative", sure=True),
]


def test_aggregate_by_hand():
    assert aggregate(ROWS) == {
        "behaviour/self_correction_lexical_rate": 0.5,
        "behaviour/self_correction_verified_rate": 0.25,
        "behaviour/verification_rate": 0.25,
        "behaviour/backtracking_rate": 0.25,
        "behaviour/ask_rate": 0.5,
        "behaviour/states_confidence_rate": 0.25,
        "length/reasoning_chars_mean": 15.0,
        "length/reasoning_steps_mean": 3.0,
        "clarify/precision": 0.5,  # 1 TP / (1 TP + 1 FP)
        "clarify/recall": 0.5,  # 1 TP / (1 TP + 1 FN)
    }


def test_aggregate_omits_empty_denominators():
    never_asked = [ROWS[0], ROWS[3]]  # TN and FN: recall is 0/1, precision has no denominator
    metrics = aggregate(never_asked)
    assert metrics["clarify/recall"] == 0.0
    assert "clarify/precision" not in metrics
    specified_only = aggregate([ROWS[0], ROWS[0]])  # no asks, nothing underspecified
    assert "clarify/precision" not in specified_only and "clarify/recall" not in specified_only
    assert specified_only["behaviour/ask_rate"] == 0.0  # a rate with rows is 0, not omitted
    assert aggregate([]) == {}


def test_aggregate_rejects_an_unknown_outcome():
    with pytest.raises(ValueError, match="clarify_outcome"):
        aggregate([{**ROWS[0], "clarify_outcome": "maybe"}])


def test_aggregate_of_tagged_rows():
    rows = [
        tag(think("7+5=13\nwait, 7+5=12"), ARITH, RIGHT),
        tag(think("pears unknown", "<ask>How many pears?</ask>"), VAGUE, ASKED),
    ]
    assert {r["clarify_outcome"] for r in rows} <= set(CLARIFY_OUTCOMES)
    metrics = aggregate(rows)
    assert metrics["behaviour/self_correction_verified_rate"] == 0.5
    assert metrics["behaviour/ask_rate"] == 0.5
    assert metrics["clarify/precision"] == 1.0 and metrics["clarify/recall"] == 1.0


# -- garbage and speed -----------------------------------------------------------------------

GARBAGE = [
    "",
    "no tags at all",
    "<think>unclosed",
    "<answer>unclosed",
    "</think></answer><answer></ask>",
    "é😀\u202e\x00\ufeff 🤔 wait, ７+５=１２",  # full-width digits are not steps
    "<think>" + "=" * 50 + "</think><answer>1</answer>",
    "<think>(((((1+2=3</think><answer>3</answer>",
    "<think>--5=5\n()+5=5\n+5=5\n5+=5\n5+5==10</think><answer>10</answer>",
]

HUGE = [
    "a" * 100_000,
    "=" * 100_000,
    "(" * 100_000,
    "-" * 100_000,
    "1" * 100_000,
    "1" + " " * 100_000 + "x",
    "=5" + " " * 100_000 + "x",
    "1 + " * 25_000 + "x",
    "1  +  " * 16_000 + "=3",
    ("1+" * 40 + "1=5x\n") * 1_000,
    ("9" * 29 + "+") * 3_000 + "=5",
    "7+5=12\n" * 14_000,
    "= 1\n" * 25_000,
    "answer " * 14_000,
    ("answer " + "1 " * 95 + "\n") * 500,
    "<answer>1</answer>" * 6_000,
    "wait, " * 16_000,
    "waitwait" * 12_500,
    "no" * 50_000,
    "İ" * 100_000,  # lower-casing changes its length
    "<think>"
    + "".join(f"{i}+{i}={2 * i}\n{2 * i}-{i}={i}\n" for i in range(20, 4000))
    + "</think>",
]


@pytest.mark.parametrize("text", GARBAGE + HUGE, ids=lambda t: repr(t[:20]))
def test_garbage_is_tagged_quickly(text):
    start = time.perf_counter()
    tags = tag(text, COUNTDOWN, MALFORMED)
    assert time.perf_counter() - start < 0.5
    assert set(tags) == {
        "reasoning_chars",
        "reasoning_steps",
        "self_correction_lexical",
        "self_correction_verified",
        "verification",
        "backtracking",
        "asked",
        "clarify_outcome",
        "states_confidence",
        "confidence",
    }
    assert tags["self_correction_verified"] is False  # never without a correct answer
    assert tags["clarify_outcome"] == "true_negative"
