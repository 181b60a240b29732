"""One generation batch as the reward components read it: parsed once, judged once per view.

TRL calls each reward function with the same batch. ``ScoredBatch.parse`` decodes the
``task`` column, the dialogues and the completion texts once; ``verdicts`` asks the judge once
per *view* (which task each text is judged against) and keeps the answer, so components that
share a view share its verdicts. ``selfplay.scoring.Scorer`` builds one per batch and hands it
to every component (the ``scored`` column) and to the recorder; a component called on its own,
in a plain TRL script, builds its own.

Views: without dialogues every component judges ``(task, completion)``. In a dialogue
(``envs.dialogue``) a component reads the model's turns: "first" (the first turn against the
task as posed), "final" (the last turn against the task as the replies left it) or "each"
(every turn against the task as posed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envs import Task, Verdict, task_from_json
from envs.dialogue import Dialogue, dialogues
from envs.errors import SelfplayError

if TYPE_CHECKING:  # rewards needs only the protocol's shape, not the selfplay package
    from selfplay.judges import Judge

VIEWS = ("first", "final", "each")
"""Which model turns of a dialogue a component judges (see the module docstring)."""


class RewardError(SelfplayError, RuntimeError):
    """A reward component failed: a bug to fix, never a zero reward."""


@dataclass
class ScoredBatch:
    """A batch of completions with their tasks, parsed once; verdicts kept per view."""

    tasks: list[Task]
    """Each completion's task as posed."""
    texts: list[str]
    """Each completion's text (a conversation's last message; a dialogue's model turns joined)."""
    talks: list[Dialogue] | None = None
    """Each completion's dialogue, or None outside dialogue rollouts."""
    rewards: dict[str, list[float | None]] = field(default_factory=dict)
    """Component name -> its value per completion, filled by whoever scores the batch."""
    judged_views: dict[str, list[Verdict]] = field(default_factory=dict)
    """View -> the judge's verdicts of its flattened (task, text) pairs (see ``views``)."""
    # What ``selfplay.scoring.Scorer`` adds for the recorder:
    judge_stats: dict[str, float] = field(default_factory=dict)
    """The judge's ``judge/*`` statistics of this batch (each completion counted once)."""
    judge_counts: dict[str, int] | None = None
    """Or its raw counts, where slices of one batch are scored in several processes."""
    tags: list[dict[str, Any]] = field(default_factory=list)
    """Each completion's behaviour tags."""
    truths: list[float] | None = None
    """Each completion's ground-truth score beside a judge that is not the ground truth."""

    @classmethod
    def parse(cls, name: str, completions: list, columns: dict[str, Any]) -> ScoredBatch:
        """The batch TRL passed to the reward function ``name``: a RewardError naming it, the
        environment and the task for a column or completion that cannot be read."""
        tasks = _tasks(name, columns, len(completions))
        try:
            talks = dialogues(columns, tasks)
        except ValueError as err:
            raise RewardError(f"reward {name}: {err}") from err
        if talks is not None:
            return cls(tasks, ["\n".join(d.model_texts) for d in talks], talks)
        texts = []
        for task, completion in zip(tasks, completions, strict=True):
            with blame(name, task):
                texts.append(completion_text(completion))
        return cls(tasks, texts)

    @property
    def judged(self) -> list[Task]:
        """The task each completion's verdict is against (a dialogue: as the replies left it)."""
        return self.tasks if self.talks is None else [d.final_task for d in self.talks]

    def views(self, turns: str) -> list[list[tuple[Task, str]]]:
        """Per completion, the (task, text) pairs a component reading ``turns`` judges."""
        if self.talks is None:
            return [[(task, text)] for task, text in zip(self.tasks, self.texts, strict=True)]
        if turns not in VIEWS:
            raise ValueError(f"turns must be one of {VIEWS}, got {turns!r}")
        out = []
        for talk in self.talks:
            texts = talk.model_texts
            if turns == "first":
                out.append([(talk.task, texts[0])])
            elif turns == "final":
                out.append([(talk.final_task, texts[-1])])
            else:
                out.append([(talk.task, text) for text in texts])
        return out

    def verdicts(self, name: str, judge: Judge, turns: str = "final") -> list[Verdict]:
        """The judge's verdicts of the flattened ``views(turns)``, asked once per view and kept
        (``name``: the component asking, for errors)."""
        key = "each" if self.talks is None else turns
        if key not in self.judged_views:
            flat = [pair for pairs in self.views(turns) for pair in pairs]
            self.judged_views[key] = _judged(
                name, judge, [t for t, _ in flat], [x for _, x in flat]
            )
        return self.judged_views[key]

    @classmethod
    def concat(cls, parts: list[ScoredBatch]) -> ScoredBatch:
        """Slices of one batch (from several training processes) as one, in order."""
        talks = None if parts[0].talks is None else [d for p in parts for d in p.talks or []]
        whole = cls([t for p in parts for t in p.tasks], [x for p in parts for x in p.texts], talks)
        whole.rewards = {n: [v for p in parts for v in p.rewards[n]] for n in parts[0].rewards}
        whole.judged_views = {
            k: [v for p in parts for v in p.judged_views[k]]
            for k in parts[0].judged_views
            if all(k in p.judged_views for p in parts)
        }
        whole.tags = [t for p in parts for t in p.tags]
        if all(p.truths is not None for p in parts):
            whole.truths = [t for p in parts for t in p.truths or []]
        if all(p.judge_counts is not None for p in parts):
            whole.judge_counts = {
                k: sum((p.judge_counts or {})[k] for p in parts)
                for k in parts[0].judge_counts or {}
            }
        whole.judge_stats = parts[0].judge_stats
        return whole


