"""The programs environment: templates, the three kinds, scoring through a real sandbox,
proposals and their rejections."""

from __future__ import annotations

import os
import random
import re

import pytest

from envs import Rejected, load_env, render_proposal, task_from_proposal
from envs.programs import (
    KINDS,
    MAX_OUTPUT_CHARS,
    TEMPLATES,
    Programs,
    held_out,
    level_of,
)
from selfplay.sandbox import Limits, Sandbox, SandboxError

SORT = "def f(xs):\n    return sorted(xs)"
LOOP = "def f(x):\n    while True:\n        pass"


@pytest.fixture(scope="module")
def sandbox():
    # A short wall time keeps the infinite-loop cases to a second each.
    try:
        box = Sandbox(workers=2, limits=Limits(wall_seconds=1.0, cpu_seconds=1.0))
    except SandboxError as err:
        pytest.skip(f"selfplay.sandbox cannot start workers here: {err}")
    yield box
    box.close()


def env(kind: str, sandbox: Sandbox) -> Programs:
    return Programs(kind, executor=sandbox.run)


def score(env: Programs, answer: str, task):
    return env.score(f"<think></think><answer>{answer}</answer>", task)


def rejection(env: Programs, content: str) -> tuple[str, str]:
    with pytest.raises(Rejected) as caught:
        env.from_proposal(content)
    return caught.value.reason, caught.value.detail


# -- the environment and its templates ------------------------------------------------


def test_registered_with_its_kind():
    assert load_env("programs").kind == "deduction"
    assert load_env("programs", kind="abduction").kind == "abduction"
    assert load_env("programs").executor is None
    with pytest.raises(ValueError, match="programs"):
        load_env("programs", kind="translation")


def test_templates_land_in_their_level():
    assert len({t.name for t in TEMPLATES}) == len(TEMPLATES)
    for level in Programs.levels:
        assert sum(t.level == level for t in TEMPLATES) >= 5
    rng = random.Random(0)
    for template in TEMPLATES:
        for _ in range(5):
            assert level_of(template.program(template.parameters(rng))) == template.level


def test_templates_compute_what_their_source_returns(sandbox):
    rng = random.Random(1)
    jobs, expected = [], []
    for template in TEMPLATES:
        for _ in range(4):
            parameters = template.parameters(rng)
            program = template.program(parameters)
            for _ in range(3):
                arguments = template.arguments(rng)
                jobs.append((program, f"f({', '.join(map(repr, arguments))})"))
                expected.append((template.name, repr(template.compute(*arguments, **parameters))))
    for (program, call), (name, value), result in zip(
        jobs, expected, sandbox.run_many(jobs), strict=True
    ):
        assert (result.status, result.violation) == ("ok", False), (name, call, result)
        assert result.value == value, (name, program, call)


def test_generated_outputs_are_short_distinct_literals():
    deduction = Programs()
    for level in deduction.levels:
        for index in range(150):
            task = deduction.task(2, index, level)
            assert len(task.answer) <= MAX_OUTPUT_CHARS
            induction = Programs("induction").task(2, index, level)
            outputs = induction.metadata["outputs"] + induction.metadata["held_out_outputs"]
            assert len(outputs) == 6 and len(set(outputs)) > 1
            assert (
                len(set(induction.metadata["inputs"] + induction.metadata["held_out_inputs"])) == 6
            )


@pytest.mark.parametrize("kind", KINDS)
def test_generated_gold_scores_correct(kind, sandbox):
    programs = env(kind, sandbox)
    for level in programs.levels:
        for index in range(6):
            task = programs.task(4, index, level)
            assert task == programs.task(4, index, level)
            assert (task.metadata["kind"], task.difficulty) == (kind, level)
            verdict = score(programs, task.answer, task)
            assert (verdict.score, verdict.reason) == (1.0, "correct"), (task, verdict)


def test_kinds_of_one_id_share_program_and_input():
    tasks = [Programs(kind).task(9, 5, 3) for kind in KINDS]
    deduction, abduction, induction = tasks
    assert len({t.metadata["program"] for t in tasks}) == 1
    assert len({t.metadata["inputs"][0] for t in tasks}) == 1
    assert abduction.answer == deduction.metadata["inputs"][0]
    assert deduction.answer == abduction.metadata["outputs"][0] == induction.metadata["outputs"][0]
    assert induction.answer == induction.metadata["program"]
    assert (len(induction.metadata["inputs"]), len(induction.metadata["held_out_inputs"])) == (4, 2)
    for held in induction.metadata["held_out_inputs"]:
        assert f"f({held})" not in induction.prompt


# -- scoring ---------------------------------------------------------------------------


