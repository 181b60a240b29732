"""selfplay: self-play curricula and GRPO for studying how reasoning emerges in language models.

The Python API does what the command line does; each name is the function the command
calls (``__all__`` lists them, ``_API`` says where each lives). A run config loads into
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
    "load_config": ("selfplay.config.load", "load_run_config"),
    "pretrain": ("selfplay.organism.pretrain", "pretrain"),
    "train_run": ("selfplay.train", "train"),
    "evaluate_model": ("selfplay.evaluate", "evaluate_model"),
    "analyze_run": ("selfplay.analysis.analyze", "analyze"),
    "read_transcripts": ("selfplay.transcripts", "read_transcripts"),
    "query_transcripts": ("selfplay.transcripts", "query"),
    "RunConfig": ("selfplay.config.run", "RunConfig"),
    "UserError": ("selfplay.errors", "UserError"),
    "SelfplayError": ("selfplay.errors", "SelfplayError"),
    "ConfigError": ("selfplay.errors", "ConfigError"),
}
"""Public name -> (module, attribute). The names differ from the package's modules
(``train_run``, not ``train``): importing ``selfplay.train`` would shadow a function so named."""

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (``import selfplay`` stays light)."""
    if name not in _API:
        raise AttributeError(f"module 'selfplay' has no attribute {name!r}")
    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