class SharedBatch:
    """The components of one ``build_rewards`` call share the batch TRL passes them in turn:
    parsed once, each view judged once. A batch is the same as the last when its completions
    and its ``task`` column are equal to the last one's (TRL passes the same lists to each)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._batch: ScoredBatch | None = None

    def __call__(self, name: str, completions: list, columns: dict[str, Any]) -> ScoredBatch:
        if columns.get("scored") is not None:
            return columns["scored"]
        key = (list(completions), list(columns.get("task") or ()), columns.get("turns"))
        if self._batch is None or key != self._key:
            self._batch = ScoredBatch.parse(name, completions, columns)
            self._key = key
        return self._batch


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """The text of a completion: the string itself, or the last message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content")
        if isinstance(content, str):
            return content
    raise TypeError(
        f"a completion must be a string or a list of messages ending in string content, "
        f"got {completion!r:.200}"
    )


@contextmanager
def blame(name: str, task: Task) -> Iterator[None]:
    """Re-raise any error inside the block as a RewardError naming component, env and task."""
    try:
        yield
    except RewardError:
        raise
    except Exception as err:
        raise RewardError(
            f"reward {name}: environment {task.env!r}, task {task.task_id}: {err}"
        ) from err


def _tasks(name: str, columns: dict[str, Any], n: int) -> list[Task]:
    """Decode the ``task`` column, checking it against ``task_id`` where that is present too."""
    if "task" not in columns:
        raise RewardError(
            f"reward {name}: no 'task' column among {sorted(columns)}; "
            f"the dataset must carry each Task as JSON"
        )
    if len(columns["task"]) != n:
        raise RewardError(f"reward {name}: {len(columns['task'])} tasks for {n} completions")
    ids, tasks = columns.get("task_id"), []
    for i, text in enumerate(columns["task"]):
        try:
            task = task_from_json(text)
        except Exception as err:
            said = f" (task_id column: {ids[i]!r})" if ids is not None else ""
            raise RewardError(
                f"reward {name}: item {i}{said}: cannot decode its task: {err}"
            ) from err
        if ids is not None and ids[i] != task.task_id:
            raise RewardError(
                f"reward {name}: environment {task.env!r}, task {task.task_id}: "
                f"the task_id column says {ids[i]!r}"
            )
        tasks.append(task)
    return tasks


def _judged(name: str, judge: Judge, tasks: list[Task], texts: list[str]) -> list[Verdict]:
    try:
        verdicts = judge(tasks, texts)
    except Exception as err:
        # A JudgeError already names the environment and task; say which batch otherwise.
        envs = sorted({t.env for t in tasks})
        raise RewardError(
            f"reward {name}: judge failed on {len(tasks)} completions "
            f"(environments {envs}, tasks {tasks[0].task_id}..{tasks[-1].task_id}): {err}"
        ) from err
    if len(verdicts) != len(tasks):
        raise RewardError(f"reward {name}: judge gave {len(verdicts)} verdicts for {len(tasks)}")
    for task, verdict in zip(tasks, verdicts, strict=True):
        with blame(name, task):
            if not 0.0 <= verdict.score <= 1.0:  # also rejects NaN
                raise ValueError(f"judge score {verdict.score} outside [0, 1] (verdict {verdict})")
    return list(verdicts)
