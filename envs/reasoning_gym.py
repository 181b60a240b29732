"""Any reasoning-gym dataset as an environment, scored by reasoning-gym's own scorer.

reasoning-gym is an optional dependency (the ``gym`` extra); it is imported only when a
``ReasoningGym`` is built, so ``envs`` itself stays standard-library only.

Difficulty 1..5 maps onto the dataset's curriculum: every curriculum attribute is set to
level ``difficulty - 1``, capped at that attribute's last level, and the curriculum's
configuration becomes the dataset config. A dataset without a curriculum (``composite``,
``gsm_symbolic``, ``acre``, ``list_functions`` in reasoning-gym 0.1.25) uses its default
config at every level, so there all five levels draw from the same distribution. Keyword
options override config fields at every level.

Each task builds a one-item dataset from a seed drawn from the task's generator, so a task
is rebuilt exactly from its id. An item whose answer exceeds ``envs.format.MAX_FINAL_CHARS``
(4096) is redrawn, since no completion could state it; only the largest matrix and sorting
configurations come near that limit.

The item's metadata travels in ``Task.metadata["entry"]`` because most reasoning-gym
scorers need it. It is JSON-serialisable for every dataset, but a few scorers (``arc_agi``,
``rearc``) compare tuples and no longer accept the reference answer once a JSON round trip
has turned them into lists: score tasks rebuilt with ``Environment.task``, not tasks read
back from JSON.
"""

from __future__ import annotations

import dataclasses
import difflib
import random
from typing import Any

from envs.base import Environment, Task, Verdict, make_task
from envs.format import MAX_FINAL_CHARS

_SEED_RANGE = 2**31
"""Drawn seeds stay below this: some datasets feed ``seed + index`` to numpy, which wants 32 bits."""
MAX_DRAWS = 16
"""Items drawn per task before giving up on finding an answer short enough to write."""
_OWN_FIELDS = ("seed", "size")
"""Config fields this environment sets itself for every task."""


def _import_reasoning_gym() -> Any:
    """The ``reasoning_gym`` module, or an ImportError that says how to install it."""
    try:
        import reasoning_gym
        import reasoning_gym.factory
    except ImportError as err:
        raise ImportError(
            "the reasoning_gym environment needs the optional reasoning-gym package; "
            "install the `gym` extra: pip install -e '.[gym]'"
        ) from err
    return reasoning_gym


