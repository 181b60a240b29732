"""The `selfplay` command line: ``main`` (the console script), the parser (``parser``), the
subcommands (``commands``) and the terminal views of transcripts (``views``).

Every error a user can cause derives from ``selfplay.errors.UserError``: ``main`` catches it
once and prints it as one line (exit status 2).
"""

from __future__ import annotations

import sys

from selfplay.cli.parser import build_parser
from selfplay.errors import DiskFull, UserError

EXIT_USAGE = 2
EXIT_DISK_FULL = 1

__all__ = ["EXIT_DISK_FULL", "EXIT_USAGE", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `selfplay` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as err:  # every bad-input error derives from it (selfplay.errors)
        print(f"selfplay {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except DiskFull as err:  # not the user's input, but as plain: one line, no traceback
        print(f"selfplay {args.command}: error: {err}", file=sys.stderr)
        return EXIT_DISK_FULL
    except KeyboardInterrupt:
        print(f"selfplay {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
