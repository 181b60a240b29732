"""Programs: Absolute Zero's task triplets over short Python functions ``f``.

Each task is about a program defining ``f`` and some inputs. The env option ``kind`` picks
which part the Solver must supply (``load_env("programs", kind="abduction")``; registered
also as ``programs_abduction`` and ``programs_induction``, so one mix can hold all three):

- ``deduction``: the program and an input are shown; the answer is the output, as a Python
  literal. Scored by comparing literals (``ast.literal_eval``), no execution needed.
- ``abduction``: the program and an output are shown; the answer is an argument list, as it
  would appear inside ``f(...)``. Correct when ``f`` of it gives that output.
- ``induction``: input/output pairs and the first line of the program's docstring (if any)
  are shown; the answer is a program defining ``f``. Correct when it gives the outputs on the
  shown inputs and on held-out ones (the last third of the inputs, at least one).

Abduction and induction answers, and every proposal, are untrusted code: they run only
through the injected ``executor`` (in the project, ``selfplay.sandbox.Sandbox().run``), which
keeps this module free of ``selfplay``. Generated tasks come from a library of program
templates (``envs.program_templates``), each a source string with a trusted implementation
that computes the outputs.

A Challenger proposes a task as a program followed by one or more lines ``>>> f(<args>)``;
outputs are computed by running the program, never taken from the Challenger.
"""

from __future__ import annotations

import ast
import dataclasses
import random
from collections.abc import Callable
from typing import Any, Protocol

from envs.base import Environment, Task, Verdict, make_task
from envs.program_templates import TEMPLATES
from envs.proposals import Rejected

KINDS = ("deduction", "abduction", "induction")
CALLS = 6
"""Inputs per generated task: deduction and abduction use the first, induction all of them."""
MAX_INPUTS = 10
"""More ``>>>`` lines make a proposal invalid: each costs a run."""
MAX_PROGRAM_CHARS = 1500
MAX_PROGRAM_LINES = 60
MAX_OUTPUT_CHARS = 200
"""A longer repr of an output makes a proposal invalid (the prompt must stay short)."""
LEVELS = {1: 25, 2: 60, 3: 200}
"""level -> most AST nodes (``ast.walk``, docstring included) a program of it has. The
templates' one-line bodies have at most 23, their loops or two-step bodies 30 to 59, their
nested loops or several steps 63 to 109 (the tests check each template lands in its level);
the top budget leaves a Challenger room beyond them."""
INPUT_PROMPT = ">>>"


class ExecutionResult(Protocol):
    """What an executor reports about one run (``selfplay.sandbox.Result`` is one)."""

    status: str
    """One of "ok", "timeout", "error" and "killed"."""
    value: str | None
    """The repr of the expression's value when ``status`` is "ok"."""
    error: str
    violation: bool
    """The program tried something the sandbox forbids."""


Executor = Callable[[str, str], ExecutionResult]
"""Runs untrusted ``code``, then evaluates ``expression`` in its namespace."""


