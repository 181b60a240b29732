"""SQL over a run folder (``selfplay transcripts RUN --sql``), and its tables as Arrow.

A query sees three views, in an in-memory DuckDB database:

- ``transcripts``: every row of ``RUN/transcripts/*-step-*.parquet``, all roles, the columns
  unified by name over the files (a column some steps lack is null there), as the filters of
  ``selfplay transcripts`` see them (``selfplay.transcripts.schema`` names the columns);
- ``metrics``: one row per record of ``metrics.jsonl``: ``step``, then one column per key, in
  the order keys first appear (quote the namespaced ones: ``"accuracy/arithmetic"``). TRL logs
  a step's training record after its update, so the record at step ``s + 1`` holds the
  metrics of the completions at transcript step ``s``; probe records share steps with them;
- ``evals``: the eval rows of ``RUN/analysis/*/`` (``selfplay analyze``: ``run`` is the
  eval's label, ``base`` or ``trained``), when the run has them.

The run folder cannot be changed by a query: the data reach DuckDB only as Arrow objects
registered from Python, then file system access is switched off and the configuration locked,
so ``COPY``, ``ATTACH``, ``read_parquet``, ``INSTALL`` and the like fail (``DROP VIEW`` and
``CREATE TABLE`` change only the in-memory database). DuckDB is the optional ``sql`` extra,
imported only here, only when a query runs.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfplay.errors import UsageError
from selfplay.transcripts.reading import (
    Skipped,
    metric_records,
    open_transcripts,
    skipped_line_message,
    transcript_files,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

INSTALL = "pip install -e '.[sql]'"
"""The command that installs DuckDB (the ``sql`` extra)."""
TRANSCRIPTS = "transcripts"
METRICS = "metrics"
EVALS = "evals"
METRICS_FILE = "metrics.jsonl"
EVAL_FOLDERS = "analysis/*/eval.json"
"""Where a run keeps its evals (``selfplay analyze``), relative to the run folder."""


@dataclass
class RunTables:
    """A run's rows as Arrow, read lazily from its files: the views a query sees."""

    transcripts: ds.Dataset
    metrics: pa.Table | None = None
    """None when the run has no ``metrics.jsonl``."""
    evals: ds.Dataset | None = None
    """None when the run has no evals."""
    skipped: Skipped = field(default_factory=Skipped)
    """Transcript files left out because they cannot be read."""
    skipped_lines: list[dict] = field(default_factory=list)
    """A truncated last line of ``metrics.jsonl`` left out (``{"file", "line", "error"}``)."""

    def notes(self) -> list[str]:
        """One line per thing left out: a truncated last line of ``metrics.jsonl``, and the
        transcript files that cannot be read."""
        lines = [skipped_line_message(note) for note in self.skipped_lines]
        return lines + ([self.skipped.message()] if self.skipped else [])

    def views(self) -> dict[str, Any]:
        """View name -> its Arrow object, for the views this run has."""
        found = {TRANSCRIPTS: self.transcripts, METRICS: self.metrics, EVALS: self.evals}
        return {name: table for name, table in found.items() if table is not None}


def run_tables(run_dir: str | Path) -> RunTables:
    """The transcripts, metrics and evals of ``run_dir``; a folder without transcripts is a
    ``UsageError``. Transcript files that cannot be read are left out, into ``skipped``."""
    run = Path(run_dir)
    skipped, lines = Skipped(), []
    transcripts = union_dataset([run], skipped)
    metrics = metrics_table(run, lines)
    evals = eval_folders(run)
    return RunTables(
        transcripts, metrics, union_dataset(evals, skipped) if evals else None, skipped, lines
    )


def union_dataset(folders: list[Path], skipped: Skipped) -> ds.Dataset:
    """One dataset over the transcript files of ``folders`` (each holding ``transcripts/``),
    columns unified by name, in folder then step order."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    opened = [open_transcripts(folder, skipped=skipped) for folder in folders]
    try:
        schema = pa.unify_schemas([t.schema for t in opened], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        where = ", ".join(map(str, folders))
        raise UsageError(f"transcripts of {where} disagree on a column's type: {err}") from None
    return ds.dataset([f for t in opened for f in t.files], schema=schema, format="parquet")


def eval_folders(run_dir: str | Path) -> list[Path]:
    """The eval folders of a run (``analysis/<eval>/`` with ``eval.json`` and transcripts)."""
    found = []
    for meta in sorted(Path(run_dir).glob(EVAL_FOLDERS)):
        try:
            transcript_files(meta.parent)
        except UsageError:  # an eval folder without transcripts: nothing to query
            continue
        found.append(meta.parent)
    return found


def metrics_table(run_dir: str | Path, skipped_lines: list[dict] | None = None) -> pa.Table | None:
    """``metrics.jsonl`` as a table, one row per record (None without the file): ``step``,
    then a column per key in the order keys first appear, null in records without it. A key
    whose values mix types (a number here, a string there) holds them as JSON text."""
    import pyarrow as pa

    if not (Path(run_dir) / METRICS_FILE).is_file():
        return None
    records = metric_records(Path(run_dir), [] if skipped_lines is None else skipped_lines)
    keys = list(dict.fromkeys(k for r in records for k in r))
    columns = {}
    for key in keys:
        values = [r.get(key) for r in records]
        try:
            columns[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[key] = pa.array([None if v is None else json.dumps(v) for v in values])
    return pa.table(columns) if columns else pa.table({"step": pa.array([], pa.int64())})


def import_duckdb():
    """The ``duckdb`` module, or a ``UsageError`` that says how to install it."""
    try:
        import duckdb
    except ImportError:
        raise UsageError(f"--sql needs DuckDB, which is not installed: {INSTALL}") from None
    return duckdb


def run_sql(tables: RunTables, query: str) -> pa.Table:
    """The result of ``query`` (its last statement's, for several; an empty table for a
    statement without rows) over ``tables``' views, in a fresh in-memory DuckDB database that
    can touch no file. A query DuckDB rejects is a ``UsageError`` with its message on one line."""
    import pyarrow as pa

    duckdb = import_duckdb()
    with tempfile.TemporaryDirectory(prefix="selfplay-sql-") as spill:
        # Spilled intermediate results go to a folder of our own, never the working directory.
        con = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "python_enable_replacements": False,
                "temp_directory": spill,
            },
        )
        try:
            for name, table in tables.views().items():
                con.register(name, table)
            con.execute("SET lock_configuration = true")
            try:
                result = con.sql(query)
                return pa.table({}) if result is None else _arrow(result)
            except duckdb.Error as err:
                raise UsageError(f"--sql: {one_line(err)}{_hint(err, tables)}") from None
        finally:
            con.close()


def _arrow(relation) -> pa.Table:
    """A relation's rows as an Arrow table (``to_arrow_table`` in DuckDB 2, ``arrow`` before)."""
    convert = getattr(relation, "to_arrow_table", None) or relation.arrow
    return convert()


def one_line(err: BaseException) -> str:
    """DuckDB's message on one line: the lines before its ``LINE n:`` excerpt of the query."""
    lines = []
    for line in str(err).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines) or type(err).__name__


def _hint(err: BaseException, tables: RunTables) -> str:
    """What to do instead, for an unknown table and for a file a query tried to touch."""
    kind = type(err).__name__
    if kind == "CatalogException":
        return f" (this run's views: {', '.join(tables.views())})"
    if kind == "PermissionException":
        return " (a query reads only the run's views and writes no file: save rows with --csv)"
    return ""
