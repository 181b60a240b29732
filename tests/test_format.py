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


# completion, answer, confidence, confidence_error, trailing
CONFIDENCES = [
    ("<answer>4</answer><confidence>0.8</confidence>", "4", 0.8, None, ""),
    ("<answer>4</answer> \n<confidence> .25 </confidence>\n", "4", 0.25, None, "\n"),
    ("<answer>4</answer><confidence>1</confidence>", "4", 1.0, None, ""),
    ("<answer>4</answer><confidence>-0</confidence>", "4", 0.0, None, ""),
    ("<answer>4</answer>", "4", None, None, ""),
    ("<answer>4</answer><confidence>high</confidence>", "4", None, "not_a_number", ""),
    ("<answer>4</answer><confidence>nan</confidence>", "4", None, "not_a_number", ""),
    ("<answer>4</answer><confidence>80%</confidence>", "4", None, "not_a_number", ""),
    ("<answer>4</answer><confidence></confidence>", "4", None, "not_a_number", ""),
    ("<answer>4</answer><confidence>1.5</confidence>", "4", None, "out_of_range", ""),
    ("<answer>4</answer><confidence>-0.1</confidence>", "4", None, "out_of_range", ""),
    ("<answer>4</answer><confidence>0.8", "4", None, "unclosed", "<confidence>0.8"),
    # only right after the answer; a second tag is trailing text
    (
        "<answer>4</answer> so <confidence>0.8</confidence>",
        "4",
        None,
        None,
        " so <confidence>0.8</confidence>",
    ),
    ("<answer>4</answer><confidence>0.8</confidence>!", "4", 0.8, None, "!"),
    (
        "<answer>4</answer><confidence>0.8</confidence><confidence>0.9</confidence>",
        "4",
        0.8,
        None,
        "<confidence>0.9</confidence>",
    ),
    # the answer read is unchanged: the last final tag, whatever confidence came before it
    ("<answer>3</answer><confidence>0.9</confidence><answer>4</answer>", "4", None, None, ""),
    (
        "<think>maybe <answer>3</answer><confidence>0.9</confidence></think><answer>4</answer>",
        "4",
        None,
        None,
        "",
    ),
    ("<answer>4</answer><confidence>0.7</confidence><answer>5", "4", 0.7, None, "<answer>5"),
]


@pytest.mark.parametrize("completion,answer,confidence,error,trailing", CONFIDENCES)
def test_confidence_table(completion, answer, confidence, error, trailing):
    parsed = parse_completion(completion)
    assert (parsed.kind, parsed.answer) == ("answer", answer)
    assert (parsed.confidence, parsed.confidence_error) == (confidence, error)
    assert parsed.trailing == trailing


def test_confidence_only_follows_an_answer():
    parsed = parse_completion("<ask>How many?</ask><confidence>0.5</confidence>")
    assert (parsed.kind, parsed.confidence, parsed.confidence_error) == ("ask", None, None)
    assert parsed.trailing == "<confidence>0.5</confidence>"
    assert parse_completion("<confidence>0.5</confidence>").kind == "malformed"


def test_render_confidence_round_trips():
    from envs.format import render_confidence

    for p in (0.0, 0.1, 0.7000000000000001, 0.25, 1.0):
        text = render_completion(["2+2=4"], "<answer>4</answer>") + render_confidence(p)
        assert parse_completion(text).confidence == pytest.approx(p)
    assert render_confidence(0.7000000000000001) == "<confidence>0.7</confidence>"
    with pytest.raises(ValueError, match="probability"):
        render_confidence(1.5)


def test_huge_confidence_parses_quickly():
    import time

    for tail in (
        "<confidence>" + "1" * 200_000,
        " " * 200_000 + "x",
        "<confidence>" + "<" * 100_000,
    ):
        start = time.perf_counter()
        parse_completion("<answer>1</answer>" + tail)
        assert time.perf_counter() - start < 1.0
