"""Which transcript rows to read: the filters of ``selfplay transcripts`` and ``query``,
checked once (``parse_filters``) and turned into ``pyarrow`` expressions for the scan.

A filter either keeps or drops whole groups (step, role, environment, level, task) or picks
completions inside a group (behaviour, reward, proposal status); ``equal_reward_groups``
keeps the groups whose completions all got the same total reward.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from selfplay.errors import UsageError
from selfplay.transcripts.schema import (
    CHALLENGER,
    CLARIFY_OUTCOME,
    CLARIFY_OUTCOMES,
    DIFFICULTY,
    ENV,
    GROUP,
    PROPOSAL_STATUS,
    PROPOSAL_STATUSES,
    REWARD,
    ROLE,
    STEP,
    TAGS,
    TASK_ID,
)

BEHAVIOURS = TAGS + CLARIFY_OUTCOMES
"""What ``behaviour`` accepts: a tag that is true, or a ``clarify_outcome`` value."""
FILTER_TYPES = {
    **dict.fromkeys(TAGS, "bool"),
    CLARIFY_OUTCOME: "string",
    PROPOSAL_STATUS: "string",
    TASK_ID: "string",
    ENV: "string",
    DIFFICULTY: "int64",
    GROUP: "int64",
    REWARD: "double",
}
"""The type a filter column gets where no file read has it, or has it only as all-null."""

_STEPS = re.compile(r"^\s*(?P<lo>[0-9]*)\s*(?P<colon>:?)\s*(?P<hi>[0-9]*)\s*$")
_COMPARISON = re.compile(r"^\s*(?P<op><=|>=|==|!=|<|>|=)\s*(?P<value>\S+)\s*$")
_OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Filters:
    """Validated filter options; ``parse_filters`` builds them from strings or Python values."""

    steps: tuple[int | None, int | None] = (None, None)
    """First and last step, inclusive; None is open."""
    envs: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()
    behaviours: tuple[str, ...] = ()
    """All must hold: tag columns that are true, or ``clarify_outcome`` values."""
    reward: tuple[tuple[str, float], ...] = ()
    """Comparisons on the total ``reward``, all of which must hold."""
    equal_reward_groups: bool = False
    roles: tuple[str, ...] = ()
    task_id: str | None = None
    statuses: tuple[str, ...] = ()
    """Any of these ``proposal_status`` values; only challenger rows have one."""

    def admits_file(self, step: int, role: str) -> bool:
        """Whether a file of ``role`` at ``step`` can hold matching rows (from its name)."""
        lo, hi = self.steps
        return (
            (lo is None or step >= lo)
            and (hi is None or step <= hi)
            and (not self.roles or role in self.roles)
            and (not self.statuses or role == CHALLENGER)
        )

    @property
    def by_row(self) -> bool:
        """Whether some filter picks completions inside a group (not whole groups)."""
        return bool(self.behaviours or self.reward or self.statuses)


def parse_filters(
    *,
    steps: str | int | None = None,
    env: str | Iterable[str] | None = None,
    level: int | str | Iterable[int | str] | None = None,
    behaviour: str | Iterable[str] | None = None,
    reward: str | float | None = None,
    equal_reward_groups: bool = False,
    role: str | Iterable[str] | None = None,
    task_id: str | None = None,
    status: str | Iterable[str] | None = None,
) -> Filters:
    """Check and parse every filter; a bad value is a ``UsageError`` naming option and value.

    Several values (a list, or one string with commas) mean any of them for ``env``,
    ``level``, ``role`` and ``status``, and all of them for ``behaviour``.
    """
    behaviours = _values(behaviour)
    for name in behaviours:
        if name not in BEHAVIOURS:
            raise UsageError(f"--behaviour {name!r}: expected one of {', '.join(BEHAVIOURS)}")
    statuses = [str(s) for s in _values(status)]
    for name in statuses:
        if name not in PROPOSAL_STATUSES:
            raise UsageError(f"--status {name!r}: expected one of {', '.join(PROPOSAL_STATUSES)}")
    return Filters(
        steps=parse_steps(steps),
        envs=tuple(str(e) for e in _values(env)),
        levels=tuple(_level(v) for v in _values(level)),
        behaviours=tuple(behaviours),
        reward=parse_reward(reward),
        equal_reward_groups=bool(equal_reward_groups),
        roles=tuple(str(r) for r in _values(role)),
        task_id=task_id,
        statuses=tuple(statuses),
    )


def parse_steps(text: str | int | None) -> tuple[int | None, int | None]:
    """``"A:B"`` (inclusive), ``"A:"``, ``":B"`` or ``"N"`` as (first, last); None is open."""
    if text is None:
        return (None, None)
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return (text, text)
    match = _STEPS.match(str(text))
    if not match or not (match["lo"] or match["hi"]) or (match["hi"] and not match["colon"]):
        raise UsageError(f"--steps {text!r}: expected A:B, A:, :B or N (non-negative integers)")
    lo = int(match["lo"]) if match["lo"] else None
    hi = int(match["hi"]) if match["hi"] else None
    if not match["colon"]:
        hi = lo
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"--steps {text!r}: the first step is after the last")
    return (lo, hi)


def parse_reward(text: str | float | None) -> tuple[tuple[str, float], ...]:
    """``"LO:HI"`` (inclusive, open ends allowed), ``">0.5"``, ``"<=0"``, ``"==1"`` or a number."""
    if text is None:
        return ()
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return (("==", float(text)),)
    text = str(text)
    expected = (
        f"--reward {text!r}: expected LO:HI, LO:, :HI, a comparison (>0.5, <=0, ==1) or a number"
    )
    if ":" in text:
        lo, _, hi = text.partition(":")
        if not (lo.strip() or hi.strip()):
            raise UsageError(expected)
        bounds = ((">=", lo), ("<=", hi))
        out = tuple((op, _number(v, expected)) for op, v in bounds if v.strip())
        if len(out) == 2 and out[0][1] > out[1][1]:
            raise UsageError(f"--reward {text!r}: LO is above HI")
        return out
    match = _COMPARISON.match(text)
    if match:
        return ((match["op"], _number(match["value"], expected)),)
    return (("==", _number(text, expected)),)


def _number(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(expected) from None
    if math.isnan(value):
        raise UsageError(expected)
    return value


def _level(value: int | str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    raise UsageError(f"--level {value!r}: expected an integer difficulty")


def _values(value: Any) -> list:
    """None -> []; a string -> its comma-separated items; a list -> its items, strings split."""
    if value is None:
        return []
    items = [value] if isinstance(value, (str, int)) else list(value)
    out: list = []
    for item in items:
        if isinstance(item, str):
            out += [part.strip() for part in item.split(",") if part.strip()]
        else:
            out.append(item)
    return out


# -- as pyarrow expressions -----------------------------------------------------------------


def group_expression(f: Filters):
    """The filters that keep or drop whole groups (a group is one task at one step)."""
    import pyarrow.compute as pc

    lo, hi = f.steps
    parts = [
        pc.field(STEP) >= lo if lo is not None else None,
        pc.field(STEP) <= hi if hi is not None else None,
        pc.field(ROLE).isin(f.roles) if f.roles else None,
        pc.field(ENV).isin(f.envs) if f.envs else None,
        pc.field(DIFFICULTY).isin(f.levels) if f.levels else None,
        pc.field(TASK_ID) == f.task_id if f.task_id is not None else None,
    ]
    return all_of(parts)


def row_expression(f: Filters):
    """The filters that pick completions within a group: behaviours, reward and status."""
    import pyarrow.compute as pc

    parts = [
        pc.field(b) == True if b in TAGS else pc.field(CLARIFY_OUTCOME) == b  # noqa: E712
        for b in f.behaviours
    ]
    parts += [_OPERATORS[op](pc.field(REWARD), value) for op, value in f.reward]
    if f.statuses:
        parts.append(pc.field(PROPOSAL_STATUS).isin(f.statuses))
    return all_of(parts)


def all_of(parts: list):
    """The expressions of ``parts`` that are not None, joined by "and"; None if there are none."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out & p
    return out


def columns_used(f: Filters) -> set[str]:
    """The columns the filters of ``f`` read, and the group keys a read always needs."""
    used = {STEP, ROLE}
    used |= {ENV} if f.envs else set()
    used |= {DIFFICULTY} if f.levels else set()
    used |= {TASK_ID} if f.task_id is not None else set()
    used |= {b if b in TAGS else CLARIFY_OUTCOME for b in f.behaviours}
    used |= {REWARD} if f.reward or f.equal_reward_groups else set()
    used |= {GROUP} if f.equal_reward_groups else set()
    used |= {PROPOSAL_STATUS} if f.statuses else set()
    return used
