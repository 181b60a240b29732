"""Transcripts: one Parquet row per completion, written as the run goes and never rewritten.

- ``schema``: every column and behaviour tag name, once;
- ``writer``: ``TranscriptWriter``, one file per role and step, written atomically;
- ``reading``: reading back, whole (``read_transcripts``) or as a dataset that leaves out
  the files it cannot read (``open_transcripts``, ``with_transcripts``, ``Skipped``);
- ``filters`` and ``query``: the rows of a run that match some filters (``query``, ``chain``).

Read them with ``read_transcripts``, ``query``, ``pandas.read_parquet(folder)``, ``datasets``
or DuckDB. The terminal views of ``selfplay transcripts`` are ``selfplay.cli.views``.
"""

from __future__ import annotations

from selfplay.errors import CorruptTranscript
from selfplay.transcripts.filters import BEHAVIOURS, Filters, parse_filters
from selfplay.transcripts.query import chain, query, select
from selfplay.transcripts.reading import (
    CorruptTranscriptWarning,
    Skipped,
    Transcripts,
    describe_read_error,
    open_transcripts,
    read_errors,
    read_transcripts,
    with_transcripts,
)
from selfplay.transcripts.schema import COLUMN_TYPES, PROPOSAL_STATUSES, TAGS
from selfplay.transcripts.writer import TranscriptWriter, parse_name

__all__ = [
    "BEHAVIOURS",
    "COLUMN_TYPES",
    "PROPOSAL_STATUSES",
    "TAGS",
    "CorruptTranscript",
    "CorruptTranscriptWarning",
    "Filters",
    "Skipped",
    "TranscriptWriter",
    "Transcripts",
    "chain",
    "describe_read_error",
    "open_transcripts",
    "parse_filters",
    "parse_name",
    "query",
    "read_errors",
    "read_transcripts",
    "select",
    "with_transcripts",
]