def test_deduction_scores_literals_without_an_executor():
    programs = Programs()
    task = programs.task(0, 0, 1)
    assert score(programs, task.answer, task).score == 1
    assert score(programs, f" {task.answer} ", task).score == 1
    assert score(programs, "[1, 2", task).reason == "not_a_literal"
    assert score(programs, "os.getcwd()", task).reason == "not_a_literal"
    assert (score(programs, "'zz'", task).score, score(programs, "'zz'", task).reason) == (
        0,
        "wrong",
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("[1, 2, 3]", "correct"),
        ("[3, 2, 1]", "correct"),  # any input that gives the output
        ("xs=[2, 3, 1]", "correct"),
        ("[1, 2]", "wrong"),
        ("None", "error"),
        ("", "error"),
        ("1) + f(2", "unparsable"),
        ("[1, 2", "unparsable"),
        ("any(iter(int, 1))", "timeout"),
        ("__import__('os')", "unsafe"),
    ],
)
def test_abduction_runs_the_answer(answer, reason, sandbox):
    programs = env("abduction", sandbox)
    task = programs.from_proposal(f"{SORT}\n>>> f([2, 1, 3])")
    assert (task.prompt.count("[1, 2, 3]"), task.answer) == (1, "[2, 1, 3]")
    verdict = score(programs, answer, task)
    assert (verdict.score, verdict.reason) == (float(reason == "correct"), reason)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (SORT, "correct"),
        ("def f(xs):\n    return list(sorted(xs, reverse=True))[::-1]", "correct"),
        ("def f(xs):\n    return xs", "wrong"),
        # Right on every shown input, wrong on the held-out one.
        (
            "def f(xs):\n    return {3: [1, 2, 3], 2: [4, 5], 1: [0]}.get(len(xs))",
            "wrong_held_out",
        ),
        ("def f(xs):\n    return xs[99]", "error"),
        ("def f(xs)\n    return xs", "unparsable"),
        ("def g(xs):\n    return sorted(xs)", "no_function_f"),
        ("[1, 2, 3]", "no_function_f"),
        (LOOP, "timeout"),
        ("def f(x):\n    import os\n    return os.listdir('/')", "unsafe"),
        ("def f(x):\n    return open('/etc/passwd').read()", "unsafe"),
    ],
)
def test_induction_runs_the_answer(answer, reason, sandbox):
    programs = env("induction", sandbox)
    task = programs.from_proposal(
        f"{SORT}\n>>> f([3, 1, 2])\n>>> f([5, 4])\n>>> f([0])\n>>> f([9, 7])"
    )
    assert task.metadata["held_out_inputs"] == ["[9, 7]"]
    verdict = score(programs, answer, task)
    assert (verdict.score, verdict.reason) == (float(reason == "correct"), reason)


def test_hostile_answers_leave_the_test_process_alone(sandbox, tmp_path):
    cwd = os.getcwd()
    canary = tmp_path / "canary"
    canary.write_text("alive")
    induction = env("induction", sandbox)
    task = induction.task(0, 0, 1)
    for answer in (
        f"def f(*args):\n    import os\n    os.remove({str(canary)!r})\n    return 0",
        "def f(*args):\n    import os\n    os.chdir('/')\n    return 0",
        "def f(*args):\n    return ().__class__.__base__.__subclasses__()",
    ):
        assert score(induction, answer, task).reason == "unsafe", answer
    assert (os.getcwd(), canary.read_text()) == (cwd, "alive")
    assert score(induction, task.answer, task).score == 1  # the sandbox still works


def test_missing_executor_names_the_env():
    for kind in ("abduction", "induction"):
        task = Programs(kind).task(0, 0, 1)
        with pytest.raises(RuntimeError, match=r"'programs'.*env\.executor"):
            Programs(kind).check(task.answer, task)
    with pytest.raises(RuntimeError, match=r"'programs'.*env\.executor"):
        Programs().from_proposal(f"{SORT}\n>>> f([1])")


def test_a_failing_executor_propagates():
    def broken(code: str, expression: str):
        raise OSError("the executor broke")

    task = Programs("abduction").task(0, 0, 1)
    with pytest.raises(OSError, match="executor broke"):
        Programs("abduction", executor=broken).check(task.answer, task)


# -- proposals -------------------------------------------------------------------------


def test_proposal_of_each_kind(sandbox):
    content = f"{SORT}\n>>> f([3,1, 2])\n>>> f(xs=[5, 4])\n>>> f([])"
    deduction = env("deduction", sandbox).from_proposal(content)
    assert (deduction.answer, deduction.difficulty) == ("[1, 2, 3]", 1)
    assert "What does f([3, 1, 2]) return?" in deduction.prompt
    assert deduction.metadata == {
        "kind": "deduction",
        "program": SORT,
        "inputs": ["[3, 1, 2]"],
        "outputs": ["[1, 2, 3]"],
    }
    abduction = env("abduction", sandbox).from_proposal(content)
    assert abduction.answer == "[3, 1, 2]"
    assert "f returns [1, 2, 3]" in abduction.prompt
    induction = env("induction", sandbox).from_proposal(content)
    assert induction.answer == SORT
    assert induction.metadata["inputs"] == ["[3, 1, 2]", "xs=[5, 4]"]
    assert induction.metadata["outputs"] == ["[1, 2, 3]", "[4, 5]"]
    assert (induction.metadata["held_out_inputs"], induction.metadata["held_out_outputs"]) == (
        ["[]"],
        ["[]"],
    )
    assert "f(xs=[5, 4]) == [4, 5]" in induction.prompt and "f([])" not in induction.prompt
    assert "docstring" not in induction.prompt  # SORT has none
    assert [held_out(n) for n in (2, 3, 5, 6, 9)] == [1, 1, 1, 2, 3]


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind, sandbox):
    programs = env(kind, sandbox)
    for level in programs.levels:
        for index in range(4):
            task = programs.task(6, index, level)
            back = programs.from_proposal(programs.proposal(task))
            assert (back.prompt, back.answer, back.difficulty) == (task.prompt, task.answer, level)
            assert back.metadata == {k: v for k, v in task.metadata.items() if k != "template"}


