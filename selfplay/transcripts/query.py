"""The query layer: the transcript rows of a run that match some filters, read in two passes.

Every completion of a run is one row of ``RUN/transcripts/<role>-step-<step>.parquet``
(``selfplay.transcripts.schema`` names the columns). ``query`` reads them with
``pyarrow.dataset``: files outside the asked roles and steps (with ``status``, all but the
challenger's) are skipped by their names, the other filters are pushed down into the Parquet
scan, and only the asked columns are read (the text columns are most of the bytes). pandas
does the group logic afterwards.

Roles write different columns (a ``challenger`` row is a proposal with its status, solve rate
and reward terms; an ``attempt`` row is a Solver attempt that rated one; a ``solver`` row is a
training completion). The dataset's schema is unified over the files it reads, so a column a
file lacks reads as null there, and a filter on such a column (``behaviour`` on challenger
rows, ``status`` on solver rows) simply does not match them.

``equal_reward_groups`` keeps the groups (same step, role and ``group``) whose completions
all got the same total reward: GRPO gives them zero advantage, so they cost generation and
teach nothing. A group is judged on all its completions, not on the rows the other filters
keep: ``behaviour="verification", equal_reward_groups=True`` is the verifying completions
that sit in such groups.

``chain`` follows one proposed task through self-play: the Challenger's proposals of it,
the Solver attempts that rated it, then the Solver's training rows on it, each role read
with its own columns.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfplay.errors import UsageError
from selfplay.transcripts.filters import (
    Filters,
    all_of,
    columns_used,
    group_expression,
    parse_filters,
    row_expression,
)
from selfplay.transcripts.reading import (
    Skipped,
    Transcripts,
    check_roles,
    transcript_files,
    with_transcripts,
)
from selfplay.transcripts.schema import (
    ATTEMPT,
    CHALLENGER,
    GROUP_KEYS,
    PROPOSAL_STATUS,
    REWARD,
    ROLE,
    SOLVER,
    STEP,
    TASK_COLUMNS,
    VERDICT_KIND,
    VERDICT_PARSED,
    VERDICT_SCORE,
)

if TYPE_CHECKING:
    import pandas as pd

EQUAL_TOLERANCE = 1e-9
"""Totals closer than this count as the same reward (they are sums of the same floats)."""
CHAIN_ROLES = (CHALLENGER, ATTEMPT, SOLVER)
"""The roles ``chain`` follows a task through, in its order: proposed, rated, trained on."""
MATCHED = "matched"
"""The column ``whole_groups`` adds: whether the completion itself passes the row filters."""


def match(dataset: Transcripts, f: Filters) -> pd.DataFrame:
    """(step, role, group, fragment) of every row ``f`` keeps, in step order.

    The first of two passes: one scan of the columns the filters need, so the second
    (``fetch``) can skip the files without a match. ``fragment`` indexes ``dataset.files``.
    """
    import pandas as pd

    used = columns_used(f)
    _require(dataset.schema.names, sorted(used), "filter")
    keys = list(GROUP_KEYS)
    columns = [*keys, *sorted(used - set(keys))]
    # The group filters go down to the scan; the row filters run on what it read, so that
    # the same scan also gives every completion's reward for the equal-reward test.
    table = dataset.read(columns, group_expression(f), with_fragment=True)
    rows = row_expression(f)
    hits = (table if rows is None else table.filter(rows)).select([*keys, "fragment"])
    hits = hits.to_pandas()
    if f.equal_reward_groups:
        equal = _equal_reward_groups(table.select([*keys, REWARD]).to_pandas())
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
    where = all_of([group_expression(f), row_expression(f)])
    frame = dataset.read(read, where, fragments=sorted(set(hits["fragment"]))).to_pandas()
    if f.equal_reward_groups:  # the rows of the groups ``hits`` kept
        frame = _in_groups(frame, hits)
    return frame[wanted].reset_index(drop=True)


def select(dataset: Transcripts, f: Filters, columns: list[str] | None = None) -> pd.DataFrame:
    """Every row of ``dataset`` that ``f`` keeps, with ``columns`` (default all), in step order."""
    return fetch(dataset, f, match(dataset, f), columns)


def _equal_reward_groups(rewards: pd.DataFrame) -> pd.MultiIndex:
    """(step, role, group) of the groups whose completions all got the same total reward."""
    by_group = rewards.groupby(list(GROUP_KEYS), sort=False)[REWARD]
    spread = by_group.max() - by_group.min()
    return spread.index[spread <= EQUAL_TOLERANCE]


def _require(names: list[str], wanted: list[str], what: str) -> None:
    missing = [c for c in wanted if c not in names]
    if missing:
        raise UsageError(
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
        raise no_chain(f)
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
    check_roles(files, f)
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
    return records(with_ints(select(dataset, f), dataset.schema)), dataset.total


def no_chain(f: Filters) -> UsageError:
    """The error for a ``--chain`` task id that no row (the other filters keep) has."""
    others = replace(f, task_id=None) != Filters()
    where = " that the other filters keep" if others else ""
    return UsageError(f"--chain {f.task_id!r}: no transcript row{where} has that task id")


def whole_groups(dataset: Transcripts, f: Filters, keys: pd.DataFrame) -> pd.DataFrame:
    """Every completion of the groups in ``keys`` (rows of ``match``), with ``matched``.

    ``matched`` is whether the completion itself passes ``f``'s row filters (behaviour, reward).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    where = all_of([pc.field(k).isin(sorted(set(keys[k]))) for k in GROUP_KEYS])
    table = dataset.read(filter=where, fragments=sorted(set(keys["fragment"])))
    table = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    rows = row_expression(f)
    matched = set(table.filter(rows).column("_row").to_pylist()) if rows is not None else None
    frame = table.to_pandas()
    frame[MATCHED] = True if matched is None else frame["_row"].isin(matched)
    return _in_groups(frame, keys).drop(columns="_row").reset_index(drop=True)


