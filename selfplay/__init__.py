"""selfplay: self-play curricula and GRPO for studying how reasoning emerges in language models.

The Python API (``selfplay.api``) does what the command line does. A run config loads into
typed dataclasses:

>>> import selfplay
>>> config = selfplay.load_config("configs/quickstart.yaml")
>>> sorted(config.envs), config.grpo["max_steps"]
(['arithmetic', 'clarify', 'countdown'], 300)

Train (here a three-step config of a small organism), then read what the run kept and
analyse it:

>>> run = selfplay.train_run(small_config, console=quiet)
>>> rows = selfplay.read_transcripts(run)
>>> len(rows) == 3 * 8, sorted(set(rows["role"]))
(True, ['solver'])
>>> right = selfplay.query_transcripts(run, reward=">=1", columns=["step", "reward"])
>>> bool((right["reward"] >= 1).all())
True
>>> selfplay.analyze_run(run, evaluate_models=False, console=quiet).name
'report.html'

Errors a user can cause derive from ``selfplay.UserError`` (the CLI prints them as one line).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_config": "selfplay.api",
    "pretrain": "selfplay.api",
    "train_run": "selfplay.api",
    "evaluate_model": "selfplay.api",
    "analyze_run": "selfplay.api",
    "read_transcripts": "selfplay.api",
    "query_transcripts": "selfplay.api",
    "RunConfig": "selfplay.config.run",
    "UserError": "selfplay.errors",
    "SelfplayError": "selfplay.errors",
    "ConfigError": "selfplay.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (``import selfplay`` stays light)."""
    if name not in _API:
        raise AttributeError(f"module 'selfplay' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
