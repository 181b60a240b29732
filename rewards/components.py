"""Reward components in TRL's reward-function signature.

Each component is ``f(prompts, completions, **columns) -> list[float | None]`` with
``__name__`` set to its name, so TRL logs it as ``rewards/<name>/mean``. ``completions`` are
strings or conversations (lists of ``{"role", "content"}`` messages; the last one counts).
TRL passes every dataset column by name; ours are ``task`` (the Task as JSON), ``task_id``,
``env``, ``difficulty`` and ``specified``. Anything else TRL adds (``completion_ids``,
``trainer_state``, ``log_extra``, ``log_metric``) is ignored.

In dialogue mode (``selfplay.dialogue``) TRL also passes ``turns`` (each completion's turns
as JSON) and ``final_task`` (the Task after the environment's replies); see ``envs.dialogue``.
Each component then reads the model's turns rather than the decoded completion, which also
holds the environment's replies: ``correct`` judges the last turn against ``final_task``,
``clarify`` the first turn against the task as posed, ``format`` and ``length`` every model
turn (the worst one counts), ``calibration`` the last turn like ``correct``. Without
``turns`` nothing changes.

``None`` means "not applicable", never "it failed": any error inside a component raises
``RewardError`` naming the component, environment and task id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from envs import Task, Verdict, parse_completion
from envs.format import ANSWER_OPEN, ASK_OPEN, THINK_CLOSE, THINK_OPEN
from rewards.batch import ScoredBatch, blame

if TYPE_CHECKING:  # rewards needs only the protocol's shape, not the selfplay package
    from selfplay.judges import Judge

Reward = Callable[..., list[float | None]]
"""TRL's reward function: ``(prompts, completions, **columns) -> list[float | None]``."""


def correct(judge: Judge) -> Reward:
    """The judge's score on specified tasks; None on underspecified ones (``clarify`` covers them).

    In a dialogue: the final turn's score against the task as the model faced it after the
    replies; 0.0 unless that turn answers, and 0.0 for an answer to a task still underspecified.
    """

    def item(task: Task, text: str, verdict: Verdict) -> float | None:
        return float(verdict.score) if task.specified else None

    def final(task: Task, text: str, verdict: Verdict) -> float:
        return float(verdict.score) if verdict.kind == "answer" else 0.0

    return _component("correct", item, judge, turns="final", dialogue_item=final)


def calibration(judge: Judge) -> Reward:
    """The negative Brier score of the confidence stated after the answer: -(p - y)**2.

    p is the ``<confidence>p</confidence>`` after the final answer (``envs.format``) and
    y is 1.0 when the judge's score is 1.0, else 0.0: p is the probability that the answer
    is fully right, which is what the report's accuracy, pass@k and calibration error count
    (partial credit counts as wrong). Both ends are in [0, 1], so the reward is in [-1, 0];
    its expectation is highest when p is the true chance of being right (a proper score).
    An answer without a readable confidence, and a malformed completion, get -1.0, the
    worst Brier score, so that stating one always pays. None (not applicable) for an
    ``<ask>`` and on underspecified tasks (``clarify`` covers them).

    In a dialogue: the final turn against the task as the replies left it, like ``correct``
    (an answer to a task still underspecified is wrong: y = 0); None when it is an ask.
    """

    def item(task: Task, text: str, verdict: Verdict) -> float | None:
        return _brier(text, verdict) if task.specified else None

    def final(task: Task, text: str, verdict: Verdict) -> float | None:
        return _brier(text, verdict)

    return _component("calibration", item, judge, turns="final", dialogue_item=final)


def _brier(text: str, verdict: Verdict) -> float | None:
    """-(p - y)**2 for an answer, -1.0 without a readable p or an answer, None for an ask."""
    if verdict.kind == "ask":
        return None
    parsed = parse_completion(text)
    if verdict.kind == "answer" and parsed.kind != "answer":
        raise ValueError(
            f"the judge saw an answer where the completion parses as {parsed.kind!r}: {text!r:.120}"
        )
    if verdict.kind != "answer" or parsed.confidence is None:
        return -1.0
    truth = 1.0 if verdict.score == 1.0 else 0.0
    return 0.0 - (parsed.confidence - truth) ** 2  # 0.0, not -0.0, for a perfect p


def format_() -> Reward:
    """1.0 for a clean ending: the final tag last, any ``<think>`` closed before it; else 0.0.

    In a dialogue every model turn must end cleanly."""

    def item(task: Task, text: str, verdict: None) -> float:
        return float(_well_formed(text))

    return _component("format", item)


