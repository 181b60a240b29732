"""Transcripts: one Parquet row per completion, written as the run goes and never rewritten.

Each generation batch becomes ``transcripts/step-<step>.parquet`` (zstd-compressed), written
to a temporary name and renamed into place, so a killed run leaves only whole files. Read
them back with ``read_transcripts``, ``pandas.read_parquet(folder)``, ``datasets`` or DuckDB.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from selfplay.errors import CorruptTranscript

_NAME = re.compile(r"(?P<role>[a-z_]+)-step-(?P<step>[0-9]+)\.parquet")

COLUMN_TYPES = {"confidence": "float64"}
"""Columns a file types as given even when all its rows hold None: pyarrow would make them
null columns, which ``pandas.read_parquet`` of the whole folder cannot merge with the same
column typed in another file (a step where no completion stated a confidence)."""


def parse_name(name: str) -> tuple[str, int] | None:
    """``(role, step)`` of a transcript file name as ``TranscriptWriter.path`` writes it;
    None for any other name (a torn temporary file, say)."""
    m = _NAME.fullmatch(name)
    return (m["role"], int(m["step"])) if m else None


class TranscriptWriter:
    """Writes the rows of one step as one Parquet file, atomically."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows_written = 0
        self.bytes_written = 0

    def path(self, step: int, role: str = "solver") -> Path:
        """Where the rows of ``step`` for ``role`` live."""
        return self.folder / f"{role}-step-{step:06d}.parquet"

    def write(self, step: int, rows: list[dict[str, Any]], role: str = "solver") -> Path:
        """Write ``rows`` for ``step``; an existing file for the step is an error, not overwritten."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        final = self.path(step, role)
        if final.exists():
            raise FileExistsError(
                f"transcript {final} already exists; transcripts are never rewritten"
            )
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        pq.write_table(_typed(pa.Table.from_pylist(rows)), tmp, compression="zstd")
        os.replace(tmp, final)
        self.rows_written += len(rows)
        self.bytes_written += final.stat().st_size
        return final


def _typed(table):
    """``table`` with the all-null columns of ``COLUMN_TYPES`` given their type."""
    import pyarrow as pa

    for name, kind in COLUMN_TYPES.items():
        at = table.schema.get_field_index(name)
        if at >= 0 and pa.types.is_null(table.schema.field(at).type):
            table = table.set_column(at, pa.field(name, kind), table.column(at).cast(kind))
    return table


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
