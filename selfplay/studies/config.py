"""The study config: a claim, its source, arms x seeds of one kind of experiment, and the rule.

Loaded strictly like run configs (``selfplay.config.strict``): an unknown key, a wrong type or
a bad value is a ``ConfigError`` naming the file and the dotted key. Each arm's settings (the
study's ``settings`` with the arm's own on top, and ``quick.settings`` on top of both under
``--quick``) are checked against the kind's settings dataclass before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfplay.config.strict import from_dict, merge, read_yaml
from selfplay.studies.conclusion import Condition
from selfplay.studies.kinds import KINDS

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass
class ArmConfig:
    """One arm: a name, what it is in a line, and its settings over the study's."""

    name: str
    """Short name, used in folder names and the rule: lower-case letters, digits, - and _."""
    label: str = ""
    """What the arm is, one line for the page."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Settings of this arm over the study's ``settings`` (keys of the kind's settings)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"key 'arms': arm name {self.name!r} must be 1-64 lower-case letters, digits, "
                "- or _ (it names folders)"
            )


@dataclass
class RuleConfig:
    """One condition of the decision rule (see ``selfplay.studies.conclusion``)."""

    measure: str
    """A measure of the kind (``selfplay study --help`` lists them per kind)."""
    arm: str
    """The arm it is measured on."""
    above: float | None = None
    """The claim predicts the measure lies above this (give ``above`` or ``below``)."""
    below: float | None = None
    """The claim predicts the measure lies below this."""
    minus_arm: str = ""
    """Judge the per-seed difference ``arm - minus_arm`` instead (the same seeds in both)."""

    def __post_init__(self) -> None:
        if (self.above is None) == (self.below is None):
            raise ValueError(
                f"key 'rule': the condition on {self.measure!r} needs exactly one of "
                "'above' and 'below'"
            )

    def condition(self) -> Condition:
        """The condition this entry states."""
        side = "above" if self.above is not None else "below"
        threshold = self.above if self.above is not None else self.below
        return Condition(self.measure, self.arm, side, float(threshold), self.minus_arm)


@dataclass
class QuickConfig:
    """What ``--quick`` changes: toy sizes that check the machinery, not the claim."""

    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Seeds of a quick study."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Settings over every arm's in a quick study."""
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Arm name -> settings over that arm's (after ``settings``), for what only some arms
    can take (a GRPO arm's ``grpo.max_steps``, which a self-play arm refuses)."""


@dataclass
class StudyConfig:
    """A study: the claim, the arms that test it, the rule fixed before the run."""

    name: str
    """Short name: the study folder is ``<studies_dir>/<name>-<time>``."""
    claim: str
    """The published claim, one sentence."""
    source: str
    """Where it was published: authors, year, title."""
    kind: str
    """What every arm runs (one of ``selfplay.studies.kinds.KINDS``)."""
    arms: list[ArmConfig]
    """The arms, each run once per seed."""
    rule: list[RuleConfig]
    """The conditions the claim predicts; all must hold to conclude ``replicated``."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds of every arm (at least two for an interval)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Settings shared by every arm (keys of the kind's settings)."""
    quick: QuickConfig = field(default_factory=QuickConfig)
    """What ``--quick`` changes."""
    cpus_per_arm: float = 1.0
    """Ray CPUs each arm's task asks for under ``--ray-address``."""
    studies_dir: str = "studies"
    """Where study folders are made."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"key 'name': {self.name!r} must be 1-64 lower-case letters, digits, - or _"
            )
        for key in ("claim", "source"):
            if not getattr(self, key).strip():
                raise ValueError(f"key '{key}': must not be empty")
        if self.kind not in KINDS:
            raise ValueError(f"key 'kind': {self.kind!r} is not a study kind ({', '.join(KINDS)})")
        for key, seeds in (("seeds", self.seeds), ("quick.seeds", self.quick.seeds)):
            if not seeds:
                raise ValueError(f"key '{key}': give at least one seed")
            if len(set(seeds)) != len(seeds) or min(seeds) < 0:
                raise ValueError(f"key '{key}': seeds must be distinct and >= 0, got {seeds}")
        if not self.arms:
            raise ValueError("key 'arms': give at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"key 'arms': arm name {twice!r} is given twice")
        if not self.rule:
            raise ValueError("key 'rule': give at least one condition")
        measures = KINDS[self.kind].MEASURES
        for i, r in enumerate(self.rule):
            if r.measure not in measures:
                raise ValueError(
                    f"key 'rule[{i}].measure': {r.measure!r} is not a measure of kind "
                    f"{self.kind!r} ({', '.join(measures)})"
                )
            for key in ("arm", "minus_arm"):
                arm = getattr(r, key)
                if (arm or key == "arm") and arm not in names:
                    raise ValueError(
                        f"key 'rule[{i}].{key}': {arm!r} is not an arm ({', '.join(names)})"
                    )
        for name in self.quick.arms:
            if name not in names:
                raise ValueError(f"key 'quick.arms.{name}': not an arm ({', '.join(names)})")
        if not self.cpus_per_arm > 0:
            raise ValueError(f"key 'cpus_per_arm': must be > 0, got {self.cpus_per_arm}")

    def arm_settings(self, arm: ArmConfig, quick: bool, source: str) -> Any:
        """The kind's settings dataclass for ``arm``: the study's settings, the arm's over
        them, then (``quick``) the quick ones and the arm's quick ones; mappings inside are
        merged key by key."""
        merged = merge(self.settings, arm.settings)
        if quick:
            merged = merge(merge(merged, self.quick.settings), self.quick.arms.get(arm.name, {}))
        return from_dict(
            KINDS[self.kind].Settings, merged, f"{source}: arm {arm.name!r}", "settings"
        )

    def conditions(self) -> list[Condition]:
        """The rule as conditions."""
        return [r.condition() for r in self.rule]


def load_study(path: str | Path, quick: bool = False) -> tuple[StudyConfig, dict[str, Any]]:
    """The study config at ``path`` and every arm's settings (checked now, so a bad value in
    the last arm stops the study before the first one runs)."""
    source = str(path)
    config = from_dict(StudyConfig, read_yaml(Path(path)), source=source)
    settings = {a.name: config.arm_settings(a, quick, source) for a in config.arms}
    check = getattr(KINDS[config.kind], "check", None)
    if check is not None:
        for name, arm in settings.items():
            check(arm, f"{source}: arm {name!r}")
    return config, settings
