"""What every terminal view of the CLI prints with: a console sized for a terminal or a pipe,
text that is never read as markup, and JSON lines for scripts."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

PIPED_WIDTH = 200
"""Columns of the output when stdout is not a terminal (and COLUMNS is not set)."""


def console():
    """A rich console; piped into less, grep or a file, lines are not cut to 80 columns."""
    from rich.console import Console

    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=PIPED_WIDTH if piped else None)


def text(value: str):
    """``value`` as rich text, never markup: completions hold brackets."""
    from rich.text import Text

    return Text(value)


def write_json(objects: list[dict[str, Any]]) -> None:
    """One JSON object per line on stdout."""
    for obj in objects:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
