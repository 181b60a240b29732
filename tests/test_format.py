"""The completion parser: a literal table of completions and what they must parse to."""

import pytest

from envs import parse_completion, render_completion
from envs.format import MAX_FINAL_CHARS

CASES = [
    # completion, kind, answer or question, error
    ("<think>2+2=4</think><answer>4</answer>", "answer", "4", None),
    ("<answer> 4 </answer>", "answer", "4", None),
    ("<answer>3</answer><answer>5</answer>", "answer", "5", None),  # the last tag wins
    ("the answer is 42", "malformed", None, "no_final_tag"),  # an answer only in the reasoning
    ("I think <answer>42", "malformed", None, "unclosed_final_tag"),
    ("<answer>42</ask>", "malformed", None, "unclosed_final_tag"),  # mismatched closer
    ("<answer></answer>", "answer", "", None),
    ("<ask>How many apples?</ask>", "ask", "How many apples?", None),
    ("<answer>7</answer><ask>How many pears?</ask>", "ask", "How many pears?", None),
    ("<ask>How many pears?</ask><answer>7</answer>", "answer", "7", None),
    ("<answer><answer>5</answer>", "answer", "5", None),  # the inner tag is the well-formed one
    ("<answer>1<answer>2</answer></answer>", "answer", "2", None),
    ("<answer>5</answer><answer>6", "answer", "5", None),  # trailing junk does not erase it
    ("", "malformed", None, "no_final_tag"),
    ("<think>42</think>", "malformed", None, "no_final_tag"),
    ("<answer>" + "9" * (MAX_FINAL_CHARS + 1) + "</answer>", "malformed", None, "final_too_long"),
]


@pytest.mark.parametrize("completion,kind,content,error", CASES)
def test_parse_table(completion, kind, content, error):
    parsed = parse_completion(completion)
    assert parsed.kind == kind
    assert (parsed.answer if kind == "answer" else parsed.question) == content
    assert parsed.error == error


def test_reasoning_prefers_think_block():
    parsed = parse_completion("<think>5+3=8</think>so<answer>8</answer>tail")
    assert parsed.reasoning == "5+3=8"
    assert parsed.trailing == "tail"
    assert parse_completion("carry the one <answer>8</answer>").reasoning == "carry the one"


def test_render_round_trips():
    text = render_completion(["1+2=3", "3*2=6"], "<answer>6</answer>")
    assert text == "<think>1+2=3\n3*2=6</think><answer>6</answer>"
    parsed = parse_completion(text)
    assert (parsed.kind, parsed.answer, parsed.reasoning) == ("answer", "6", "1+2=3\n3*2=6")


def test_huge_output_parses_quickly():
    import time

    text = "<think>" * 20_000 + "blah " * 200_000 + "<answer>12</answer>" + "<answer>" * 1000
    start = time.perf_counter()
    parsed = parse_completion(text)
    assert parsed.answer == "12"
    assert time.perf_counter() - start < 2.0