def _in_groups(frame: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    names = list(GROUP_KEYS)
    inside = pd.MultiIndex.from_frame(frame[names]).isin(pd.MultiIndex.from_frame(keys[names]))
    return frame[inside]


# -- rows as plain objects (for JSON and the views) -----------------------------------------


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
    for row in records(frame):
        if not groups or any(groups[-1][0][k] != row[k] for k in keys):
            groups.append([])
        groups[-1].append(row)
    out = []
    for rows in groups:
        shared = keys + [c for c in task if all(r[c] == rows[0][c] for r in rows)]
        head = {c: rows[0][c] for c in shared}
        out.append({**head, "completions": [without(r, shared) for r in rows]})
    return out


def step_objects(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of one task by (step, role): the task once, mean reward, solve rate, answers, rows."""
    return steps_of(records(frame))


def steps_of(rows_read: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``step_objects`` of rows already read as dicts."""
    by_step: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows_read:
        by_step.setdefault((row[STEP], row[ROLE]), []).append(row)
    out = []
    for (step, role), rows in by_step.items():
        task = {c: rows[0][c] for c in TASK_COLUMNS if c in rows[0]}
        rewards = [r[REWARD] for r in rows if r.get(REWARD) is not None]
        out.append(
            {
                STEP: step,
                ROLE: role,
                **task,
                "n": len(rows),
                "mean_reward": sum(rewards) / len(rewards) if rewards else None,
                "solve_rate": sum(map(is_correct, rows)) / len(rows),
                "answers": dict(Counter(_answer(r) for r in rows).most_common()),
                "completions": [without(r, (STEP, ROLE, *TASK_COLUMNS)) for r in rows],
            }
        )
    return out


def is_correct(row: dict[str, Any]) -> bool:
    """Whether the row's verdict is correct (score 1)."""
    return (row.get(VERDICT_SCORE) or 0) >= 1


def without(row: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``row`` less the columns ``names``."""
    return {k: v for k, v in row.items() if k not in names}


def _answer(row: dict[str, Any]) -> str:
    if row.get(PROPOSAL_STATUS) is not None:  # a proposal of the task, not an answer
        return f"(proposal {row[PROPOSAL_STATUS]})"
    parsed = row.get(VERDICT_PARSED)
    return str(parsed) if parsed is not None else f"({row.get(VERDICT_KIND)})"


def with_ints(frame: pd.DataFrame, schema) -> pd.DataFrame:
    """``frame`` with the integer columns pandas made float (they hold nulls: ``difficulty`` of
    rejected proposals, a column one role lacks) as integers again, for display and JSON."""
    import pandas as pd
    import pyarrow as pa

    ints = {f.name for f in schema if pa.types.is_integer(f.type)}
    floated = [c for c in frame.columns if c in ints and frame[c].dtype.kind == "f"]
    if not floated:
        return frame
    return frame.assign(**{c: pd.array(frame[c], dtype="Int64") for c in floated})


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values, NaN and NA as None."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    import pandas as pd

    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
