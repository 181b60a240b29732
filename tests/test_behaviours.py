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


# The layouts pretrained models write (tests/test_behaviour_styles.py measures them at scale).
VERIFIED_IN_PROSE = [
    # reasoning, final answer, verified self-correction
    ("9 * 7 = 56. No, 9 * 7 = 63.", "63", True),  # several steps a line
    ("48 + 36 = 74. Wait, 8 + 6 = 14, so I carry the 1: 48 + 36 = 84.", "84", True),
    ("$9 \\times 7 = 56$, no: $9 \\times 7 = 63$", "63", True),  # LaTeX
    ("\\[ 25 \\cdot 4 &= 90 \\\\ 25 \\cdot 4 &= 100 \\]", "100", True),
    ("- 9 × 7 = **56**\n- 9 × 7 = **63**", "63", True),  # markdown, unicode
    ("9 times 7 is 56; 9 times 7 is 63", "63", True),  # operators in words
    ("7 x 8 = 54. No, 7 x 8 = 56.", "56", True),
    ("1,250 + 3,475 = 4,625, no: 1250 + 3475 = 4,725", "4725", True),  # thousands separators
    ("ones (8 + 6 = 13)... wait (8 + 6 = 14)", "14", True),  # parentheses around a step
    ("3 - 8 = 5, then 3 - 8 = -5.", "-5", True),
    # A value replaced without its lhs.
    ("27 + 64 = 81, carry the 1: the total is 91, not 81.", "91", True),
    ("9 * 7 = 56. Hmm, that should be 63.", "63", True),
    ("14 * 6 = 74; I mean 84.", "84", True),
    ("48 + 36 = 74 — no, it's 84.", "84", True),
    ("56 - 19 = 47. Not 47 but 37.", "37", True),
    ("The product is 54. Actually it's 56.", "56", True),
    ("16 * 5 = 90. Correction: 80.", "80", True),
    # A stated answer replaced, mid-line or boxed.
    ("So the answer is 74. Wait, the tens carry: the answer is 84.", "84", True),
    ("$\\boxed{72}$. Hmm, 7 + 5 = 12: $\\boxed{82}$", "82", True),
    ("The answer is 75 + 25 - 6... no. The answer is 75 + 25 - 4.", "75+25-4", True),
    # Not corrections.
    ("7 times 6 is 42, not 36.", "42", False),  # 36 was never claimed
    ("Use 4 and 6, not 8: 4 * 6 = 24.", "4*6", False),  # 6 is an operand, not a result
    ("We need 7 * 8 = 56, not 7 + 8.", "56", False),  # "7 + 8" is an expression
    ("4 * 5 = 20, so it should be 20 + 1 = 21.", "21", False),
    ("7 / 2 = 3.5, so try 7 * 2 = 14.", "7*2", False),  # "7 / 2 = 3" is no step
    ("7 + 5 = 12.5\n7 + 5 = 12", "12", False),
    ("48 + 36 = 84. The answer is 84.", "84", False),
    ("The answer is (4 * 3) + 8.", "4*3+8", False),  # the same value and numbers
    ("4 * 3 + 8 = 20. So the answer is 20.", "4*3+8", False),  # countdown's target
    ("answer: 4+8", "12", False),
    ("The answer is 4 + 8 + 8. No, 8 twice.", "4*3+8", True),  # another expression
    ("The answer is 84, not a decimal.", "84", False),
    ("The answer should be a whole number: 84 / 4 = 21.", "21", False),
    ("**Step 1:** 4 * 3 = 12\n**Answer:** **12**", "12", False),  # markdown around it
]


@pytest.mark.parametrize(("reasoning", "final", "expected"), VERIFIED_IN_PROSE)
def test_self_correction_verified_in_prose(reasoning, final, expected):
    text = think(reasoning, f"<answer>{final}</answer>")
    assert self_correction_verified(text, ARITH, RIGHT) is expected


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


VERIFICATION_IN_PROSE = [
    # reasoning, final answer, re-checks a result
    ("48 + 36 = 84; again, 48 + 36 = 84.", "84", True),
    ("So 23 + 19 = 42. Wait, is that right? 23 + 19 = 42. Yes.", "42", True),
    ("$84 - 36 = 48$ and $48 + 36 = 84$.", "48", True),  # inverse, in LaTeX
    ("12 multiplied by 11 is 132; 132 divided by 11 is 12.", "132", True),  # in words
    ("72 / 6 = 12 (12 * 6 = 72).", "12", True),
    ("6 * 9 = 54, and 54 / 9 = 6, so that checks out.", "54", True),
    ("395 + 287 = 682. To confirm, 682 - 287 = 395.", "682", True),
    ("31 * 3 = 93. Let me redo that to be sure: 90 + 3 = 93.", "93", True),
    ("Let me check: 37 + 19 = 56.", "37", True),
    # A conclusion restates a result; it does not recompute it.
    ("48 + 36 = 84. Therefore, 48 + 36 = 84.", "84", False),
    ("58 + 67 = 125.\n\nSo, 58 + 67 = 125.", "125", False),
    ("- 72 / 8 = 9\n\n**Answer:** 72 / 8 = 9", "9", False),
    ("$$13 \\times 7 = 91$$\n**Final Answer**\n$$\\boxed{13 \\times 7 = 91}$$", "91", False),
    ("8 * 15 = 120, so 120 / 8 = 15.", "15", False),  # the inverse computes the answer
    ("8 + 6 = 14, write 4; 4 + 3 + 1 = 8. So 84.", "84", False),
]


@pytest.mark.parametrize(("reasoning", "final", "expected"), VERIFICATION_IN_PROSE)
def test_verification_in_prose(reasoning, final, expected):
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

# The layouts of pretrained models: LaTeX, markdown, words, values replaced in words.
PROSE_HUGE = [
    "\\" * 100_000,
    "{" * 100_000,
    "\\frac{1}{" * 10_000,
    "1,000" * 20_000,
    "1x" * 50_000,
    "1 x " * 25_000,
    "1 is " * 20_000,
    "1 times " * 12_000,
    "1, not " * 14_000,
    "not 1 but " * 10_000,
    "2" + " " * 50_000 + "," + " " * 50_000 + "not 3",
    "no, 5 " * 16_000,
    "= 1 " * 25_000 + "oops, 2",
    "answer: " * 12_000,
    "So 12+9=21\n" * 9_000,
    "\\boxed{1+1}" * 9_000,
    "×÷−" * 30_000,
]


@pytest.mark.parametrize("text", GARBAGE + HUGE + PROSE_HUGE, ids=lambda t: repr(t[:20]))
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


@pytest.mark.parametrize("text", PROSE_HUGE, ids=lambda t: repr(t[:20]))
def test_prose_garbage_with_a_correct_answer_is_tagged_quickly(text):
    # A correct verdict runs every check of a verified self-correction, values replaced in
    # words included; a malformed one stops before them.
    start = time.perf_counter()
    tag(f"<think>{text}</think><answer>(1+1)</answer>", ARITH, RIGHT)
    assert time.perf_counter() - start < 0.5
