"""`selfplay transcripts RUN`: the terminal views of a run's completions, and the subcommand.

The rows come from the query layer (``selfplay.transcripts``): one line per completion (the
default), whole GRPO groups (``--group``), one task across training (``--diff``) or one
proposed task through self-play (``--chain``); ``--json`` writes JSON lines for scripts
instead. Files that cannot be read are left out and named on one warning line on stderr.
``--sql`` runs a DuckDB query over the run instead (``selfplay.cli.sql_view``).

Nothing heavy is imported at module level: ``register`` runs for every ``selfplay --help``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfplay.cli import terminal
from selfplay.cli.sql_view import SQL_HELP, show_sql
from selfplay.errors import UsageError
from selfplay.transcripts.filters import BEHAVIOURS, Filters, parse_filters
from selfplay.transcripts.query import (
    CHAIN_ROLES,
    MATCHED,
    chain_rows,
    fetch,
    group_objects,
    is_correct,
    match,
    no_chain,
    records,
    select,
    step_objects,
    steps_of,
    whole_groups,
    with_ints,
    without,
)
from selfplay.transcripts.reading import Skipped, Transcripts, with_transcripts
from selfplay.transcripts.schema import (
    ADVANTAGE,
    ANSWER,
    ATTEMPTS,
    CLARIFY_OUTCOME,
    COMPLETION,
    DIFFICULTY,
    ENV,
    GROUP,
    GROUP_KEYS,
    PROMPT,
    PROPOSAL_DETAIL,
    PROPOSAL_STATUS,
    PROPOSAL_STATUSES,
    PROPOSED_TASK,
    REWARD,
    REWARD_PREFIX,
    ROLE,
    ROLES,
    RUN,
    SOLVE_RATE,
    STEP,
    TAGS,
    TASK_COLUMNS,
    TASK_ID,
    TRUE_NEGATIVE,
    VERDICT_PARSED,
    VERDICT_REASON,
    VERDICT_SCORE,
    is_reward_component,
)

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_LIMIT = 20
"""Rows (groups, steps) shown unless ``--limit`` says otherwise."""

ROW_VIEW = (
    *GROUP_KEYS,
    ENV,
    DIFFICULTY,
    TASK_ID,
    REWARD,
    ADVANTAGE,
    VERDICT_SCORE,
    VERDICT_REASON,
    PROPOSAL_STATUS,
    PROPOSAL_DETAIL,
    *TAGS,
    CLARIFY_OUTCOME,
    COMPLETION,
)
"""The columns the default view reads (the prompt and answer are left on disk)."""
MIN_COMPLETION = 24
"""Characters of a completion the one-line-per-completion table keeps in a narrow terminal."""
CHAIN_SHOWN = (RUN, ROLE, *TASK_COLUMNS, PROPOSED_TASK)
"""Columns of a proposal that the chain view shows once, in its header, not per proposal."""
NUMERIC = ("step", "lvl", "reward", "adv")
"""Headers of the row table whose cells are right-aligned."""

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
  selfplay transcripts RUN --sql "SELECT env, avg(reward) FROM transcripts GROUP BY env"
  selfplay transcripts RUN --sql 'SELECT step, "accuracy/arithmetic" FROM metrics' --csv
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
        "match its rows. --json writes JSON lines for scripts instead of tables. --sql runs a "
        "DuckDB query over the run's transcripts, metrics and evals instead, for what the "
        "filters cannot say (GROUP BY, JOIN).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help="run folder (the one holding transcripts/)")
    _add_filters(p)
    _add_views(p)
    p.add_argument("--sql", metavar="QUERY", help=SQL_HELP)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="JSON lines on stdout instead of tables")
    out.add_argument("--csv", action="store_true", help="with --sql: CSV on stdout, a header first")
    p.set_defaults(func=cmd_transcripts)


def _add_filters(p: argparse.ArgumentParser) -> None:
    """The options that choose rows: all must hold."""
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
        help=f"{', '.join(ROLES)}, ... (repeat or comma-separate; default: all present)",
    )
    p.add_argument("--task-id", metavar="ID", help="only this task")
    p.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="only Challenger proposals with this status (repeat or comma-separate: any): "
        f"{', '.join(PROPOSAL_STATUSES)}; other roles' rows never match",
    )


def _add_views(p: argparse.ArgumentParser) -> None:
    """The options that choose how the rows are shown, and how many."""
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


def cmd_transcripts(args: argparse.Namespace) -> None:
    """Filter a run's transcripts and show them as the chosen view; files that cannot be
    read are left out, named on one warning line on stderr."""
    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: expected 0 (all) or a positive number")
    if args.sql is not None:
        show_sql(args)
        return
    if args.csv:
        raise UsageError("--csv is for the rows of a --sql query; the views have --json")
    for view in ("diff", "chain"):
        named = getattr(args, view)
        if named and args.task_id and named != args.task_id:
            raise UsageError(
                f"--task-id {args.task_id!r} and --{view} {named!r} name different tasks"
            )
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
    shown = with_ints(shown.head(limit) if limit else shown, dataset.schema)
    if as_json:
        terminal.write_json(records(shown))
        return
    console = terminal.console()
    if len(shown):
        console.print(_row_table(shown, console.width))
    console.print(_footer(len(hits), total, len(shown)))


def show_groups(dataset: Transcripts, f: Filters, total: int, limit: int | None, as_json: bool):
    """Each group with a matching completion, whole: its task once, then every completion."""
    hits = match(dataset, f)
    keys = hits.drop_duplicates(list(GROUP_KEYS))
    shown = keys.head(limit) if limit else keys
    frame = whole_groups(dataset, f, shown) if len(shown) else None
    groups = group_objects(with_ints(frame, dataset.schema)) if frame is not None else []
    if as_json:
        terminal.write_json(groups)
        return
    console = terminal.console()
    for g in groups:
        _print_group(console, g, marked=f.by_row)
    console.print(
        f"{len(shown)} of {len(keys)} matching groups shown; {len(hits)} of {total} rows matched"
    )


def show_diff(dataset: Transcripts, f: Filters, total: int, limit: int | None, as_json: bool):
    """One task across steps: a summary line per step, then each step's completions."""
    steps = step_objects(with_ints(select(dataset, f), dataset.schema))
    shown = steps[:limit] if limit else steps
    if as_json:
        terminal.write_json(shown)
        return
    console = terminal.console()
    matched = sum(s["n"] for s in steps)
    if not steps:
        console.print(f"task {f.task_id!r}: 0 of {total} rows matched")
        return
    first = steps[0]
    console.print(
        terminal.text(f"task {f.task_id}  ({first.get(ENV)} level {first.get(DIFFICULTY)})")
    )
    console.print(terminal.text(f"prompt: {first.get(PROMPT)}\nanswer: {first.get(ANSWER)}"))
    console.print(_diff_table(steps))
    _print_steps(console, shown)
    console.print(f"{len(shown)} of {len(steps)} steps shown; {matched} of {total} rows matched")