def clarify(judge: Judge) -> Reward:
    """Ask exactly when needed: the judge's score for an ask on an underspecified task, 0.0 for
    anything else there; on a specified task 0.0 for asking and 1.0 otherwise.

    In a dialogue the first model turn is judged, against the task as posed: the model asked
    at all exactly when that turn is an ask, and its first question is the one that counts.
    """

    def item(task: Task, text: str, verdict: Verdict) -> float:
        if task.specified:
            return 0.0 if verdict.kind == "ask" else 1.0
        return float(verdict.score) if verdict.kind == "ask" else 0.0

    return _component("clarify", item, judge, turns="first")


def length(limit: int) -> Reward:
    """Optional shaping: 0.0 for reasoning of at most ``limit`` characters, down to -1.0 at twice it.

    In a dialogue each model turn's reasoning is measured and the longest counts."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ValueError(f"reward length: limit must be a positive integer, got {limit!r}")

    def item(task: Task, text: str, verdict: None) -> float:
        over = len(parse_completion(text).reasoning) - limit
        return 0.0 if over <= 0 else -min(1.0, over / limit)

    return _component("length", item)


def random_() -> Reward:
    """A control: 1.0 or 0.0 with even odds, whatever the completion says.

    Drawn from a hash of (task id, completion), so a completion always gets the same value
    (a resumed run rewards as the killed one did). Training on it shows what GRPO does with
    no signal at all (the "spurious rewards" control)."""

    def item(task: Task, text: str, verdict: None) -> float:
        digest = hashlib.blake2b(f"{task.task_id}\0{text}".encode(), digest_size=8).digest()
        return float(digest[0] & 1)

    return _component("random", item)


Tagger = Callable[[str, Task, Verdict], bool]
"""A behaviour tagger: does this completion (with its task and verdict) show the behaviour?"""


def behaviour(name: str, judge: Judge, tagger: Tagger) -> Reward:
    """Shaping: 1.0 when ``tagger`` finds the behaviour ``name`` in a completion, else 0.0.

    The taggers live in ``selfplay.behaviours`` (``TAGGERS``) and are handed in, so this
    package stays free of them. A shaping reward makes a behaviour pay whatever it does for
    correctness: a way to amplify a behaviour on purpose (``benchmarks/
    elicitation_validation.py`` uses it to create a known elicitation), not a default.
    """

    def item(task: Task, text: str, verdict: Verdict) -> float:
        return float(bool(tagger(text, task, verdict)))

    return _component(name, item, judge)


# -- machinery shared by the components ------------------------------------------------


Rule = Callable[[Task, str, Any], float | None]
"""A per-item rule: ``(task, text, verdict or None) -> value``."""


def _component(
    name: str,
    item: Rule,
    judge: Judge | None = None,
    *,
    turns: str = "each",
    dialogue_item: Rule | None = None,
) -> Reward:
    """Wrap a per-item rule as a TRL reward function named ``name`` that fails loudly.

    The function reads the batch from the ``scored`` column (a ``ScoredBatch`` shared by the
    components of one batch) when it is there, else parses it itself. In a dialogue, ``turns``
    says which model turns the rule sees: "first" (against the task as posed), "final"
    (against the final task) or "each" (against the task as posed; the lowest value counts).
    ``dialogue_item`` replaces ``item`` there when given.
    """

    def reward(prompts: list, completions: list, **columns: Any) -> list[float | None]:
        if not completions:
            return []
        batch = columns.get("scored") or ScoredBatch.parse(name, completions, columns)
        rule = item if batch.talks is None else (dialogue_item or item)
        views = batch.views(turns)
        flat = [view for item_views in views for view in item_views]
        verdicts: list[Verdict | None] = [None] * len(flat)
        if judge is not None:
            verdicts = list(batch.verdicts(name, judge, turns))
        values = []
        for (task, text), verdict in zip(flat, verdicts, strict=True):
            with blame(name, task):
                values.append(rule(task, text, verdict))
        out, start = [], 0
        for item_views in views:
            mine = [v for v in values[start : start + len(item_views)] if v is not None]
            out.append(min(mine) if mine else None)
            start += len(item_views)
        return out

    reward.__name__ = reward.__qualname__ = name
    return reward


def _well_formed(text: str) -> bool:
    parsed = parse_completion(text)
    if parsed.kind == "malformed" or parsed.trailing.strip():
        return False
    body = text[: len(text) - len(parsed.trailing)]
    # The final tag's content holds no <answer>/<ask>, so its opening is the last one in body.
    before = body[: body.rfind(ANSWER_OPEN if parsed.kind == "answer" else ASK_OPEN)]
    return THINK_OPEN not in before or before.rfind(THINK_CLOSE) > before.rfind(THINK_OPEN)


# Built last: it needs the machinery above.
format_reward = format_()
"""The format component, ready to use (it has no parameters)."""
