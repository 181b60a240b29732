"""Task, Verdict and the Environment base class every verifiable environment extends.

An environment is a small pure class: it builds a task from a random generator and a
difficulty level, and scores a completion against it. Nothing here imports torch.
``task_from_proposal`` turns a Challenger's proposal (``envs.proposals``) into a verified task.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from envs.format import Parsed, parse_completion
from envs.proposals import challenger_prompt, parse_proposal


@dataclass(frozen=True)
class Task:
    """One verifiable task. Rebuilt exactly from ``(env, seed, index, difficulty)``."""

    task_id: str
    env: str
    difficulty: int
    prompt: str
    answer: str | None
    """Ground-truth final answer; None where no answer is right (an underspecified task)."""
    specified: bool = True
    """False when the task lacks a needed quantity on purpose: the right move is to ask."""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """A scorer's judgement of one completion."""

    score: float
    """In [0, 1]."""
    kind: str
    """What the completion did: "answer", "ask" or "malformed"."""
    parsed: str | None
    """The parsed final answer or question; None when malformed."""
    reason: str
    """Short machine-readable why: "correct", "wrong", "asked_when_specified", ..."""


class Environment:
    """Base class for verifiable environments.

    Subclasses set ``name`` and ``levels`` and implement ``generate`` and ``check``.
    ``solution`` (worked steps) feeds the organism's pretraining corpus; ``respond``
    answers a clarifying question in environments that support dialogue, and ``resolve``
    says what the task has become once that answer is known. For self-play,
    ``from_proposal`` turns a Challenger's proposal into a task (raising
    ``envs.proposals.Rejected`` when it is not a valid one), and ``proposal`` writes the
    proposal that describes a generated task, to teach the Challenger's role in the corpus.
    """

    name: ClassVar[str] = ""
    levels: ClassVar[tuple[int, ...]] = (1,)
    """Difficulty levels this environment supports, easiest first."""

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        """Build one task; ``task_id`` is filled in by ``task``."""
        raise NotImplementedError

    def check(self, answer: str, task: Task) -> Verdict:
        """Score a final answer string (the content of the last ``<answer>`` tag)."""
        raise NotImplementedError

    def check_question(self, question: str, task: Task) -> Verdict:
        """Score an ``<ask>``. By default asking is never right: every task is specified."""
        return Verdict(0.0, "ask", question, "asked_when_specified")

    def solution(self, task: Task) -> list[str]:
        """Worked steps towards the answer, one string each (used to build the organism corpus)."""
        return []

    def target(self, task: Task) -> str:
        """The ideal final tag: what a perfect completion ends with."""
        if task.answer is None:
            raise ValueError(f"{self.name}: task {task.task_id} has no answer and no target")
        return f"<answer>{task.answer}</answer>"

    def respond(self, task: Task, question: str) -> str:
        """Answer a clarifying question about ``task`` (dialogue environments only)."""
        raise NotImplementedError(f"environment {self.name!r} does not answer questions")

    def resolve(self, task: Task, reply: str) -> Task:
        """The task as the model faces it once ``respond`` has said ``reply``: by default unchanged.

        A dialogue environment returns a specified task, answer known, when the reply gave the
        quantity the task lacked; its ``task_id`` differs, since its content does.
        """
        return task

    def from_proposal(self, content: str) -> Task:
        """The task that a proposal's content describes, its ground truth computed here.

        Built with ``make_task`` (``task_from_proposal`` fills id and env), with
        ``difficulty`` set to the easiest level the task falls in. Raises
        ``envs.proposals.Rejected`` when the content is not a valid task.
        """
        raise NotImplementedError(f"environment {self.name!r} does not take proposals")

    def proposal(self, task: Task) -> str:
        """The proposal content that describes ``task``: ``from_proposal`` reads it back."""
        raise NotImplementedError(f"environment {self.name!r} does not write proposals")

    def challenger_prompt(self) -> str:
        """What a Challenger is asked to propose a task of this environment with; by default
        ``envs.proposals.challenger_prompt`` (the organism's corpus teaches that one)."""
        return challenger_prompt(self.name)

    # -- provided -------------------------------------------------------------------

    def task(self, seed: int, index: int, difficulty: int) -> Task:
        """The task at ``index`` for ``seed`` and ``difficulty``; any index is rebuilt alone."""
        if difficulty not in self.levels:
            raise ValueError(
                f"environment {self.name!r}: difficulty {difficulty} not in levels {list(self.levels)}"
            )
        task_id = f"{self.name}/{seed}/{difficulty}/{index}"
        # A string seed is hashed with SHA-512 by `random`, so it is stable across processes.
        rng = random.Random(task_id)
        made = self.generate(rng, difficulty)
        return Task(
            task_id=task_id,
            env=self.name,
            difficulty=difficulty,
            prompt=made.prompt,
            answer=made.answer,
            specified=made.specified,
            metadata=made.metadata,
        )

    def score(self, completion: str, task: Task) -> Verdict:
        """Parse a whole completion and score it. Malformed output scores 0 and says why."""
        parsed = parse_completion(completion)
        return self.score_parsed(parsed, task)

    def score_parsed(self, parsed: Parsed, task: Task) -> Verdict:
        """Score an already-parsed completion."""
        if parsed.kind == "malformed":
            return Verdict(0.0, "malformed", None, parsed.error or "malformed")
        if parsed.kind == "ask":
            verdict = self.check_question(parsed.question or "", task)
        elif not task.specified:
            verdict = Verdict(0.0, "answer", parsed.answer, "answered_underspecified")
        else:
            verdict = self.check(parsed.answer or "", task)
        if not 0.0 <= verdict.score <= 1.0:
            raise ValueError(
                f"environment {self.name!r}, task {task.task_id}: score {verdict.score} outside [0, 1]"
            )
        return verdict


def make_task(prompt: str, answer: str | None, *, specified: bool = True, **metadata: Any) -> Task:
    """Convenience for ``generate``: a Task whose id, env and difficulty ``Environment.task`` fills."""
    return Task("", "", 0, prompt, answer, specified, metadata)


def task_to_json(task: Task) -> str:
    """A Task as a JSON string (a dataset column that travels with each prompt)."""
    return json.dumps(dataclasses.asdict(task), sort_keys=True)


def task_from_json(text: str) -> Task:
    """The Task that ``task_to_json`` wrote."""
    return Task(**json.loads(text))


def task_from_proposal(env: Environment, completion: str) -> Task:
    """The verified task a Challenger's completion proposes; ``Rejected`` if there is none.

    The id is ``<env>/proposed/<difficulty>/<hash of the prompt>``: the same task proposed
    twice, in whatever words, has the same id, so the caller can spot duplicates by it.
    """
    content = parse_proposal(completion)
    made = env.from_proposal(content)
    if made.difficulty not in env.levels:
        raise ValueError(
            f"environment {env.name!r}: from_proposal gave difficulty {made.difficulty}, "
            f"not in levels {list(env.levels)}"
        )
    digest = hashlib.sha256(made.prompt.encode()).hexdigest()[:12]
    return dataclasses.replace(
        made,
        task_id=f"{env.name}/proposed/{made.difficulty}/{digest}",
        env=env.name,
        metadata={**made.metadata, "proposal": content},
    )
