"""Judges: who decides what a completion scored.

A judge turns a batch of (task, completion) pairs into verdicts, in input order. GRPO samples
G completions per prompt, so a batch holds groups: the items sharing a ``task_id`` (usually
adjacent, but grouping never relies on order). Two judges:

- ``program``: the environment's own scorer, i.e. the ground truth. The default.
- ``majority``: no ground truth for answers. Each group votes; the most common answer is the
  pseudo-label (test-time RL, TTRL-style). Where ground truth does exist, the judge measures
  how often the vote agrees with it, so one can see what label-free training is optimising.

``stats()`` returns ``judge/...`` metrics gathered since its last call, then starts afresh.
``counts()`` returns the integers behind them instead, which add up over the parts of a batch
judged apart (``selfplay.actors.RayJudge`` does that), and ``summarise`` turns a sum into stats.
Standard library and ``envs`` only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from envs import Environment, Task, Verdict, parse_completion


class JudgeError(RuntimeError):
    """A scorer failed inside a judge: a bug to fix, never a zero reward."""


class Judge(Protocol):
    """Verdicts for completions of tasks, plus metrics about the judging itself."""

    def __call__(self, tasks: list[Task], completions: list[str]) -> list[Verdict]:
        """One verdict per completion, in input order."""
        ...

    def stats(self) -> dict[str, float]:
        """``judge/...`` metrics since the last call to ``stats``; resets them."""
        ...


class ProgramJudge:
    """The environment's scorer: ``envs[task.env].score(completion, task)``."""

    def __init__(self, envs: dict[str, Environment]):
        self.envs = envs
        self._n = 0

    def __call__(self, tasks: list[Task], completions: list[str]) -> list[Verdict]:
        _check_batch(tasks, completions)
        verdicts = [
            program_verdict(self.envs, t, c) for t, c in zip(tasks, completions, strict=True)
        ]
        self._n += len(verdicts)
        return verdicts

    def stats(self) -> dict[str, float]:
        """``judge/n``: completions judged since the last call."""
        return self.summarise(self.counts())

    def counts(self) -> dict[str, int]:
        """The counters behind ``stats`` since the last call to either; resets them. Counts
        of a batch judged in parts add up to those of the whole batch."""
        out = {"n": self._n}
        self._n = 0
        return out

    @staticmethod
    def summarise(counts: dict[str, int]) -> dict[str, float]:
        """``stats`` from ``counts``, or from the sum of several judges' counts."""
        return {"judge/n": float(counts["n"])}


