"""Judges: who decides what a completion scored.

A judge turns a batch of (task, completion) pairs into verdicts, in input order. GRPO samples
G completions per prompt, so a batch holds groups: the items sharing a ``task_id`` (usually
adjacent, but grouping never relies on order). The judges (``registered_judges`` adds those
of other packages):

- ``program``: the environment's own scorer, i.e. the ground truth. The default.
- ``majority``: no ground truth for answers. Each group votes; the most common answer is the
  pseudo-label (test-time RL, TTRL-style). Where ground truth does exist, the judge measures
  how often the vote agrees with it, so one can see what label-free training is optimising.
- ``model``: a language model's yes/no verdict against a rubric (``ModelJudge``; the model
  and its prompt live in ``selfplay.verifier``). Where ground truth exists its reliability is
  measured: agreement, false-positive and false-negative rates.

``stats()`` returns ``judge/...`` metrics gathered since its last call, then starts afresh.
``counts()`` returns the integers behind them instead, which add up over the parts of a batch
judged apart (``selfplay.actors.RayJudge`` does that), and ``summarise`` turns a sum into stats.
Standard library and ``envs`` only (``selfplay.judge_format``, the Judge's prompt, is too).
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol

from envs import Environment, Task, Verdict, parse_completion
from selfplay.errors import JudgeError
from selfplay.judge_format import judge_prompt, rubric_for


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


class VerdictCache:
    """Model verdicts by a hash of what the Judge read (rubric, task, candidate answer) and the
    judge model's version; the oldest entries go first beyond ``size``."""

    def __init__(self, size: int = 100_000):
        if size < 0:
            raise ValueError(f"verdict cache size must be 0 or more, got {size}")
        self.size = size
        self._entries: OrderedDict[str, float] = OrderedDict()

    @staticmethod
    def key(prompt: str, version: float | None) -> str:
        """The cache key of one judge prompt under one version of the judge's weights."""
        return hashlib.blake2b(f"{version!r}\0{prompt}".encode(), digest_size=16).hexdigest()

    def get(self, key: str) -> float | None:
        if key in self._entries:
            self._entries.move_to_end(key)
        return self._entries.get(key)

    def put(self, key: str, p_yes: float) -> None:
        if not self.size:
            return
        self._entries[key] = p_yes
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


WARN_EVERY = 50
"""Measured steps between two warnings that a model Judge's agreement is below its floor."""


