"""`selfplay transcripts RUN`: find the completions that matter and read them.

Every completion of a run is one row of ``RUN/transcripts/<role>-step-<step>.parquet`` (see
``selfplay.transcripts``; the columns are those ``Recorder.record`` writes). ``query`` reads
them with ``pyarrow.dataset``: files outside the asked roles and steps (with ``status``, all
but the challenger's) are skipped by their names, the other filters are pushed down into the Parquet scan, and only the asked columns
are read (the text columns are most of the bytes). pandas does the group logic afterwards.

Roles write different columns (``selfplay.play``: a ``challenger`` row is a proposal with
its status, solve rate and reward terms; an ``attempt`` row is a Solver attempt that rated
one; a ``solver`` row is a training completion). The dataset's schema is unified over the
files it reads, so a column a file lacks reads as null there, and a filter on such a column
(``behaviour`` on challenger rows, ``status`` on solver rows) simply does not match them.

``equal_reward_groups`` keeps the groups (same step, role and ``group``) whose completions
all got the same total reward: GRPO gives them zero advantage, so they cost generation and
teach nothing. A group is judged on all its completions, not on the rows the other filters
keep: ``behaviour="verification", equal_reward_groups=True`` is the verifying completions
that sit in such groups.

``chain`` follows one proposed task through self-play: the Challenger's proposals of it,
the Solver attempts that rated it, then the Solver's training rows on it, each role read
with its own columns.

A file that cannot be read (empty, cut short, garbled) costs only itself: it is left out
and named in one warning (``Skipped``). Opening checks each file's footer; a damaged page
is found when a read first touches it, and ``with_transcripts`` then starts the work again
without that file, so that every count and every row shown come from the same files.

Nothing heavy is imported at module level: ``register`` runs for every ``selfplay --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from envs import REJECTIONS
from selfplay.behaviours import CLARIFY_OUTCOMES
from selfplay.transcripts import describe_read_error, parse_name, read_errors

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

T = TypeVar("T")

TAGS = (
    "self_correction_lexical",
    "self_correction_verified",
    "verification",
    "backtracking",
    "asked",
    "states_confidence",
)
"""Boolean tag columns of a transcript row (``selfplay.behaviours.tag``)."""
BEHAVIOURS = TAGS + CLARIFY_OUTCOMES
"""What ``behaviour`` accepts: a tag that is true, or a ``clarify_outcome`` value."""
GROUP_KEYS = ("step", "role", "group")
"""The columns that name one GRPO group: the completions of one task at one step."""
TASK_COLUMNS = ("task_id", "env", "difficulty", "specified", "prompt", "answer")
"""Columns shared by a group's completions, shown once per group."""
EQUAL_TOLERANCE = 1e-9
"""Totals closer than this count as the same reward (they are sums of the same floats)."""
DEFAULT_LIMIT = 20
PROPOSAL_STATUSES = ("ok", *REJECTIONS)
"""What ``status`` accepts: the ``proposal_status`` of a challenger row."""
CHALLENGER = "challenger"
"""The role of the Challenger's proposal rows, the only rows that have a ``proposal_status``."""
CHAIN_ROLES = (CHALLENGER, "attempt", "solver")
"""The roles ``chain`` follows a task through, in its order: proposed, rated, trained on."""
FILTER_TYPES = {
    **dict.fromkeys(TAGS, "bool"),
    "clarify_outcome": "string",
    "proposal_status": "string",
    "task_id": "string",
    "env": "string",
    "difficulty": "int64",
    "group": "int64",
    "reward": "double",
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


def _usage(message: str) -> Exception:
    from selfplay.errors import UsageError

    return UsageError(message)


# -- filters --------------------------------------------------------------------------------


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
            raise _usage(f"--behaviour {name!r}: expected one of {', '.join(BEHAVIOURS)}")
    statuses = [str(s) for s in _values(status)]
    for name in statuses:
        if name not in PROPOSAL_STATUSES:
            raise _usage(f"--status {name!r}: expected one of {', '.join(PROPOSAL_STATUSES)}")
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
        raise _usage(f"--steps {text!r}: expected A:B, A:, :B or N (non-negative integers)")
    lo = int(match["lo"]) if match["lo"] else None
    hi = int(match["hi"]) if match["hi"] else None
    if not match["colon"]:
        hi = lo
    if lo is not None and hi is not None and lo > hi:
        raise _usage(f"--steps {text!r}: the first step is after the last")
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
            raise _usage(expected)
        bounds = ((">=", lo), ("<=", hi))
        out = tuple((op, _number(v, expected)) for op, v in bounds if v.strip())
        if len(out) == 2 and out[0][1] > out[1][1]:
            raise _usage(f"--reward {text!r}: LO is above HI")
        return out
    match = _COMPARISON.match(text)
    if match:
        return ((match["op"], _number(match["value"], expected)),)
    return (("==", _number(text, expected)),)


def _number(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _usage(expected) from None
    if math.isnan(value):
        raise _usage(expected)
    return value


def _level(value: int | str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    raise _usage(f"--level {value!r}: expected an integer difficulty")


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


def _group_expression(f: Filters):
    """The filters that keep or drop whole groups (a group is one task at one step)."""
    import pyarrow.compute as pc

    lo, hi = f.steps
    parts = [
        pc.field("step") >= lo if lo is not None else None,
        pc.field("step") <= hi if hi is not None else None,
        pc.field("role").isin(f.roles) if f.roles else None,
        pc.field("env").isin(f.envs) if f.envs else None,
        pc.field("difficulty").isin(f.levels) if f.levels else None,
        pc.field("task_id") == f.task_id if f.task_id is not None else None,
    ]
    return _all(parts)


def _row_expression(f: Filters):
    """The filters that pick completions within a group: behaviours, reward and status."""
    import pyarrow.compute as pc

    parts = [
        pc.field(b) == True if b in TAGS else pc.field("clarify_outcome") == b  # noqa: E712
        for b in f.behaviours
    ]
    parts += [_OPERATORS[op](pc.field("reward"), value) for op, value in f.reward]
    if f.statuses:
        parts.append(pc.field("proposal_status").isin(f.statuses))
    return _all(parts)


def _all(parts: list):
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out & p
    return out


def _columns_used(f: Filters) -> set[str]:
    used = {"step", "role"}
    used |= {"env"} if f.envs else set()
    used |= {"difficulty"} if f.levels else set()
    used |= {"task_id"} if f.task_id is not None else set()
    used |= {b if b in TAGS else "clarify_outcome" for b in f.behaviours}
    used |= {"reward"} if f.reward or f.equal_reward_groups else set()
    used |= {"group"} if f.equal_reward_groups else set()
    used |= {"proposal_status"} if f.statuses else set()
    return used


# -- reading --------------------------------------------------------------------------------


def transcript_files(run_dir: str | Path) -> list[tuple[int, str, Path]]:
    """(step, role, path) of every transcript file of a run, by step then role."""
    run = Path(run_dir)
    folder = run / "transcripts"
    if not run.is_dir():
        raise _usage(f"run folder {run} does not exist")
    files = []
    for path in folder.glob("*-step-*.parquet"):
        if name := parse_name(path.name):
            files.append((name[1], name[0], path))
    if not files:
        raise _usage(f"no transcripts under {folder}")
    return sorted(files)


class CorruptTranscriptWarning(UserWarning):
    """Transcript files were left out of a read because they cannot be read."""


class Skipped:
    """Transcript files left out because they cannot be read, each with why.

    One is shared by every read of a command, so that each file is named once however many
    reads meet it, and the command reports them all.
    """

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        """Path -> the first error reading it, ``Type: message`` on one line."""

    def add(self, path: str | Path, err: BaseException) -> None:
        """Record ``path`` as left out because of ``err``."""
        self.files.setdefault(str(path), describe_read_error(err))

    def __len__(self) -> int:
        return len(self.files)

    def message(self) -> str:
        """One line: how many files were skipped, and each with why."""
        n = len(self.files)
        each = "; ".join(f"{path} ({why})" for path, why in self.files.items())
        return f"skipped {n} corrupt transcript file{'' if n == 1 else 's'}: {each}"

    def to_json(self) -> list[dict[str, str]]:
        """``{"file", "error"}`` per file, for a summary."""
        return [{"file": path, "error": why} for path, why in self.files.items()]

    def warn(self) -> None:
        """``message`` as a ``CorruptTranscriptWarning``, if any file was skipped."""
        if self.files:
            warnings.warn(self.message(), CorruptTranscriptWarning, stacklevel=3)


class FoundCorrupt(Exception):
    """A read met files it cannot read, now in its ``Skipped``: what was computed from the
    dataset must be redone without them (``with_transcripts`` does that)."""


class Transcripts:
    """Transcript files of a run as one dataset (``open_transcripts``); ``read`` is the one
    way rows come off disk.

    Opening reads each file's footer, and leaves out (into ``skipped``) those that fail. A
    file whose pages fail later, when a read first touches the damaged column, is added to
    ``skipped`` and the read raises ``FoundCorrupt``: numbers computed from the earlier reads
    would count rows now left out, so the work starts again without it.
    """

    def __init__(self, files: list[str], schema: pa.Schema, total: int, skipped: Skipped):
        self.files = files
        """Paths, in step order; a row's ``fragment`` (``read(with_fragment=True)``) indexes it."""
        self.schema = schema
        self.total = total
        """Rows in ``files``."""
        self.skipped = skipped

    def read(
        self,
        columns: list[str] | None = None,
        filter: pc.Expression | None = None,  # noqa: A002 (pyarrow's name for it)
        fragments: Iterable[int] | None = None,
        with_fragment: bool = False,
    ) -> pa.Table:
        """The rows ``filter`` keeps of ``fragments`` (indexes into ``files``; default all),
        with ``columns`` (default all), plus a last column ``fragment`` if ``with_fragment``."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        chosen = list(range(len(self.files))) if fragments is None else list(fragments)
        names = list(self.schema.names) if columns is None else list(columns)
        paths = [self.files[i] for i in chosen]
        dataset = ds.dataset(paths, schema=self.schema, format="parquet")
        extra = ["__fragment_index"] if with_fragment else []
        try:
            table = dataset.to_table(columns=names + extra, filter=filter)
        except read_errors() as err:
            bad = self._unreadable(paths, names)
            if not bad:
                raise  # no file is at fault: a bug in the query, not a corrupt file
            raise FoundCorrupt(f"cannot read {', '.join(bad)}") from err
        if with_fragment:  # the index in ``paths`` to the index in ``files``
            index = pa.array(chosen, pa.int64()).take(table.column(len(names)))
            table = table.set_column(len(names), "fragment", index)
        return table

    def _unreadable(self, paths: list[str], columns: list[str]) -> list[str]:
        """Those of ``paths`` whose ``columns`` cannot be read, added to ``skipped``."""
        import pyarrow.parquet as pq

        bad = []
        for path in paths:
            try:
                file = pq.ParquetFile(path)
                file.read(columns=[c for c in columns if c in file.schema_arrow.names])
            except read_errors() as err:
                self.skipped.add(path, err)
                bad.append(path)
        return bad


def _metadata(path: Path, skipped: Skipped):
    """The Parquet metadata of ``path``; None (and ``path`` in ``skipped``) if it cannot be read."""
    import pyarrow.parquet as pq

    if str(path) in skipped.files:
        return None
    try:
        return pq.read_metadata(path)
    except read_errors() as err:
        skipped.add(path, err)
        return None


def open_transcripts(
    run_dir: str | Path, f: Filters = Filters(), skipped: Skipped | None = None
) -> Transcripts:
    """The run's files that ``f`` can match, less those in or added to ``skipped``.

    The schema is unified over the files: a column missing from some (dialogue or eval
    columns, or another role's: challenger rows have no verdict, solver rows no
    ``proposal_status``) reads as null there, and one that was all null in a step takes its
    type from the other steps. A column ``f`` filters on that no file read has (or has only
    as all-null) is added with its type from ``FILTER_TYPES``, so its filter matches nothing
    there instead of failing.
    """
    import pyarrow as pa

    skipped = Skipped() if skipped is None else skipped
    files = transcript_files(run_dir)
    _check_roles(files, f)
    paths, metadata = [], []
    for step, role, path in files:
        if f.admits_file(step, role) and (meta := _metadata(path, skipped)) is not None:
            paths.append(str(path))
            metadata.append(meta)
    schemas = [m.schema.to_arrow_schema() for m in metadata]
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(f"transcripts of {run_dir} disagree on a column's type: {err}") from err
    if schema is None:  # no readable step in range: no rows, the first readable file's columns
        first = next((m for _, _, p in files if (m := _metadata(p, skipped)) is not None), None)
        if first is None:
            folder = Path(run_dir) / "transcripts"
            raise _usage(f"no readable transcripts under {folder} (all {len(files)} files corrupt)")
        schema = first.schema.to_arrow_schema()
    for name in sorted(_columns_used(f)):
        kind = FILTER_TYPES.get(name)
        if kind is None:
            continue
        at = schema.get_field_index(name)
        if at < 0:
            schema = schema.append(pa.field(name, kind))
        elif pa.types.is_null(schema.field(at).type):
            schema = schema.set(at, pa.field(name, kind))
    return Transcripts(paths, schema, sum(m.num_rows for m in metadata), skipped)


def with_transcripts(
    run_dir: str | Path,
    f: Filters,
    work: Callable[[Transcripts], T],
    skipped: Skipped | None = None,
) -> T:
    """``work(open_transcripts(run_dir, f))``, started again without each file its reads
    find corrupt, so that all it computes is over the same files: those it could read.

    The files left out are added to ``skipped``; without one, they are a
    ``CorruptTranscriptWarning``. ``work`` writes nothing before its last read.
    """
    found = Skipped() if skipped is None else skipped
    try:
        while True:
            try:
                return work(open_transcripts(run_dir, f, found))
            except FoundCorrupt:
                continue  # ``found`` holds the files now: the next open leaves them out
    finally:
        if skipped is None:
            found.warn()


def _check_roles(files: list[tuple[int, str, Path]], f: Filters) -> None:
    roles = sorted({role for _, role, _ in files})
    for role in f.roles:
        if role not in roles:
            raise _usage(
                f"--role {role!r}: no transcripts of that role (roles: {', '.join(roles)})"
            )


def match(dataset: Transcripts, f: Filters) -> pd.DataFrame:
    """(step, role, group, fragment) of every row ``f`` keeps, in step order.

    The first of two passes: one scan of the columns the filters need, so the second
    (``fetch``) can skip the files without a match. ``fragment`` indexes ``dataset.files``.
    """
    import pandas as pd

    used = _columns_used(f)
    _require(dataset.schema.names, sorted(used), "filter")
    keys = list(GROUP_KEYS)
    columns = [*keys, *sorted(used - set(keys))]
    # The group filters go down to the scan; the row filters run on what it read, so that
    # the same scan also gives every completion's reward for the equal-reward test.
    table = dataset.read(columns, _group_expression(f), with_fragment=True)
    rows = _row_expression(f)
    hits = (table if rows is None else table.filter(rows)).select([*keys, "fragment"])
    hits = hits.to_pandas()
    if f.equal_reward_groups:
        equal = _equal_reward_groups(table.select([*keys, "reward"]).to_pandas())
        hits = hits[pd.MultiIndex.from_frame(hits[keys]).isin(equal)].reset_index(drop=True)
    return hits


def fetch(
    dataset: Transcripts, f: Filters, hits: pd.DataFrame, columns: list[str] | None = None
) -> pd.DataFrame:
    """The rows ``f`` keeps, with ``columns`` (default all), from the files ``hits`` names.

    With ``hits`` cut to its first N rows, the first N rows returned are those N rows.
    """
    names = dataset.schema.names
    wanted = list(names) if columns is None else list(columns)
    _require(names, wanted, "columns")
    if hits.empty:
        return dataset.schema.empty_table().select(wanted).to_pandas()
    keys = list(GROUP_KEYS)
    read = wanted + [k for k in keys if f.equal_reward_groups and k not in wanted]
    where = _all([_group_expression(f), _row_expression(f)])
    frame = dataset.read(read, where, fragments=sorted(set(hits["fragment"]))).to_pandas()
    if f.equal_reward_groups:  # the rows of the groups ``hits`` kept
        frame = _in_groups(frame, hits)
    return frame[wanted].reset_index(drop=True)


def select(dataset: Transcripts, f: Filters, columns: list[str] | None = None) -> pd.DataFrame:
    """Every row of ``dataset`` that ``f`` keeps, with ``columns`` (default all), in step order."""
    return fetch(dataset, f, match(dataset, f), columns)


def _equal_reward_groups(rewards: pd.DataFrame) -> pd.MultiIndex:
    """(step, role, group) of the groups whose completions all got the same total reward."""
    by_group = rewards.groupby(list(GROUP_KEYS), sort=False)["reward"]
    spread = by_group.max() - by_group.min()
    return spread.index[spread <= EQUAL_TOLERANCE]


def _require(names: list[str], wanted: list[str], what: str) -> None:
    missing = [c for c in wanted if c not in names]
    if missing:
        raise _usage(
            f"{what}: no column {', '.join(map(repr, missing))} in these transcripts "
            f"(columns: {', '.join(names)})"
        )


def query(
    run_dir: str | Path,
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
    columns: list[str] | None = None,
    skipped: Skipped | None = None,
) -> pd.DataFrame:
    """The transcript rows of a run that match every filter, in step order.

    ``steps`` "A:B" (inclusive), "A:", ":B" or "N"; ``env``, ``level``, ``role``: one value
    or several (any of them); ``behaviour``: a tag in ``BEHAVIOURS`` (several: all of them);
    ``reward``: "LO:HI" or a comparison (">0.5", "<=0", "==1") on the total reward;
    ``equal_reward_groups``: only groups whose completions all got the same reward;
    ``status``: a ``proposal_status`` in ``PROPOSAL_STATUSES`` (several: any of them; only
    challenger rows have one); ``columns``: the columns to read and return (default all;
    leave out the text columns when counting). The rows of every role read have the columns
    of them all, null where a role has none. Bad values raise ``selfplay.errors.UsageError``.
    A file that cannot be read is left out and added to ``skipped`` (without one: a
    ``CorruptTranscriptWarning`` names it).
    """
    f = parse_filters(
        steps=steps,
        env=env,
        level=level,
        behaviour=behaviour,
        reward=reward,
        equal_reward_groups=equal_reward_groups,
        role=role,
        task_id=task_id,
        status=status,
    )
    return with_transcripts(run_dir, f, lambda dataset: select(dataset, f, columns), skipped)


def chain(
    run_dir: str | Path, task_id: str, skipped: Skipped | None = None
) -> dict[str, list[dict[str, Any]]]:
    """One task through self-play: its rows by role, each role's in step order.

    ``"challenger"``: the proposals that gave this task (the first, and any duplicates);
    ``"attempt"``: the Solver attempts that rated it; ``"solver"``: the Solver's training
    rows on it. Each row is a dict of plain values with its own role's columns only. A task
    id no row has is a ``selfplay.errors.UsageError`` naming it. Files that cannot be read are
    left out, as in ``query``.
    """
    f = parse_filters(task_id=task_id)
    found = Skipped() if skipped is None else skipped
    try:
        links, _ = chain_rows(run_dir, f, found)
    finally:
        if skipped is None:
            found.warn()
    if not any(links.values()):
        raise _no_chain(f)
    return links


def chain_rows(
    run_dir: str | Path, f: Filters, skipped: Skipped
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The rows ``f`` keeps of each role in ``CHAIN_ROLES`` (an empty list for a role the run
    lacks or ``f`` leaves out), and how many rows the files read hold (those that could be
    read: the others are added to ``skipped``).

    Each role is a dataset of its own, so its rows carry its own columns, not every role's.
    """
    files = transcript_files(run_dir)
    _check_roles(files, f)
    links: dict[str, list[dict[str, Any]]] = {role: [] for role in CHAIN_ROLES}
    total = 0
    for role in CHAIN_ROLES:
        one = replace(f, roles=(role,))
        if (f.roles and role not in f.roles) or not any(
            one.admits_file(step, r) for step, r, _ in files
        ):
            continue
        links[role], n = with_transcripts(run_dir, one, lambda d, one=one: _rows(d, one), skipped)
        total += n
    return links, total


def _rows(dataset: Transcripts, f: Filters) -> tuple[list[dict[str, Any]], int]:
    """The rows ``f`` keeps, as dicts of plain values, and how many rows ``dataset`` holds."""
    return _records(_with_ints(select(dataset, f), dataset.schema)), dataset.total


def _no_chain(f: Filters) -> Exception:
    others = replace(f, task_id=None) != Filters()
    where = " that the other filters keep" if others else ""
    return _usage(f"--chain {f.task_id!r}: no transcript row{where} has that task id")


def whole_groups(dataset: Transcripts, f: Filters, keys: pd.DataFrame) -> pd.DataFrame:
    """Every completion of the groups in ``keys`` (rows of ``match``), with ``matched``.

    ``matched`` is whether the completion itself passes ``f``'s row filters (behaviour, reward).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    where = _all([pc.field(k).isin(sorted(set(keys[k]))) for k in GROUP_KEYS])
    table = dataset.read(filter=where, fragments=sorted(set(keys["fragment"])))
    table = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    rows = _row_expression(f)
    matched = set(table.filter(rows).column("_row").to_pylist()) if rows is not None else None
    frame = table.to_pandas()
    frame["matched"] = True if matched is None else frame["_row"].isin(matched)
    return _in_groups(frame, keys).drop(columns="_row").reset_index(drop=True)


def _in_groups(frame: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    names = list(GROUP_KEYS)
    inside = pd.MultiIndex.from_frame(frame[names]).isin(pd.MultiIndex.from_frame(keys[names]))
    return frame[inside]


# -- the command ----------------------------------------------------------------------------

ROW_VIEW = (
    "step",
    "role",
    "group",
    "env",
    "difficulty",
    "task_id",
    "reward",
    "advantage",
    "verdict_score",
    "verdict_reason",
    "proposal_status",
    "proposal_detail",
    *TAGS,
    "clarify_outcome",
    "completion",
)
"""The columns the default view reads (the prompt and answer are left on disk)."""
MIN_COMPLETION = 24
"""Characters of a completion the one-line-per-completion table keeps in a narrow terminal."""
CHAIN_SHOWN = ("run", "role", *TASK_COLUMNS, "proposed_task")
"""Columns of a proposal that the chain view shows once, in its header, not per proposal."""
NUMERIC = ("step", "lvl", "reward", "adv")
PIPED_WIDTH = 200
"""Columns of the output when stdout is not a terminal (and COLUMNS is not set)."""

EXAMPLES = """\
examples:
  selfplay transcripts RUN --env countdown --level 2 --steps 100:
  selfplay transcripts RUN --behaviour self_correction_verified --group --limit 5
  selfplay transcripts RUN --equal-reward-groups --steps 200: --group
  selfplay transcripts RUN --reward '<=0' --json | jq -r .completion
  selfplay transcripts RUN --reward=-1:0.5      (a value starting with - needs the =)
  selfplay transcripts RUN --diff countdown/0/2/17
  selfplay transcripts RUN --role challenger --status unsafe --status invalid
  selfplay transcripts RUN --chain arithmetic/proposed/1/c2bf81738db4
"""


def register(subparsers) -> None:
    """Add the ``transcripts`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "transcripts",
        help="find and read a run's completions: filter by step, env, level, behaviour, reward",
        description="Read the completions of a run that matter: one row per completion (default), "
        "whole GRPO groups (--group), one task across training (--diff), or one proposed task "
        "through self-play (--chain). Filters combine (all must hold); a filter on a column a "
        "role does not have (--behaviour on challenger rows, --status on solver rows) does not "
        "match its rows. --json writes JSON lines for scripts instead of tables.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help="run folder (the one holding transcripts/)")
    p.add_argument(
        "--steps", metavar="A:B", help="steps A to B, both included; A: and :B are open; N is one"
    )
    p.add_argument(
        "--env", action="append", metavar="ENV", help="environment (repeat or comma-separate: any)"
    )
    p.add_argument(
        "--level", action="append", metavar="L", help="difficulty level (repeat or comma-separate)"
    )
    p.add_argument(
        "--behaviour",
        action="append",
        metavar="TAG",
        help=f"a tag that is true, or a clarify outcome (repeat: all of them): {', '.join(BEHAVIOURS)}",
    )
    p.add_argument(
        "--reward",
        metavar="RANGE",
        help="total reward in LO:HI (both included; LO: and :HI open), or a comparison such as "
        "'>0.5', '<=0', '==1'",
    )
    p.add_argument(
        "--equal-reward-groups",
        action="store_true",
        help="only groups whose completions all got the same reward (zero advantage: no signal)",
    )
    p.add_argument(
        "--role",
        action="append",
        metavar="ROLE",
        help="solver, eval, challenger, attempt, ... (repeat or comma-separate; default: all "
        "present)",
    )
    p.add_argument("--task-id", metavar="ID", help="only this task")
    p.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="only Challenger proposals with this status (repeat or comma-separate: any): "
        f"{', '.join(PROPOSAL_STATUSES)}; other roles' rows never match",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N rows (groups with --group, steps with --diff and --chain); 0 for all "
        f"(default: {DEFAULT_LIMIT})",
    )
    view = p.add_mutually_exclusive_group()
    view.add_argument(
        "--group",
        action="store_true",
        help="show each matching group whole: the task once, then every completion in full "
        "(* marks those that match --behaviour/--reward/--status)",
    )
    view.add_argument(
        "--diff",
        metavar="TASK_ID",
        help="one task across training: per step the mean reward, solve rate and answers, then "
        "the completions",
    )
    view.add_argument(
        "--chain",
        metavar="TASK_ID",
        help="one proposed task through self-play: the Challenger's proposal (status, solve "
        "rate, reward terms), the Solver attempts that rated it, then the Solver's training "
        "rows on it by step; with --json its rows in that order",
    )
    p.add_argument("--json", action="store_true", help="JSON lines on stdout instead of tables")
    p.set_defaults(func=cmd_transcripts)


def cmd_transcripts(args: argparse.Namespace) -> None:
    """Filter a run's transcripts and show them as the chosen view; files that cannot be
    read are left out, named on one warning line on stderr."""
    if args.limit < 0:
        raise _usage(f"--limit {args.limit}: expected 0 (all) or a positive number")
    for view in ("diff", "chain"):
        named = getattr(args, view)
        if named and args.task_id and named != args.task_id:
            raise _usage(f"--task-id {args.task_id!r} and --{view} {named!r} name different tasks")
    f = parse_filters(
        steps=args.steps,
        env=args.env,
        level=args.level,
        behaviour=args.behaviour,
        reward=args.reward,
        equal_reward_groups=args.equal_reward_groups,
        role=args.role,
        task_id=args.diff or args.chain or args.task_id,
        status=args.status,
    )
    limit = args.limit or None
    skipped = Skipped()
    try:
        if args.chain:
            show_chain(args.run, f, limit, args.json, skipped)
            return
        show = show_diff if args.diff else show_groups if args.group else show_rows
        with_transcripts(args.run, f, lambda d: show(d, f, d.total, limit, args.json), skipped)
    finally:  # also when the view fails after a read skipped something
        if skipped:
            print(f"selfplay transcripts: warning: {skipped.message()}", file=sys.stderr)


def show_rows(dataset: Transcripts, f: Filters, total: int, limit: int | None, as_json: bool):
    """One line per matching completion, then "N of M rows matched"."""
    columns = None if as_json else [c for c in ROW_VIEW if c in dataset.schema.names]
    hits = match(dataset, f)
    # Only the files holding the first ``limit`` matches are read in full.
    shown = fetch(dataset, f, hits.head(limit) if limit else hits, columns)
    shown = _with_ints(shown.head(limit) if limit else shown, dataset.schema)
    if as_json:
        _write_json(_records(shown))
        return
    console = _console()
    if len(shown):
        console.print(_row_table(shown, console.width))
    console.print(_footer(len(hits), total, len(shown)))


def show_groups(dataset: Transcripts, f: Filters, total: int, limit: int | None, as_json: bool):
    """Each group with a matching completion, whole: its task once, then every completion."""
    hits = match(dataset, f)
    keys = hits.drop_duplicates(list(GROUP_KEYS))
    shown = keys.head(limit) if limit else keys
    frame = whole_groups(dataset, f, shown) if len(shown) else None
    groups = group_objects(_with_ints(frame, dataset.schema)) if frame is not None else []
    if as_json:
        _write_json(groups)
        return
    console = _console()
    for g in groups:
        _print_group(console, g, marked=f.by_row)
    console.print(
        f"{len(shown)} of {len(keys)} matching groups shown; {len(hits)} of {total} rows matched"
    )


def show_diff(dataset: Transcripts, f: Filters, total: int, limit: int | None, as_json: bool):
    """One task across steps: a summary line per step, then each step's completions."""
    steps = step_objects(_with_ints(select(dataset, f), dataset.schema))
    shown = steps[:limit] if limit else steps
    if as_json:
        _write_json(shown)
        return
    console = _console()
    matched = sum(s["n"] for s in steps)
    if not steps:
        console.print(f"task {f.task_id!r}: 0 of {total} rows matched")
        return
    first = steps[0]
    console.print(_text(f"task {f.task_id}  ({first.get('env')} level {first.get('difficulty')})"))
    console.print(_text(f"prompt: {first.get('prompt')}\nanswer: {first.get('answer')}"))
    console.print(_diff_table(steps))
    _print_steps(console, shown)
    console.print(f"{len(shown)} of {len(steps)} steps shown; {matched} of {total} rows matched")


def show_chain(run_dir: str | Path, f: Filters, limit: int | None, as_json: bool, skipped: Skipped):
    """One proposed task: its proposals, the attempts that rated it, its training steps."""
    links, total = chain_rows(run_dir, f, skipped)
    rows = [row for role in CHAIN_ROLES for row in links[role]]
    if not rows:
        raise _no_chain(f)
    proposals, attempts, trained = (links[role] for role in CHAIN_ROLES)
    rated, training = steps_of(attempts), steps_of(trained)
    shown = (rated + training)[:limit] if limit else rated + training
    if as_json:  # every proposal, then the rows of the steps shown
        steps = {(s["step"], s["role"]) for s in shown}
        _write_json(proposals + [r for r in attempts + trained if (r["step"], r["role"]) in steps])
        return
    first = rows[0]
    task = next(iter(attempts + trained), None)  # their prompt is the task's
    prompt = task["prompt"] if task else first.get("proposed_task")
    answer = next((r.get("answer") for r in rows if r.get("answer") is not None), None)
    console = _console()
    console.print(_text(f"task {f.task_id}  ({first.get('env')} level {first.get('difficulty')})"))
    console.print(_text(f"prompt: {prompt}\nanswer: {answer}"))
    console.line()
    console.print(_text(f"proposed: {_count(len(proposals), 'proposal')}"), style="bold underline")
    for row in proposals:
        label = f"step {row['step']} · group {row['group']}"
        _print_completion(console, 0, _drop(row, CHAIN_SHOWN), marked=False, label=label)
    correct = sum(map(_correct, attempts))
    heading = f"rated: {_count(len(attempts), 'attempt')}, {correct} correct"
    console.print(_text(heading), style="bold underline")
    if rated:
        console.print(_diff_table(rated))
    heading = f"trained: {_count(len(trained), 'solver row')} in {_count(len(training), 'step')}"
    console.print(_text(heading), style="bold underline")
    if training:
        console.print(_diff_table(training))
    _print_steps(console, shown)
    console.print(
        f"{len(shown)} of {len(rated) + len(training)} steps shown; "
        f"{len(rows)} of {total} rows matched"
    )


def group_objects(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per group: its keys, the task fields all its completions share, and
    ``completions`` (the other columns).

    A training group is one task, so every task field is shared; a Challenger group is one
    prompt's proposals, each its own task, so ``task_id``, ``answer`` and ``difficulty``
    stay with each completion there.
    """
    keys = list(GROUP_KEYS)
    task = [c for c in TASK_COLUMNS if c in frame.columns]
    groups: list[list[dict[str, Any]]] = []
    for row in _records(frame):
        if not groups or any(groups[-1][0][k] != row[k] for k in keys):
            groups.append([])
        groups[-1].append(row)
    out = []
    for rows in groups:
        shared = keys + [c for c in task if all(r[c] == rows[0][c] for r in rows)]
        head = {c: rows[0][c] for c in shared}
        out.append({**head, "completions": [_drop(r, shared) for r in rows]})
    return out


def step_objects(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of one task by (step, role): the task once, mean reward, solve rate, answers, rows."""
    return steps_of(_records(frame))


def steps_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``step_objects`` of rows already read as dicts."""
    by_step: dict[tuple, list[dict[str, Any]]] = {}
    for row in records:
        by_step.setdefault((row["step"], row["role"]), []).append(row)
    out = []
    for (step, role), rows in by_step.items():
        task = {c: rows[0][c] for c in TASK_COLUMNS if c in rows[0]}
        rewards = [r["reward"] for r in rows if r.get("reward") is not None]
        out.append(
            {
                "step": step,
                "role": role,
                **task,
                "n": len(rows),
                "mean_reward": sum(rewards) / len(rewards) if rewards else None,
                "solve_rate": sum(map(_correct, rows)) / len(rows),
                "answers": dict(Counter(_answer(r) for r in rows).most_common()),
                "completions": [_drop(r, ("step", "role", *TASK_COLUMNS)) for r in rows],
            }
        )
    return out


def _correct(row: dict[str, Any]) -> bool:
    return (row.get("verdict_score") or 0) >= 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _drop(row: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


def _answer(row: dict[str, Any]) -> str:
    if row.get("proposal_status") is not None:  # a proposal of the task, not an answer
        return f"(proposal {row['proposal_status']})"
    parsed = row.get("verdict_parsed")
    return str(parsed) if parsed is not None else f"({row.get('verdict_kind')})"


# -- rendering ------------------------------------------------------------------------------


def _console():
    from rich.console import Console

    # Piped into less, grep or a file, lines are not cut to rich's default of 80 columns.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=PIPED_WIDTH if piped else None)


def _text(text: str):
    from rich.text import Text

    return Text(text)  # never markup: completions hold brackets


def _row_table(frame: pd.DataFrame, width: int):
    """One line per completion; the completion gets what the other columns leave of ``width``."""
    from rich import box
    from rich.table import Table

    with_role = "role" in frame.columns and frame["role"].nunique() > 1
    headers = ["step", *(["role"] if with_role else []), "env", "lvl", "task", "reward", "adv"]
    headers += ["verdict", "tags"]
    records, rows = _records(frame), []
    for row in records:
        cells = [row.get("step"), *([row.get("role")] if with_role else [])]
        cells += [row.get("env"), row.get("difficulty"), row.get("task_id")]
        cells += [_num(row.get("reward")), _num(row.get("advantage")), _verdict(row)]
        rows.append([*("" if c is None else str(c) for c in cells), ", ".join(_tags(row))])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    room = max(MIN_COMPLETION, width - sum(widths) - 3 * len(widths))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header in headers:
        table.add_column(header, justify="right" if header in NUMERIC else "left")
    table.add_column("completion", no_wrap=True)
    for cells, row in zip(rows, records, strict=True):
        table.add_row(*map(_text, cells), _text(_short(row.get("completion"), room)))
    return table


def _diff_table(steps: list[dict[str, Any]]):
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("step", "role", "n", "mean reward", "solved", "answers"):
        table.add_column(header, justify="left" if header in ("role", "answers") else "right")
    for s in steps:
        answers = "  ".join(f"{a} ×{n}" for a, n in s["answers"].items())
        cells = [s["step"], s["role"], s["n"], _num(s["mean_reward"]), f"{s['solve_rate']:.0%}"]
        table.add_row(*(_text(str(c)) for c in [*cells, answers]))
    return table


def _print_steps(console, steps: list[dict[str, Any]]) -> None:
    """The completions of each of ``steps`` (from ``steps_of``), under a rule per step."""
    for s in steps:
        console.rule(_text(f"step {s['step']} · {s['role']}"))
        for i, row in enumerate(s["completions"]):
            _print_completion(console, i, row, marked=False)


def _print_group(console, group: dict[str, Any], marked: bool) -> None:
    title = f"step {group['step']} · {group['role']} · group {group['group']}"
    title += f" · {group.get('env')}"
    if group.get("difficulty") is not None:  # not in a Challenger group: each proposal has its own
        title += f" level {group['difficulty']}"
    if group.get("task_id") is not None:
        title += f" · {group['task_id']}"
    console.rule(_text(title))
    lines = [f"prompt: {group.get('prompt')}"]
    lines += [f"answer: {group['answer']}"] if group.get("answer") is not None else []
    console.print(_text("\n".join(lines)))
    for i, row in enumerate(group["completions"]):
        _print_completion(console, i, row, marked)


def _print_completion(
    console, i: int, row: dict[str, Any], marked: bool, label: str | None = None
) -> None:
    """A completion's scores on one line, then its full text indented.

    ``label`` replaces the ``#i`` that starts the line. A proposal (a row with a
    ``proposal_status``) shows its status, task and solve rate where others show a verdict.
    """
    from rich.padding import Padding

    parts = [label or f"#{i}{'*' if marked and row.get('matched') else ''}"]
    proposal = row.get("proposal_status") is not None
    if proposal:
        parts += _proposal_parts(row)
    components = [k for k in row if k.startswith("reward_") and row[k] is not None]
    rewards = ", ".join(f"{k.removeprefix('reward_')} {_num(row[k])}" for k in components)
    parts.append(f"reward {_num(row.get('reward'))}" + (f" ({rewards})" if rewards else ""))
    if "advantage" in row:  # attempt rows have none: they are not trained on
        parts.append(f"advantage {_num(row['advantage'])}")
    parsed = row.get("verdict_parsed")
    if not proposal:
        verdict = f"verdict {_verdict(row)}"
        parts.append(verdict + (f" parsed {parsed!r}" if parsed is not None else ""))
    if tags := _tags(row):
        parts.append("tags " + ", ".join(tags))
    console.print(_text(" · ".join(parts)), style="bold")
    console.print(Padding(_text(str(row.get("completion"))), (0, 0, 0, 4), expand=False))
    console.line()


def _proposal_parts(row: dict[str, Any]) -> list[str]:
    """A proposal's status (and why), the task it gave and how often the Solver solved it."""
    parts = [f"proposal {_status(row)}"]
    if row.get("task_id") is not None:
        parts.append(f"task {row['task_id']}")
    if row.get("proposed_task") is not None:
        answer = row.get("answer")
        parts.append(repr(row["proposed_task"]) + (f" = {answer}" if answer is not None else ""))
    if row.get("solve_rate") is not None:
        attempts = row.get("attempts")
        parts.append(f"solve rate {row['solve_rate']:.0%}" + (f" of {attempts}" * bool(attempts)))
    return parts


def _status(row: dict[str, Any]) -> str:
    detail = row.get("proposal_detail")
    return f"{row.get('proposal_status')}" + (f" ({detail})" if detail else "")


def _verdict(row: dict[str, Any]) -> str:
    """The verdict's score and reason; for a proposal, its status and why."""
    if row.get("proposal_status") is not None:
        return _status(row)
    score = row.get("verdict_score")
    return f"{_num(score)} {row.get('verdict_reason') or ''}".strip()


def _tags(row: dict[str, Any]) -> list[str]:
    """The tags that are true, and the clarify outcome unless it is the common one."""
    tags = [t for t in TAGS if row.get(t) is True]
    outcome = row.get("clarify_outcome")
    return tags + ([outcome] if outcome not in (None, "true_negative") else [])


def _num(value: Any) -> str:
    """At most 3 decimals, trailing zeros dropped: 2.1, -0.724, and 0 for float noise."""
    if value is None:
        return "—"
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _short(text: str | None, limit: int) -> str:
    text = (text or "").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _footer(matched: int, total: int, shown: int) -> str:
    more = f" (showing {shown}; --limit 0 for all)" if shown < matched else ""
    return f"{matched} of {total} rows matched{more}"


# -- JSON -----------------------------------------------------------------------------------


def _with_ints(frame: pd.DataFrame, schema) -> pd.DataFrame:
    """``frame`` with the integer columns pandas made float (they hold nulls: ``difficulty`` of
    rejected proposals, a column one role lacks) as integers again, for display and JSON."""
    import pandas as pd
    import pyarrow as pa

    ints = {f.name for f in schema if pa.types.is_integer(f.type)}
    floated = [c for c in frame.columns if c in ints and frame[c].dtype.kind == "f"]
    if not floated:
        return frame
    return frame.assign(**{c: pd.array(frame[c], dtype="Int64") for c in floated})


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values, NaN and NA as None."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    import pandas as pd

    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _write_json(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
