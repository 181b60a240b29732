"""Reading transcripts back, leaving out the files that cannot be read.

``read_transcripts`` reads a folder whole (an eval folder: a missing file would change
pass@k), so a file it cannot read is a ``CorruptTranscript`` naming it. The query layer
opens a run's files as one ``pyarrow`` dataset (``open_transcripts``) instead, where a file
that cannot be read (empty, cut short, garbled) costs only itself: it is left out and named
in one warning (``Skipped``). Opening checks each file's footer; a damaged page is found
when a read first touches it, and ``with_transcripts`` then starts the work again without
that file, so that every count and every row shown come from the same files.

``metric_records`` reads a run's ``metrics.jsonl``: a truncated last line (what a run killed
mid-write leaves) is left out and named; any other line that cannot be read is an
``AnalysisError`` naming file and line.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from selfplay.errors import AnalysisError, CorruptTranscript, UsageError
from selfplay.transcripts.filters import FILTER_TYPES, Filters, columns_used
from selfplay.transcripts.writer import parse_name

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pyarrow as pa
    import pyarrow.compute as pc

T = TypeVar("T")


def read_transcripts(run_dir: str | Path, role: str | None = None):
    """All transcript rows of a run as a pandas DataFrame, in step order."""
    import pandas as pd

    folder = Path(run_dir) / "transcripts"
    files = sorted(folder.glob(f"{role or '*'}-step-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no transcripts under {folder}")
    return pd.concat([_read_file(f) for f in files], ignore_index=True)


def read_errors() -> tuple[type[BaseException], ...]:
    """What pyarrow raises for a file it cannot read: a bad footer, page or compressed block."""
    import pyarrow as pa

    return (pa.ArrowException, OSError)


def describe_read_error(err: BaseException) -> str:
    """``Type: first line of the message``: why a file could not be read, on one line."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _read_file(path: Path):
    """One transcript file as a DataFrame; ``CorruptTranscript`` naming it if it cannot be read."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except read_errors() as err:
        raise CorruptTranscript(f"{path}: cannot be read ({describe_read_error(err)})") from None


def transcript_files(run_dir: str | Path) -> list[tuple[int, str, Path]]:
    """(step, role, path) of every transcript file of a run, by step then role."""
    run = Path(run_dir)
    folder = run / "transcripts"
    if not run.is_dir():
        raise UsageError(f"run folder {run} does not exist")
    files = []
    for path in folder.glob("*-step-*.parquet"):
        if name := parse_name(path.name):
            files.append((name[1], name[0], path))
    if not files:
        raise UsageError(f"no transcripts under {folder}")
    return sorted(files)


def check_roles(files: list[tuple[int, str, Path]], f: Filters) -> None:
    """A ``UsageError`` if ``f`` asks for a role no file of ``files`` has."""
    roles = sorted({role for _, role, _ in files})
    for role in f.roles:
        if role not in roles:
            raise UsageError(
                f"--role {role!r}: no transcripts of that role (roles: {', '.join(roles)})"
            )


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
    run_dir: str | Path, f: Filters | None = None, skipped: Skipped | None = None
) -> Transcripts:
    """The run's files that ``f`` can match, less those in or added to ``skipped``.

    The schema is unified over the files: a column missing from some (dialogue or eval
    columns, or another role's: challenger rows have no verdict, solver rows no
    ``proposal_status``) reads as null there, and one that was all null in a step takes its
    type from the other steps. A column ``f`` filters on that no file read has (or has only
    as all-null) is added with its type from ``FILTER_TYPES``, so its filter matches nothing
    there instead of failing. Without ``f``: every file.
    """
    import pyarrow as pa

    f = Filters() if f is None else f
    skipped = Skipped() if skipped is None else skipped
    files = transcript_files(run_dir)
    check_roles(files, f)
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
            raise UsageError(
                f"no readable transcripts under {folder} (all {len(files)} files corrupt)"
            )
        schema = first.schema.to_arrow_schema()
    for name in sorted(columns_used(f)):
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


# -- metrics.jsonl ---------------------------------------------------------------------------


def metric_records(run_dir: Path, skipped_lines: list[dict] | None = None) -> list[dict]:
    """Every record of ``metrics.jsonl``, in order.

    A last line that is not a record is what a run killed mid-write leaves: it is left out,
    with ``{"file", "line", "error"}`` added to ``skipped_lines`` (without a list, a
    ``UserWarning``). Any other such line is an ``AnalysisError`` naming file and line.
    """
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise AnalysisError(f"{run_dir}: not a run folder (no metrics.jsonl)")
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        raise AnalysisError(f"{path}: cannot read: {err}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _metric_record(line)
        except ValueError as err:
            if number < len(lines):
                raise AnalysisError(f"{path}:{number}: {err}") from None
            note = {"file": str(path), "line": number, "error": str(err)}
            if skipped_lines is None:
                warnings.warn(skipped_line_message(note), stacklevel=2)
            else:
                skipped_lines.append(note)
            continue
        records.append(record)
    return records


def _metric_record(line: bytes) -> dict:
    try:
        record = json.loads(line.decode())
    except ValueError as err:  # a UnicodeDecodeError is a ValueError
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        raise ValueError(f"not a record with a step: {line[:80]!r}")
    return record


def skipped_line_message(note: dict) -> str:
    """One line: the ``metrics.jsonl`` line ``note`` says was left out, and why."""
    return (
        f"skipped the truncated last line of {note['file']} (line {note['line']}: {note['error']})"
    )