class MajorityJudge:
    """Label-free judging by majority vote within each group of a task's completions.

    Per group, every completion that gives an answer votes with its normalised answer (outer
    whitespace stripped, inner runs collapsed to one space). The most common one is the
    pseudo-label; a tie goes to the answer that appears first in the group. An answer equal to
    the label scores 1 ("majority"), any other 0 ("minority"). Malformed output scores 0
    ("malformed"); in a group with no answer at all, nothing can be voted on and every
    non-ask completion scores 0 with reason "no_majority".

    Two exceptions keep the clarify behaviour intact. An ``<ask>`` is scored by the
    environment's ``check_question`` (voting on questions means nothing), and on an
    underspecified task no vote is held: an answer scores 0 ("answered_underspecified"),
    exactly as the program scorer does.

    Majority voting is only as good as the model's agreement with itself. Where many different
    answers are right (countdown accepts any valid expression) correct completions split their
    votes, so the label is often a wrong answer that happens to repeat: a weak signal there.

    Where a task carries ground truth, the judge also scores with the program and reports
    ``judge/agreement`` (share of those completions whose majority and program scores match)
    and ``judge/label_accuracy`` (share of voted groups whose label the program scores 1.0).
    Neither is reported when no batch since the last ``stats`` had ground truth.
    ``judge/groups`` counts the groups voted on (specified tasks only).

    A vote sees only the batch it is given: if data-parallel training splits a group across
    processes, each process votes on its share.
    """

    def __init__(self, envs: dict[str, Environment]):
        self.envs = envs
        self._reset()

    def _reset(self) -> None:
        self._n = self._groups = self._no_majority = 0
        self._compared = self._agreed = 0
        self._labelled = self._labels_right = 0

    def __call__(self, tasks: list[Task], completions: list[str]) -> list[Verdict]:
        _check_batch(tasks, completions)
        by_index: dict[int, Verdict] = {}
        for indices in _groups(tasks).values():
            group = self._judge_group(tasks[indices[0]], [completions[i] for i in indices])
            by_index.update(zip(indices, group, strict=True))
        self._n += len(tasks)
        return [by_index[i] for i in range(len(tasks))]

    def _judge_group(self, task: Task, completions: list[str]) -> list[Verdict]:
        env = _env(self.envs, task)
        parsed = [parse_completion(c) for c in completions]
        answers = [_normalise(p.answer or "") for p in parsed if p.kind == "answer"]
        label = _vote(answers) if task.specified else None
        verdicts = []
        for p in parsed:
            if p.kind == "ask" or (p.kind == "answer" and not task.specified):
                # check_question for an ask; "answered_underspecified" for an answer.
                verdicts.append(_run(task, lambda p=p: env.score_parsed(p, task), "majority"))
            elif task.specified and label is None:
                verdicts.append(Verdict(0.0, p.kind, p.answer, "no_majority"))
            elif p.kind == "malformed":
                verdicts.append(Verdict(0.0, "malformed", None, "malformed"))
            else:
                hit = _normalise(p.answer or "") == label
                verdicts.append(Verdict(float(hit), "answer", p.answer, _MAJORITY[hit]))
        if task.specified:
            self._groups += 1
            self._no_majority += label is None
        if task.specified and task.answer is not None:
            self._compare(task, completions, verdicts, label)
        return verdicts

    def _compare(
        self,
        task: Task,
        completions: list[str],
        verdicts: list[Verdict],
        label: str | None,
    ) -> None:
        """Measure the vote against the ground truth the task happens to carry."""
        for completion, verdict in zip(completions, verdicts, strict=True):
            truth = program_verdict(self.envs, task, completion)
            self._compared += 1
            self._agreed += truth.score == verdict.score
        if label is not None:
            check = program_verdict(self.envs, task, f"<answer>{label}</answer>")
            self._labelled += 1
            self._labels_right += check.score == 1.0

    def stats(self) -> dict[str, float]:
        """Completions, groups voted on, groups with no answer, and (with ground truth) accuracy."""
        return self.summarise(self.counts())

    def counts(self) -> dict[str, int]:
        """The counters behind ``stats`` since the last call to either; resets them. Counts
        of a batch judged in parts add up to those of the whole batch when no group is split."""
        out = {
            "n": self._n,
            "groups": self._groups,
            "no_majority": self._no_majority,
            "compared": self._compared,
            "agreed": self._agreed,
            "labelled": self._labelled,
            "labels_right": self._labels_right,
        }
        self._reset()
        return out

    @staticmethod
    def summarise(counts: dict[str, int]) -> dict[str, float]:
        """``stats`` from ``counts``, or from the sum of several judges' counts."""
        out = {
            "judge/n": float(counts["n"]),
            "judge/groups": float(counts["groups"]),
            "judge/no_majority_groups": float(counts["no_majority"]),
        }
        if counts["compared"]:
            out["judge/agreement"] = counts["agreed"] / counts["compared"]
        if counts["labelled"]:
            out["judge/label_accuracy"] = counts["labels_right"] / counts["labelled"]
        return out


JUDGES = {"program": ProgramJudge, "majority": MajorityJudge}


def make_judge(name: str, envs: dict[str, Environment]) -> Judge:
    """The judge a config names: "program" or "majority"."""
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; choose one of: {', '.join(JUDGES)}")
    return JUDGES[name](envs)


def program_verdict(envs: dict[str, Environment], task: Task, completion: str) -> Verdict:
    """The environment's verdict; a scorer's exception is re-raised as a JudgeError."""
    env = _env(envs, task)
    return _run(task, lambda: env.score(completion, task), "program")


_MAJORITY = {True: "majority", False: "minority"}


def _run(task: Task, scorer: Callable[[], Verdict], judge: str) -> Verdict:
    try:
        return scorer()
    except Exception as err:
        raise JudgeError(
            f"judge {judge}: environment {task.env!r}, task {task.task_id}: {err}"
        ) from err


def _env(envs: dict[str, Environment], task: Task) -> Environment:
    if task.env not in envs:
        raise KeyError(
            f"judge: task {task.task_id} names environment {task.env!r}, "
            f"which is not loaded (loaded: {', '.join(sorted(envs))})"
        )
    return envs[task.env]


def _check_batch(tasks: list[Task], completions: list[str]) -> None:
    if len(tasks) != len(completions):
        raise ValueError(f"judge: {len(tasks)} tasks but {len(completions)} completions")


def _groups(tasks: list[Task]) -> dict[str, list[int]]:
    """Indices of each task_id's items, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, task in enumerate(tasks):
        first = groups.setdefault(task.task_id, [i])[0]
        if i != first:
            if tasks[first] != task:
                raise ValueError(f"judge: two different tasks share the id {task.task_id}")
            groups[task.task_id].append(i)
    return groups


def _normalise(answer: str) -> str:
    return " ".join(answer.split())


def _vote(answers: list[str]) -> str | None:
    """The most common answer; on a tie, the one seen first. None when nobody answered."""
    if not answers:
        return None
    counts = Counter(answers)
    # max keeps the first maximal key, and a Counter iterates in first-seen order.
    return max(counts, key=counts.__getitem__)