class ReasoningGym(Environment):
    """One reasoning-gym dataset, chosen by name; see the module docstring for levels."""

    name = "reasoning_gym"
    levels = (1, 2, 3, 4, 5)

    def __init__(self, dataset: str = "leg_counting", **config: Any) -> None:
        rg = _import_reasoning_gym()
        known = rg.factory.DATASETS
        if dataset not in known:
            close = difflib.get_close_matches(dataset, list(known), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"unknown reasoning-gym dataset {dataset!r}{hint}")
        fields = {f.name for f in dataclasses.fields(known[dataset][1])}
        own = sorted(set(config) & set(_OWN_FIELDS))
        if own:
            raise ValueError(
                f"reasoning-gym dataset {dataset!r}: {own} are set per task, not by options"
            )
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(
                f"reasoning-gym dataset {dataset!r} has no config fields {unknown}; "
                f"it has {sorted(fields - set(_OWN_FIELDS))}"
            )
        self.dataset = dataset
        self.config = dict(config)
        self._fields: dict[int, dict[str, Any]] = {}
        self._scorers: dict[int, Any] = {}

    # Caches hold reasoning-gym objects (some with large word lists); a copy sent to another
    # process (Ray, multiprocessing) rebuilds them there instead of pickling them.
    def __getstate__(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.dataset, self.config = state["dataset"], state["config"]
        self._fields, self._scorers = {}, {}

    def dataset_config(self, difficulty: int) -> dict[str, Any]:
        """The dataset config fields (without seed and size) used at ``difficulty``."""
        if difficulty not in self.levels:
            raise ValueError(
                f"environment {self.name!r}: difficulty {difficulty} not in levels {list(self.levels)}"
            )
        if difficulty not in self._fields:
            rg = _import_reasoning_gym()
            fields: dict[str, Any] = {}
            if rg.factory.has_curriculum(self.dataset):
                curriculum = rg.factory.create_curriculum(self.dataset)
                for attr_name, attr in curriculum.attributes.items():
                    curriculum.set_attr_level(attr_name, min(difficulty - 1, len(attr.levels) - 1))
                made = curriculum.generate_configuration()
                fields = {f.name: getattr(made, f.name) for f in dataclasses.fields(made)}
                for own in _OWN_FIELDS:
                    fields.pop(own, None)
            fields.update(self.config)
            self._fields[difficulty] = fields
        return dict(self._fields[difficulty])

    def _create(self, difficulty: int, seed: int, item: bool = False) -> Any:
        """A one-item dataset, or its item; a failure becomes a ValueError with context."""
        rg = _import_reasoning_gym()
        fields = self.dataset_config(difficulty)
        try:
            made = rg.create_dataset(self.dataset, **fields, seed=seed, size=1)
            return made[0] if item else made
        except (AssertionError, TypeError, ValueError) as err:
            # reasoning-gym checks configs with assert, and some curricula fail their own check
            # (in 0.1.25: caesar_cipher and survo from difficulty 3, knight_swap at every level).
            raise ValueError(
                f"reasoning-gym dataset {self.dataset!r} failed at difficulty {difficulty}, "
                f"seed {seed} (config {fields}): {err or type(err).__name__}"
            ) from err

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        """One item of the dataset, built from a seed drawn from ``rng``.

        An item whose answer is longer than the completion format admits is drawn again,
        up to ``MAX_DRAWS`` times; no completion could score it.
        """
        for _ in range(MAX_DRAWS):
            seed = rng.randrange(_SEED_RANGE)
            item = self._create(difficulty, seed, item=True)
            answer = item["answer"]
            if answer is None:
                # Datasets such as graph_color or boxnet accept many answers and give none;
                # a Task needs one (None would mean "underspecified" here).
                raise ValueError(
                    f"reasoning-gym dataset {self.dataset!r} gives no reference answer; "
                    "this environment needs one"
                )
            if len(str(answer).strip()) <= MAX_FINAL_CHARS:
                break
        else:
            raise ValueError(
                f"reasoning-gym dataset {self.dataset!r} at difficulty {difficulty}: {MAX_DRAWS} "
                f"draws all had answers over {MAX_FINAL_CHARS} characters (envs.format.MAX_FINAL_CHARS)"
            )
        extra: dict[str, Any] = {}
        if not isinstance(answer, str):
            extra["raw_answer"] = answer  # the scorer compares against the original type
        return make_task(
            item["question"],
            str(answer),
            dataset=self.dataset,
            seed=seed,
            entry=item.get("metadata", {}),
            **extra,
        )

    def check(self, answer: str, task: Task) -> Verdict:
        """Score with the dataset's own ``score_answer``; fractional scores are partial credit."""
        where = f"environment {self.name!r}, dataset {self.dataset!r}, task {task.task_id}"
        if task.metadata.get("dataset") != self.dataset:
            raise ValueError(f"{where}: task comes from dataset {task.metadata.get('dataset')!r}")
        entry = {
            "question": task.prompt,
            "answer": task.metadata.get("raw_answer", task.answer),
            "metadata": task.metadata.get("entry", {}),
        }
        try:
            raw = self._scorer(task.difficulty)(answer, entry)
        except Exception as err:
            # A crashing scorer is a bug to see, not a zero reward to train on.
            raise RuntimeError(f"{where}: scorer raised {type(err).__name__}: {err}") from err
        try:
            score = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: scorer returned {raw!r}, not a number") from None
        if not 0.0 <= score <= 1.0:  # also rejects NaN
            raise ValueError(f"{where}: scorer returned {score}, outside [0, 1]")
        reason = "correct" if score == 1.0 else "partial" if score > 0.0 else "wrong"
        return Verdict(score, "answer", answer, reason)

    def _scorer(self, difficulty: int) -> Any:
        # Built with the same config as the tasks: some scorers read the dataset's config.
        if difficulty not in self._scorers:
            self._scorers[difficulty] = self._create(difficulty, 0).score_answer
        return self._scorers[difficulty]
