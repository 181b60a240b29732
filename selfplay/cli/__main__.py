"""``python -m selfplay.cli``: the `selfplay` command."""

import sys

from selfplay.cli import main

sys.exit(main())