class ModelJudge:
    """A language model's binary verdict on each answer, against a rubric.

    ``verify([(judge prompt, candidate answer)]) -> p(yes)`` is the model
    (``selfplay.verifier.Verifier``); it is asked about each answer to a specified task and says
    yes (score 1.0, reason
    "judge_yes") when p(yes) > 0.5, else no ("judge_no"). The rest needs no model: malformed
    output scores 0 ("malformed"), and an ``<ask>``, or an answer to an underspecified task, is
    scored by the environment as the program judge does, so the clarify behaviour is kept.

    Verdicts are cached (``VerdictCache``) by what the model read plus ``verify.version()``
    when it has one (the policy as its own judge changes with every step); a batch asks the
    model once per distinct prompt. Two judges may share one cache and one model.

    Reliability is measured, never assumed: on model-judged answers whose task carries ground
    truth, ``stats`` reports ``judge/agreement``, ``judge/false_positive_rate`` (yes to a
    wrong answer, over the wrong ones), ``judge/false_negative_rate`` (no to a right one, over
    the right ones), ``judge/reward`` and ``judge/truth`` (the mean Judge and ground-truth
    scores there: the two curves a reward-hacking watch compares), and ``judge/below_floor``
    (1.0 when agreement is under ``floor``). ``warn`` is called with a message the first time
    agreement is below the floor, then at most once every ``WARN_EVERY`` measured steps.
    """

    def __init__(
        self,
        envs: dict[str, Environment],
        verify: Callable[[list[tuple[str, str]]], list[float]],
        *,
        rubric: str = "",
        floor: float = 0.0,
        cache: VerdictCache | None = None,
        warn: Callable[[str], None] | None = None,
        measure: bool = True,
    ):
        self.envs = envs
        self.verify = verify
        self.rubric = rubric
        self.floor = floor
        self.cache = cache if cache is not None else VerdictCache()
        self.warn = warn
        self.measure = measure
        """Whether to score the ground truth for the reliability counts (a judge whose stats
        nobody reads, like the rewards' one beside the recorder's, need not)."""
        self._measured = self._below = 0  # steps with agreement measured, and below the floor
        self._warned: int | None = None  # self._measured at the last warning
        self._reset()

    def _reset(self) -> None:
        self._n = self._asked = self._hits = 0
        self._tp = self._fp = self._fn = self._tn = 0

    def __call__(self, tasks: list[Task], completions: list[str]) -> list[Verdict]:
        _check_batch(tasks, completions)
        verdicts: list[Verdict | None] = [None] * len(tasks)
        queued: dict[str, list[int]] = {}  # cache key -> indices waiting for the model
        prompts: dict[str, tuple[str, str]] = {}  # cache key -> (judge prompt, candidate)
        version = self.verify.version() if hasattr(self.verify, "version") else None
        for i, (task, completion) in enumerate(zip(tasks, completions, strict=True)):
            parsed = parse_completion(completion)
            if parsed.kind == "malformed":
                verdicts[i] = Verdict(0.0, "malformed", None, "malformed")
            elif parsed.kind == "ask" or not task.specified:
                env = _env(self.envs, task)
                verdicts[i] = _run(
                    task, lambda e=env, p=parsed, t=task: e.score_parsed(p, t), "model"
                )
            else:
                rubric = rubric_for(_env(self.envs, task), self.rubric)
                asked = (judge_prompt(rubric, task.prompt), parsed.answer or "")
                key = VerdictCache.key("\0".join(asked), version)
                queued.setdefault(key, []).append(i)
                prompts[key] = asked
        known = {k: p for k in queued if (p := self.cache.get(k)) is not None}
        fresh = [k for k in queued if k not in known]
        self._hits += sum(len(queued[k]) for k in known)
        if fresh:
            answers = list(self.verify([prompts[k] for k in fresh]))
            if len(answers) != len(fresh):
                raise JudgeError(f"judge model: {len(answers)} verdicts for {len(fresh)} prompts")
            for key, p_yes in zip(fresh, answers, strict=True):
                if not 0.0 <= p_yes <= 1.0:
                    raise JudgeError(
                        f"judge model: p(yes) {p_yes!r} is not a probability, for task "
                        f"{tasks[queued[key][0]].task_id}"
                    )
                known[key] = p_yes
                self.cache.put(key, p_yes)
            self._asked += len(fresh)
        for key, indices in queued.items():
            yes = known[key] > 0.5
            answer = prompts[key][1]
            for i in indices:
                verdicts[i] = Verdict(float(yes), "answer", answer, _MODEL[yes])
                if self.measure and tasks[i].answer is not None:
                    self._count(tasks[i], completions[i], yes)
        self._n += len(tasks)
        return verdicts  # type: ignore[return-value]

    def _count(self, task: Task, completion: str, yes: bool) -> None:
        right = program_verdict(self.envs, task, completion).score == 1.0
        self._tp += yes and right
        self._fp += yes and not right
        self._fn += right and not yes
        self._tn += not (yes or right)

    def stats(self) -> dict[str, float]:
        """Completions judged, model calls, cache hits and (with ground truth) reliability."""
        return self.stats_from(self.counts())

    def stats_from(self, counts: dict[str, int]) -> dict[str, float]:
        """``stats`` of ``counts`` (of this judge, or summed over several processes' judges),
        with the agreement floor checked and warned about."""
        out = self.summarise(counts)
        agreement = out.get("judge/agreement")
        if agreement is not None and self.floor:
            below = agreement < self.floor
            out["judge/below_floor"] = float(below)
            self._measured += 1
            self._below += below
            due = self._warned is None or self._measured - self._warned >= WARN_EVERY
            if below and due and self.warn is not None:
                rates = ", ".join(
                    f"{name.split('/')[1].replace('_', ' ')} {out[name]:.1%}"
                    for name in ("judge/false_positive_rate", "judge/false_negative_rate")
                    if name in out
                )
                self.warn(
                    f"judge: agreement with ground truth {agreement:.1%} is below the floor "
                    f"{self.floor:.0%} ({rates}; below on {self._below} of {self._measured} "
                    "steps so far): the Judge's reward is this unreliable"
                )
                self._warned = self._measured
        return out

    def counts(self) -> dict[str, int]:
        """The counters behind ``stats`` since the last call to either; resets them."""
        out = {
            "n": self._n,
            "asked": self._asked,
            "cache_hits": self._hits,
            "tp": self._tp,
            "fp": self._fp,
            "fn": self._fn,
            "tn": self._tn,
        }
        self._reset()
        return out

    @staticmethod
    def summarise(counts: dict[str, int]) -> dict[str, float]:
        """``stats`` from ``counts`` (without the floor check)."""
        out = {
            "judge/n": float(counts["n"]),
            "judge/model_calls": float(counts["asked"]),
            "judge/cache_hits": float(counts["cache_hits"]),
        }
        out.update(reliability(counts["tp"], counts["fp"], counts["fn"], counts["tn"]))
        return out


