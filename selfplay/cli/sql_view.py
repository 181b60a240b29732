"""`selfplay transcripts RUN --sql QUERY`: a DuckDB query over the run, printed as a table
(``--json``: JSON lines, ``--csv``: CSV), at most ``--limit`` rows.

The views and what a query may do are ``selfplay.transcripts.sql``'s. The query replaces the
filters and the other views: combined with them it is a usage error (filter in its WHERE).
Nothing heavy is imported at module level: DuckDB only when a query runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from selfplay.cli import terminal
from selfplay.errors import UsageError
from selfplay.transcripts.sql import INSTALL, import_duckdb, run_sql, run_tables

if TYPE_CHECKING:
    import pyarrow as pa

NOT_WITH_SQL = (
    "steps",
    "env",
    "level",
    "behaviour",
    "reward",
    "equal_reward_groups",
    "role",
    "task_id",
    "status",
    "group",
    "diff",
    "chain",
)
"""The options of ``selfplay transcripts`` that a query replaces (its WHERE, its GROUP BY)."""
CELL_CHARS = 200
"""Characters of a text cell the table keeps (``--json``/``--csv`` keep every one)."""

SQL_HELP = (
    "a DuckDB query over the run instead of the filters: views transcripts (every row, all "
    "steps and roles), metrics (a row per metrics.jsonl record; quote namespaced columns: "
    '"accuracy/arithmetic"; the training record at step s+1 is that of transcript step s) '
    "and, after `selfplay analyze`, evals (run = the eval's label). Read-only: a query "
    f"reads these views, no other file, and writes none. Needs DuckDB: {INSTALL}"
)


def show_sql(args: argparse.Namespace) -> None:
    """Run ``args.sql`` over ``args.run`` and print its rows (``--limit``, ``--json``, ``--csv``)."""
    used = [f"--{name.replace('_', '-')}" for name in NOT_WITH_SQL if getattr(args, name)]
    if used:
        raise UsageError(
            f"--sql cannot be combined with {', '.join(used)}: filter and group in the query"
        )
    if not args.sql.strip():
        raise UsageError("--sql: the query is empty")
    import_duckdb()  # before reading anything: a missing extra is the first thing to say
    tables = run_tables(args.run)
    try:
        result = run_sql(tables, args.sql)
    finally:
        for note in tables.notes():
            print(f"selfplay transcripts: warning: {note}", file=sys.stderr)
    limit = args.limit or None
    shown = result.slice(0, limit) if limit else result
    columns = unique_names(result.column_names)
    rows = [
        [plain(v) for v in row] for row in zip(*(c.to_pylist() for c in shown.columns), strict=True)
    ]
    cut = f"showing {len(rows)} of {result.num_rows} rows; --limit 0 for all"
    if args.json:
        terminal.write_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif args.csv:
        write_csv(result.column_names, rows)
    else:
        console = terminal.console()
        if result.num_columns:
            console.print(result_view(shown.schema, rows, console.width))
        more = f" ({cut})" if len(rows) < result.num_rows else ""
        console.print(
            terminal.text(f"{result.num_rows} row{'' if result.num_rows == 1 else 's'}{more}")
        )
        return
    if len(rows) < result.num_rows:
        print(f"selfplay transcripts: warning: {cut}", file=sys.stderr)


def unique_names(names: list[str]) -> list[str]:
    """``names`` with a repeated one suffixed ``_1``, ``_2``, ... (a JOIN's two ``step``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


def result_view(schema: pa.Schema, rows: list[list[Any]], width: int):
    """``rows`` as a table (numbers right-aligned, nulls as NULL, long text cut); where the
    table would not fit in ``width`` columns, one block per row instead, a line per column."""
    import pyarrow as pa
    from rich import box
    from rich.console import Group
    from rich.rule import Rule
    from rich.table import Table

    cells = [[cell(v) for v in row] for row in rows]
    names = schema.names
    natural = sum(max([len(n)] + [len(r[i]) for r in cells]) + 3 for i, n in enumerate(names))
    if natural > width:
        blocks: list[Any] = []
        for i, row in enumerate(cells, 1):
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold")
            grid.add_column()
            for name, value in zip(names, row, strict=True):
                grid.add_row(terminal.text(name), terminal.text(value))
            blocks += [Rule(terminal.text(f"row {i}")), grid]
        return Group(*blocks)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for field in schema:
        kind = field.type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        numeric = numeric or pa.types.is_decimal(kind)
        table.add_column(terminal.text(field.name), justify="right" if numeric else "left")
    for row in cells:
        table.add_row(*map(terminal.text, row))
    return table


def cell(value: Any) -> str:
    """A value as a table cell: NULL, a number to 6 significant digits, text on one line."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    value = str(value).replace("\n", "\\n")
    return value if len(value) <= CELL_CHARS else value[: CELL_CHARS - 1] + "…"


def plain(value: Any) -> Any:
    """A value as JSON can hold it: Decimal as int or float, NaN and infinities as None,
    dates and times as ISO text, inside lists and structs too."""
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def write_csv(columns: list[str], rows: list[list[Any]]) -> None:
    """``rows`` as CSV with a header line on stdout: nulls empty, lists and structs as JSON."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value