def show_chain(run_dir: str | Path, f: Filters, limit: int | None, as_json: bool, skipped: Skipped):
    """One proposed task: its proposals, the attempts that rated it, its training steps."""
    links, total = chain_rows(run_dir, f, skipped)
    rows = [row for role in CHAIN_ROLES for row in links[role]]
    if not rows:
        raise no_chain(f)
    proposals, attempts, trained = (links[role] for role in CHAIN_ROLES)
    rated, training = steps_of(attempts), steps_of(trained)
    shown = (rated + training)[:limit] if limit else rated + training
    if as_json:  # every proposal, then the rows of the steps shown
        steps = {(s[STEP], s[ROLE]) for s in shown}
        terminal.write_json(
            proposals + [r for r in attempts + trained if (r[STEP], r[ROLE]) in steps]
        )
        return
    first = rows[0]
    task = next(iter(attempts + trained), None)  # their prompt is the task's
    prompt = task[PROMPT] if task else first.get(PROPOSED_TASK)
    answer = next((r.get(ANSWER) for r in rows if r.get(ANSWER) is not None), None)
    console = terminal.console()
    console.print(
        terminal.text(f"task {f.task_id}  ({first.get(ENV)} level {first.get(DIFFICULTY)})")
    )
    console.print(terminal.text(f"prompt: {prompt}\nanswer: {answer}"))
    console.line()
    console.print(
        terminal.text(f"proposed: {_count(len(proposals), 'proposal')}"), style="bold underline"
    )
    for row in proposals:
        label = f"step {row[STEP]} · group {row[GROUP]}"
        _print_completion(console, 0, without(row, CHAIN_SHOWN), marked=False, label=label)
    correct = sum(map(is_correct, attempts))
    heading = f"rated: {_count(len(attempts), 'attempt')}, {correct} correct"
    console.print(terminal.text(heading), style="bold underline")
    if rated:
        console.print(_diff_table(rated))
    heading = f"trained: {_count(len(trained), 'solver row')} in {_count(len(training), 'step')}"
    console.print(terminal.text(heading), style="bold underline")
    if training:
        console.print(_diff_table(training))
    _print_steps(console, shown)
    console.print(
        f"{len(shown)} of {len(rated) + len(training)} steps shown; "
        f"{len(rows)} of {total} rows matched"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# -- rendering ------------------------------------------------------------------------------


def _row_table(frame: pd.DataFrame, width: int):
    """One line per completion; the completion gets what the other columns leave of ``width``."""
    from rich import box
    from rich.table import Table

    with_role = ROLE in frame.columns and frame[ROLE].nunique() > 1
    headers = ["step", *(["role"] if with_role else []), "env", "lvl", "task", "reward", "adv"]
    headers += ["verdict", "tags"]
    read, rows = records(frame), []
    for row in read:
        cells = [row.get(STEP), *([row.get(ROLE)] if with_role else [])]
        cells += [row.get(ENV), row.get(DIFFICULTY), row.get(TASK_ID)]
        cells += [_num(row.get(REWARD)), _num(row.get(ADVANTAGE)), _verdict(row)]
        rows.append([*("" if c is None else str(c) for c in cells), ", ".join(_tags(row))])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    room = max(MIN_COMPLETION, width - sum(widths) - 3 * len(widths))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header in headers:
        table.add_column(header, justify="right" if header in NUMERIC else "left")
    table.add_column("completion", no_wrap=True)
    for cells, row in zip(rows, read, strict=True):
        table.add_row(*map(terminal.text, cells), terminal.text(_short(row.get(COMPLETION), room)))
    return table


def _diff_table(steps: list[dict[str, Any]]):
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("step", "role", "n", "mean reward", "solved", "answers"):
        table.add_column(header, justify="left" if header in ("role", "answers") else "right")
    for s in steps:
        answers = "  ".join(f"{a} ×{n}" for a, n in s["answers"].items())
        cells = [s[STEP], s[ROLE], s["n"], _num(s["mean_reward"]), f"{s['solve_rate']:.0%}"]
        table.add_row(*(terminal.text(str(c)) for c in [*cells, answers]))
    return table


def _print_steps(console, steps: list[dict[str, Any]]) -> None:
    """The completions of each of ``steps`` (from ``steps_of``), under a rule per step."""
    for s in steps:
        console.rule(terminal.text(f"step {s[STEP]} · {s[ROLE]}"))
        for i, row in enumerate(s["completions"]):
            _print_completion(console, i, row, marked=False)


def _print_group(console, group: dict[str, Any], marked: bool) -> None:
    title = f"step {group[STEP]} · {group[ROLE]} · group {group[GROUP]}"
    title += f" · {group.get(ENV)}"
    if group.get(DIFFICULTY) is not None:  # not in a Challenger group: each proposal has its own
        title += f" level {group[DIFFICULTY]}"
    if group.get(TASK_ID) is not None:
        title += f" · {group[TASK_ID]}"
    console.rule(terminal.text(title))
    lines = [f"prompt: {group.get(PROMPT)}"]
    lines += [f"answer: {group[ANSWER]}"] if group.get(ANSWER) is not None else []
    console.print(terminal.text("\n".join(lines)))
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

    parts = [label or f"#{i}{'*' if marked and row.get(MATCHED) else ''}"]
    proposal = row.get(PROPOSAL_STATUS) is not None
    if proposal:
        parts += _proposal_parts(row)
    components = [k for k in row if is_reward_component(k) and row[k] is not None]
    rewards = ", ".join(f"{k.removeprefix(REWARD_PREFIX)} {_num(row[k])}" for k in components)
    parts.append(f"reward {_num(row.get(REWARD))}" + (f" ({rewards})" if rewards else ""))
    if ADVANTAGE in row:  # attempt rows have none: they are not trained on
        parts.append(f"advantage {_num(row[ADVANTAGE])}")
    parsed = row.get(VERDICT_PARSED)
    if not proposal:
        verdict = f"verdict {_verdict(row)}"
        parts.append(verdict + (f" parsed {parsed!r}" if parsed is not None else ""))
    if tags := _tags(row):
        parts.append("tags " + ", ".join(tags))
    console.print(terminal.text(" · ".join(parts)), style="bold")
    console.print(Padding(terminal.text(str(row.get(COMPLETION))), (0, 0, 0, 4), expand=False))
    console.line()


def _proposal_parts(row: dict[str, Any]) -> list[str]:
    """A proposal's status (and why), the task it gave and how often the Solver solved it."""
    parts = [f"proposal {_status(row)}"]
    if row.get(TASK_ID) is not None:
        parts.append(f"task {row[TASK_ID]}")
    if row.get(PROPOSED_TASK) is not None:
        answer = row.get(ANSWER)
        parts.append(repr(row[PROPOSED_TASK]) + (f" = {answer}" if answer is not None else ""))
    if row.get(SOLVE_RATE) is not None:
        attempts = row.get(ATTEMPTS)
        parts.append(f"solve rate {row[SOLVE_RATE]:.0%}" + (f" of {attempts}" * bool(attempts)))
    return parts


def _status(row: dict[str, Any]) -> str:
    detail = row.get(PROPOSAL_DETAIL)
    return f"{row.get(PROPOSAL_STATUS)}" + (f" ({detail})" if detail else "")


def _verdict(row: dict[str, Any]) -> str:
    """The verdict's score and reason; for a proposal, its status and why."""
    if row.get(PROPOSAL_STATUS) is not None:
        return _status(row)
    score = row.get(VERDICT_SCORE)
    return f"{_num(score)} {row.get(VERDICT_REASON) or ''}".strip()


def _tags(row: dict[str, Any]) -> list[str]:
    """The tags that are true, and the clarify outcome unless it is the common one."""
    tags = [t for t in TAGS if row.get(t) is True]
    outcome = row.get(CLARIFY_OUTCOME)
    return tags + ([outcome] if outcome not in (None, TRUE_NEGATIVE) else [])


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