@pytest.mark.parametrize(
    ("content", "reason", "detail"),
    [
        (SORT, "unparsable", "no_input"),
        (f"{SORT}\n>>> sorted([1])", "unparsable", "bad_input"),
        (f"{SORT}\n>>> f([1]) + f([2])", "unparsable", "bad_input"),
        (f"{SORT}\n>>> f([1]\n", "unparsable", "bad_input"),
        (f"{SORT}\n>>> f([1])\nmore text", "unparsable", "text_after_input"),
        ("def f(xs)\n    return xs\n>>> f(1)", "unparsable", "syntax"),
        ("def g(xs):\n    return xs\n>>> f(1)", "invalid", "no_function_f"),
        ("f = lambda x: x\n>>> f(1)", "invalid", "no_function_f"),
        (f"{SORT}\n>>> f(list(range(3)))", "invalid", "input_not_literal"),
        (f"{SORT}\n>>> f(*[[1]])", "invalid", "input_not_literal"),
        (f"{SORT}\n" + "\n".join([">>> f([1])"] * 11), "invalid", "too_many_inputs"),
        ("def f(x):\n    return 1 // x\n>>> f(0)", "invalid", "raises"),
        ("def f(n):\n    return list(range(n))\n>>> f(100)", "invalid", "output_too_large"),
        ("def f(x):\n    return f\n>>> f(1)", "invalid", "output_not_literal"),
        ("def f(x):\n    return float('nan')\n>>> f(1)", "invalid", "output_not_literal"),
        (
            "import random\ndef f(x):\n    return random.random()\n>>> f(1)",
            "invalid",
            "nondeterministic",
        ),
        (f"{LOOP}\n>>> f(1)", "unsafe", "timeout"),
        ("def f(x):\n    return x.__class__\n>>> f(1)", "unsafe", "sandbox_violation"),
        ("import os\ndef f(x):\n    return x\n>>> f(1)", "unsafe", "sandbox_violation"),
        # Caught at run time, not by the static check: open is not among the builtins.
        (
            "def f(x):\n    return open('/etc/hostname').read()\n>>> f(1)",
            "unsafe",
            "sandbox_violation",
        ),
    ],
)
def test_rejections(content, reason, detail, sandbox):
    assert rejection(env("deduction", sandbox), content) == (reason, detail)


def test_too_large_and_too_few(sandbox):
    programs = env("induction", sandbox)
    assert rejection(programs, f"{SORT}\n>>> f([1])") == ("invalid", "too_few_inputs")
    long_names = "def f(x):\n    " + "a" * 1500 + " = 1\n    return x\n>>> f(1)\n>>> f(2)"
    assert rejection(programs, long_names) == ("invalid", "too_large")
    many_lines = "def f(x):\n" + "    x += 1\n" * 60 + "    return x\n>>> f(1)\n>>> f(2)"
    assert rejection(programs, many_lines) == ("invalid", "too_large")
    many_nodes = "def f(x):\n    return " + "+".join(["x"] * 120) + "\n>>> f(1)\n>>> f(2)"
    assert len(many_nodes) < 1500 and level_of(many_nodes.split(">>>")[0]) is None
    assert rejection(programs, many_nodes) == ("invalid", "too_large")


def test_proposed_ids_are_stable(sandbox):
    programs = env("deduction", sandbox)
    first = task_from_proposal(programs, render_proposal(f"{SORT}\n>>> f([2, 1])"))
    assert re.fullmatch(r"programs/proposed/1/[0-9a-f]{12}", first.task_id)
    assert first.env == "programs"
    assert first.metadata["proposal"] == f"{SORT}\n>>> f([2, 1])"
    # Spacing inside the call does not change the task, nor do inputs it does not use.
    again = task_from_proposal(programs, render_proposal(f"{SORT}\n>>> f( [2,1] )\n>>> f([5])"))
    assert again.task_id == first.task_id
    other = task_from_proposal(programs, render_proposal(f"{SORT}\n>>> f([1, 2])"))
    assert other.task_id != first.task_id
    abduction = task_from_proposal(
        env("abduction", sandbox), render_proposal(f"{SORT}\n>>> f([2, 1])")
    )
    assert abduction.task_id != first.task_id
