"""Writing transcripts: one Parquet file per role and step, written once and never rewritten.

Each generation batch becomes ``transcripts/<role>-step-<step>.parquet`` (zstd-compressed),
written to a temporary name and renamed into place, so a killed run leaves only whole files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from selfplay.transcripts.schema import COLUMN_TYPES, SOLVER

_NAME = re.compile(r"(?P<role>[a-z_]+)-step-(?P<step>[0-9]+)\.parquet")


def file_name(step: int, role: str = SOLVER) -> str:
    """The name of the transcript file of ``role`` at ``step``."""
    return f"{role}-step-{step:06d}.parquet"


def parse_name(name: str) -> tuple[str, int] | None:
    """``(role, step)`` of a transcript file name as ``file_name`` writes it; None for any
    other name (a torn temporary file, say)."""
    m = _NAME.fullmatch(name)
    return (m["role"], int(m["step"])) if m else None


class TranscriptWriter:
    """Writes the rows of one step as one Parquet file, atomically."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows_written = 0
        self.bytes_written = 0

    def path(self, step: int, role: str = SOLVER) -> Path:
        """Where the rows of ``step`` for ``role`` live."""
        return self.folder / file_name(step, role)

    def write(self, step: int, rows: list[dict[str, Any]], role: str = SOLVER) -> Path:
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