class Programs(Environment):
    name = "programs"
    levels = tuple(LEVELS)

    def __init__(self, kind: str = "deduction", executor: Executor | None = None):
        if kind not in KINDS:
            raise ValueError(
                f"environment {self.name!r}: kind must be one of {KINDS}, got {kind!r}"
            )
        self.kind = kind
        self.executor = executor

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        """A template of the level, its parameters and ``CALLS`` distinct inputs, drawn the
        same way whatever the kind, so the three kinds of one task id share program and input."""
        template = rng.choice([t for t in TEMPLATES if t.level == difficulty])
        while True:
            parameters = template.parameters(rng)
            calls: dict[str, tuple] = {}
            while len(calls) < CALLS:
                arguments = template.arguments(rng)
                calls.setdefault(", ".join(map(repr, arguments)), arguments)
            outputs = [repr(template.compute(*a, **parameters)) for a in calls.values()]
            if len(set(outputs)) > 1:  # else the pairs say nothing about f
                break
        task = _make_task(self.kind, template.program(parameters), list(calls), outputs)
        return dataclasses.replace(task, metadata={**task.metadata, "template": template.name})

    def check(self, answer: str, task: Task) -> Verdict:
        """Deduction compares literals; abduction and induction run the answer (``executor``).

        An answer that raises, runs too long or breaks the sandbox's rules scores 0 with reason
        "error", "timeout" (or "killed", over the memory or output limit) or "unsafe".
        """
        kind = task.metadata["kind"]
        if kind == "deduction":
            got = _literal(answer)
            if got is _NOT_LITERAL:
                return Verdict(0.0, "answer", answer, "not_a_literal")
            right = got == _literal(task.answer or "")
            return Verdict(float(right), "answer", answer, "correct" if right else "wrong")
        executor = self._executor(f"scoring {kind} tasks")
        if kind == "abduction":
            try:
                call = ast.parse(f"f({answer})", mode="eval").body
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return Verdict(0.0, "answer", answer, "unparsable")
            # `1) + f(2` would otherwise make the expression something other than one call.
            if not _is_call_of_f(call):
                return Verdict(0.0, "answer", answer, "unparsable")
            result = executor(task.metadata["program"], f"f({answer})")
            return _judge(answer, result, task.metadata["outputs"][0])
        try:
            tree = ast.parse(answer)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return Verdict(0.0, "answer", answer, "unparsable")
        if _function_f(tree) is None:
            return Verdict(0.0, "answer", answer, "no_function_f")
        shown = zip(task.metadata["inputs"], task.metadata["outputs"], strict=True)
        hidden = zip(
            task.metadata["held_out_inputs"], task.metadata["held_out_outputs"], strict=True
        )
        for pairs, wrong in ((shown, "wrong"), (hidden, "wrong_held_out")):
            for arguments, output in pairs:
                verdict = _judge(answer, executor(answer, f"f({arguments})"), output, wrong)
                if verdict.score == 0.0:
                    return verdict
        return Verdict(1.0, "answer", answer, "correct")

    def from_proposal(self, content: str) -> Task:
        """The task of this env's kind about ``content``: a program defining ``f``, then lines
        ``>>> f(<args>)`` whose arguments are literals. Deduction and abduction are about the
        first input; induction shows all but the last third of them (at least one), which are
        held out. Every input is run (``executor``), the first twice to catch nondeterminism."""
        executor = self._executor("from_proposal")
        program, calls = _split_proposal(content)
        try:
            tree = ast.parse(program)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise Rejected("unparsable", "syntax") from None
        if _function_f(tree) is None:
            raise Rejected("invalid", "no_function_f")
        if len(program) > MAX_PROGRAM_CHARS or len(program.splitlines()) > MAX_PROGRAM_LINES:
            raise Rejected("invalid", "too_large")
        level = level_of(program)
        if level is None:
            raise Rejected("invalid", "too_large")
        if len(calls) > MAX_INPUTS:
            raise Rejected("invalid", "too_many_inputs")
        if self.kind == "induction" and len(calls) < 2:
            raise Rejected("invalid", "too_few_inputs")
        outputs = [_run(executor, program, arguments) for arguments in calls]
        if _literal(_run(executor, program, calls[0])) != _literal(outputs[0]):
            raise Rejected("invalid", "nondeterministic")
        return dataclasses.replace(_make_task(self.kind, program, calls, outputs), difficulty=level)

    def challenger_prompt(self) -> str:
        """The proposal format and one generated example (a hub model was never taught it)."""
        example = self.task(0, 0, self.levels[0])
        return PROPOSE.format(kind=self.kind, what=WHAT[self.kind], example=self.proposal(example))

    def proposal(self, task: Task) -> str:
        """The program, then one ``>>>`` line per input the task uses, held-out ones last."""
        inputs = task.metadata["inputs"] + task.metadata.get("held_out_inputs", [])
        lines = [f"{INPUT_PROMPT} f({arguments})" for arguments in inputs]
        return "\n".join([task.metadata["program"], *lines])

    def _executor(self, purpose: str) -> Executor:
        if self.executor is None:
            raise RuntimeError(
                f"environment {self.name!r}: {purpose} runs untrusted code and needs an executor; "
                "set env.executor (e.g. to selfplay.sandbox.Sandbox().run)"
            )
        return self.executor


PROPOSE = """Propose a new {kind} task for programs: a short Python function f and one or more \
inputs for it. {what} Write it inside <task></task> in this form, the inputs as lines \
starting with >>> (literals only, standard library only, deterministic):
<task>
{example}
</task>"""
WHAT = {
    "deduction": "The Solver will be shown f and the first input and must predict the output.",
    "abduction": "The Solver will be shown f and the first input's output and must find an input.",
    "induction": "The Solver will be shown some input/output pairs and f's docstring and must "
    "write f; the last third of the inputs are held out to check it.",
}


class Abduction(Programs):
    """Programs, abduction: find an input for which f gives the shown output.

    ``programs`` with kind abduction, under a name of its own so one mix can hold all three.
    """

    name = "programs_abduction"

    def __init__(self, executor: Executor | None = None):
        super().__init__("abduction", executor)


class Induction(Programs):
    """Programs, induction: write f from input/output pairs (checked on held-out inputs too).

    ``programs`` with kind induction, under a name of its own so one mix can hold all three.
    """

    name = "programs_induction"

    def __init__(self, executor: Executor | None = None):
        super().__init__("induction", executor)


def level_of(program: str) -> int | None:
    """The easiest level whose node budget (``LEVELS``) ``program`` fits; None if none.
    Raises SyntaxError if it does not parse."""
    size = sum(1 for _ in ast.walk(ast.parse(program)))
    return next((level for level, most in LEVELS.items() if size <= most), None)


