"""One scored batch per step: parsed once, judged once, scored by every component, tagged once.

TRL's ``GRPOTrainer`` calls each reward function in turn with the same batch. A ``Scorer``
hands TRL one function per reward component; the first call of a batch builds its
``ScoredBatch`` (``rewards.batch``):

1. the ``task`` column, the dialogues and the completion texts are parsed;
2. the judge judges each completion once, against the task its verdict is about (a
   dialogue: the final turn against the task as the replies left it); its ``judge/*``
   statistics are taken then, so they count each completion once;
3. every component reads that batch (``scored=``), so components sharing a view share its
   verdicts; a dialogue component reading other turns (``clarify`` reads the first) has those
   judged once more, and that extra judging is left out of the statistics;
4. the behaviour taggers tag each completion, and, beside a judge that is not the ground
   truth, the environments score it (``truths``);

then ``on_batch(batch, columns)`` records it (``selfplay.recorder.Recorder``). The later calls
of the same batch return their component's column.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from envs import Environment, parse_completion
from rewards import Reward, ScoredBatch
from selfplay.behaviours import outcome, tag
from selfplay.judges import MODEL, Judge, program_verdict
from selfplay.judges import make_judge as registered_make_judge
from selfplay.verifier import model_judge


class Scorer:
    """The reward functions TRL calls, each batch scored once (see the module docstring)."""

    def __init__(
        self,
        components: list[Reward],
        judge: Judge,
        *,
        truth: dict[str, Environment] | None = None,
        on_batch: Callable[[ScoredBatch, dict[str, Any]], None] | None = None,
        counts: bool = False,
    ):
        self.components = components
        self.names = [f.__name__ for f in components]
        self.judge = judge
        self.truth = truth
        """Environments to score the ground truth with beside a judge that is not it; None: no
        ``truths``."""
        self.on_batch = on_batch
        self.counts = counts and hasattr(judge, "counts")
        """Keep the judge's raw counts (``judge.counts()``) rather than its statistics: the
        slices of a batch scored in several processes add up (``selfplay.recorder``)."""
        self._last: tuple[list, ScoredBatch] | None = None

    def reward_funcs(self) -> list[Reward]:
        """One TRL reward function per component, in order, each named as its component."""
        return [self._column(name) for name in self.names]

    def _column(self, name: str) -> Reward:
        def reward(prompts: list, completions: list, **columns: Any) -> list[float | None]:
            return self.scored(prompts, completions, columns).rewards[name]

        reward.__name__ = reward.__qualname__ = name
        return reward

    def scored(self, prompts: list, completions: list, columns: dict[str, Any]) -> ScoredBatch:
        """The batch of ``completions`` scored: built at its first call, recorded once."""
        if self._last is not None and self._last[0] is completions:
            return self._last[1]
        batch = self.score(prompts, completions, columns)
        self._last = (completions, batch)
        if self.on_batch is not None:
            self.on_batch(batch, columns)
        return batch

    def score(self, prompts: list, completions: list, columns: dict[str, Any]) -> ScoredBatch:
        """Parse, judge, score with every component, tag (steps 1-4 of the module docstring)."""
        first = self.names[0] if self.names else "scoring"
        batch = ScoredBatch.parse(first, completions, columns)
        if not completions:
            batch.rewards = {name: [] for name in self.names}
            return batch
        self._discard()  # counts of anyone else sharing the judge (self-play's attempts)
        batch.verdicts(first, self.judge, "final")
        batch.judge_stats = {} if self.counts else self.judge.stats()
        batch.judge_counts = self.judge.counts() if self.counts else None
        for name, component in zip(self.names, self.components, strict=True):
            batch.rewards[name] = list(component(prompts, completions, **columns, scored=batch))
        if len(batch.judged_views) > 1:  # other turns of a dialogue: judged, not counted
            self._discard()
        batch.tags = self._tags(batch)
        batch.truths = self._truths(batch) if self.truth is not None else None
        return batch

    def _discard(self) -> None:
        """Drop the judge's counts so far (``counts`` where it has it, else ``stats``)."""
        (self.judge.counts if hasattr(self.judge, "counts") else self.judge.stats)()

    def _tags(self, batch: ScoredBatch) -> list[dict[str, Any]]:
        """Behaviour tags of each completion; in a dialogue on what the model said, with asking
        read from its first turn, on the task as posed."""
        tags = []
        verdicts = primary_verdicts(batch)
        for i, (task, text) in enumerate(zip(batch.tasks, batch.texts, strict=True)):
            row = tag(text, batch.judged[i], verdicts[i])
            if batch.talks is not None:
                asked = parse_completion(batch.talks[i].model_texts[0]).kind == "ask"
                row.update(asked=asked, clarify_outcome=outcome(task.specified, asked))
            tags.append(row)
        return tags

    def _truths(self, batch: ScoredBatch) -> list[float]:
        """The environments' own scores of what the judge judged (NaN without ground truth)."""
        finals = batch.texts if batch.talks is None else [d.model_texts[-1] for d in batch.talks]
        return [
            program_verdict(self.truth, task, text).score
            if task.specified and task.answer is not None
            else math.nan
            for task, text in zip(batch.judged, finals, strict=True)
        ]


def build_judge(config, envs: dict, make_judge=None, judge_path="", policy=None, console=None):
    """The run's one Judge: the model Judge of ``judge: model`` (over the Judge model at
    ``judge_path``, or the ``policy`` being trained), else the registered judge the config
    names, from ``make_judge(name, envs)`` (judge actors in a launched run) or made here."""
    if config.judge == MODEL:
        return model_judge(config, envs, judge_path, policy, console)
    return (make_judge or registered_make_judge)(config.judge, envs)


def primary_verdicts(batch: ScoredBatch) -> list:
    """The verdict of each completion: against its task, or a dialogue's final turn."""
    return batch.judged_views["each" if batch.talks is None else "final"]


def weighted_total(values, weights) -> float:
    """One completion's reward as TRL combines the components: a weighted sum in which "not
    applicable" (None) counts 0. ``values`` and ``weights`` in the same order."""
    return sum(w * v for w, v in zip(weights, values, strict=True) if v is not None)


def totals(batch: ScoredBatch, weights: dict[str, float]) -> list[float]:
    """Each completion's reward (``weighted_total``) from the batch's component values."""
    return [
        weighted_total((batch.rewards[n][i] for n in weights), weights.values())
        for i in range(len(batch.tasks))
    ]


def group_advantages(totals: list[float], g: int, scale_rewards: str | bool) -> list[float]:
    """Group advantages of consecutive groups of ``g``, computed as TRL does for
    ``scale_rewards`` (group, batch or none); ``tests/test_scoring.py`` checks them against the
    advantages TRL's trainer computed."""
    groups = [totals[k : k + g] for k in range(0, len(totals), g)]
    out = []
    for values in groups:
        mean = sum(values) / len(values)
        if scale_rewards in ("group", True):
            scale = _std(values)
        elif scale_rewards == "batch":
            scale = _std(totals)
        else:
            scale = 1.0 - 1e-4
        out += [(v - mean) / (scale + 1e-4) for v in values]
    return out


def _std(values: list[float]) -> float:
    # torch.std's default (unbiased), which TRL uses.
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