def reliability(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """A binary judge against ground truth: agreement, false-positive and false-negative rates,
    and the mean Judge and ground-truth scores; only the rates that have a denominator."""
    total = tp + fp + fn + tn
    if not total:
        return {}
    out = {
        "judge/agreement": (tp + tn) / total,
        "judge/reward": (tp + fp) / total,
        "judge/truth": (tp + fn) / total,
    }
    if fp + tn:
        out["judge/false_positive_rate"] = fp / (fp + tn)
    if fn + tp:
        out["judge/false_negative_rate"] = fn / (fn + tp)
    return out


ENTRY_POINT_GROUP = "selfplay.judges"

JUDGES: dict[str, type] = {"program": ProgramJudge, "majority": MajorityJudge}
"""The built-in judges made from the environments alone; "model" also needs a model (it is
built by ``selfplay.scoring.build_judge``, with ``selfplay.verifier.model_judge``)."""
MODEL = "model"


def registered_judges() -> dict[str, type]:
    """Built-in judges plus those registered through the ``selfplay.judges`` entry points.

    A third-party package registers a judge class in its ``pyproject.toml``::

        [project.entry-points."selfplay.judges"]
        lenient = "my_package.judges:Lenient"

    The class is made with the run's environments, ``Lenient(envs)``, and follows the
    ``Judge`` protocol (``__call__`` and ``stats``; ``counts`` and ``summarise`` as well if it
    is to run in judge actors). ``tests/test_judge_contract.py`` checks every registered one.
    """
    found = dict(JUDGES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found or ep.name == MODEL:
            raise ValueError(
                f"judge {ep.name!r} is registered twice (entry point {ep.value!r} clashes "
                "with another judge of that name)"
            )
        cls = ep.load()
        if not (isinstance(cls, type) and callable(cls) and hasattr(cls, "stats")):
            raise TypeError(
                f"entry point {ep.name!r} = {ep.value!r} is not a judge class "
                "(made with the environments, with __call__ and stats)"
            )
        found[ep.name] = cls
    return found


def judge_names() -> tuple[str, ...]:
    """Every name ``judge:`` accepts: the registered judges and "model"."""
    return (*registered_judges(), MODEL)


def make_judge(name: str, envs: dict[str, Environment]) -> Judge:
    """The registered judge a config names (not "model", which needs its model)."""
    if name == MODEL:
        raise ValueError("the model judge needs its model: build it with selfplay.verifier")
    judges = registered_judges()
    if name not in judges:
        raise ValueError(f"unknown judge {name!r}; choose one of: {', '.join(judge_names())}")
    return judges[name](envs)


def program_verdict(envs: dict[str, Environment], task: Task, completion: str) -> Verdict:
    """The environment's verdict; a scorer's exception is re-raised as a JudgeError."""
    env = _env(envs, task)
    return _run(task, lambda: env.score(completion, task), "program")


_MAJORITY = {True: "majority", False: "minority"}
_MODEL = {True: "judge_yes", False: "judge_no"}


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