def held_out(count: int) -> int:
    """How many of ``count`` inputs an induction task holds out: the last third, at least one."""
    return max(1, count // 3)


# -- tasks ----------------------------------------------------------------------------


def _make_task(kind: str, program: str, inputs: list[str], outputs: list[str]) -> Task:
    """The ``kind`` task about ``program``, its ``inputs`` (argument lists) and their ``outputs``
    (reprs); the difficulty is left for ``Environment.task`` or ``from_proposal`` to set."""
    shown = f"Here is a Python function:\n\n```python\n{program}\n```\n\n"
    if kind == "deduction":
        prompt = (
            f"{shown}What does f({inputs[0]}) return? Answer with the value as a Python literal."
        )
        return make_task(
            prompt, outputs[0], kind=kind, program=program, inputs=inputs[:1], outputs=outputs[:1]
        )
    if kind == "abduction":
        prompt = (
            f"{shown}Find arguments for which f returns {outputs[0]}. "
            "Answer with them as they would appear inside f(...)."
        )
        return make_task(
            prompt, inputs[0], kind=kind, program=program, inputs=inputs[:1], outputs=outputs[:1]
        )
    split = len(inputs) - held_out(len(inputs))
    pairs = "".join(
        f"f({a}) == {o}\n" for a, o in zip(inputs[:split], outputs[:split], strict=True)
    )
    description = _description(program)
    hint = f"Its docstring reads: {description}\n" if description else ""
    prompt = (
        f"Write a Python function f such that:\n{pairs}{hint}It is also checked on inputs "
        "not shown. Answer with its definition, starting with def f."
    )
    return make_task(
        prompt,
        program,
        kind=kind,
        program=program,
        inputs=inputs[:split],
        outputs=outputs[:split],
        held_out_inputs=inputs[split:],
        held_out_outputs=outputs[split:],
    )


def _description(program: str) -> str:
    """The first line of ``f``'s docstring; empty if it has none."""
    function = _function_f(ast.parse(program))
    docstring = ast.get_docstring(function) if function is not None else None
    return docstring.strip().splitlines()[0] if docstring and docstring.strip() else ""


def _function_f(tree: ast.Module) -> ast.FunctionDef | None:
    """The last top-level ``def f`` (the one a call would reach), if any."""
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "f":
            found = node
    return found


def _is_call_of_f(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "f"


def _split_proposal(content: str) -> tuple[str, list[str]]:
    """The program and the canonical argument list of each ``>>> f(<args>)`` line after it."""
    lines = content.split("\n")  # not splitlines(): Python reads \f or \u2028 as no line end
    starts = [i for i, line in enumerate(lines) if line.startswith(INPUT_PROMPT)]
    if not starts:
        raise Rejected("unparsable", "no_input")
    calls = []
    for line in lines[starts[0] :]:
        if line.strip():
            if not line.startswith(INPUT_PROMPT):
                raise Rejected("unparsable", "text_after_input")
            calls.append(_arguments(line[len(INPUT_PROMPT) :].strip()))
    return "\n".join(lines[: starts[0]]).strip("\n").rstrip(), calls


def _arguments(text: str) -> str:
    """The arguments of the call ``text``, as ``ast.unparse`` writes them, so that spacing does
    not make two proposals differ; Rejected unless it is ``f(...)`` of literals."""
    try:
        call = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise Rejected("unparsable", "bad_input") from None
    if not _is_call_of_f(call):
        raise Rejected("unparsable", "bad_input")
    for value in [*call.args, *(k.value for k in call.keywords)]:
        try:
            ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            raise Rejected("invalid", "input_not_literal") from None
    return ast.unparse(call)[2:-1]


def _run(executor: Executor, program: str, arguments: str) -> str:
    """The repr of ``f(arguments)``; Rejected if the run fails or its output is unusable."""
    result = executor(program, f"f({arguments})")
    if result.violation:
        raise Rejected("unsafe", "sandbox_violation")
    if result.status in ("timeout", "killed"):
        raise Rejected("unsafe", result.status)
    if result.status != "ok" or result.value is None:
        raise Rejected("invalid", "raises")
    if len(result.value) > MAX_OUTPUT_CHARS:
        raise Rejected("invalid", "output_too_large")
    if _literal(result.value) is _NOT_LITERAL:
        raise Rejected("invalid", "output_not_literal")
    return result.value


# -- scoring --------------------------------------------------------------------------

_NOT_LITERAL = object()


def _literal(text: str) -> Any:
    """``ast.literal_eval(text)``, or ``_NOT_LITERAL`` where it is not a literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return _NOT_LITERAL


def _judge(answer: str, result: ExecutionResult, gold: str, wrong: str = "wrong") -> Verdict:
    """The verdict on a run of the Solver's ``answer`` that should have returned ``gold``;
    ``wrong`` is the reason when it returned something else."""
    if result.violation:
        return Verdict(0.0, "answer", answer, "unsafe")
    if result.status != "ok":
        return Verdict(0.0, "answer", answer, result.status)
    got = _literal(result.value or "")
    # A value that is not a literal (a function, an object) never equals the literal gold.
    right = got is not _NOT_LITERAL and got == _literal(gold)
    return Verdict(float(right), "answer", answer, "correct" if right else wrong)
