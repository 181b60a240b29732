"""The public Python API: what the ``selfplay`` command does, as functions.

``import selfplay`` exposes these names (lazily, so importing the package stays light); each
is a thin front over the room that does the work, named so it never shadows a module of the
package (``selfplay.train`` is the training loop's module, ``selfplay.train_run`` the call).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfplay.config.load import load_envs, load_run_config
from selfplay.config.run import RunConfig


def load_config(path: str | Path) -> RunConfig:
    """A run config from a YAML file or a run folder, checked whole (``ConfigError`` names the
    file and key of anything wrong)."""
    return load_run_config(path)


def pretrain(config_path: str | Path, models_dir: str | Path = "models", console=None) -> Path:
    """Train (or reuse) the organism of an organism recipe; return its model folder."""
    from selfplay.organism.pretrain import pretrain as pretrain_organism

    return pretrain_organism(config_path, root=models_dir, console=console)


def train_run(config_path: str | Path, *, resume: bool | str | Path = False, console=None) -> Path:
    """GRPO training (or self-play) for a run config, as ``selfplay train``; return the run
    folder, which holds ``transcripts/``, ``metrics.jsonl``, ``final/`` and ``summary.json``."""
    from selfplay.train import train

    return train(config_path, console=console, resume=resume)


def evaluate_model(
    model: str | Path,
    config_path: str | Path,
    out: str | Path,
    *,
    samples: int = 16,
    tasks_per_level: int = 64,
    console=None,
) -> dict[str, Any]:
    """Sample ``model`` (a folder, or "organism") on a run config's held-out tasks, as
    ``selfplay eval``; write ``out/eval.json`` and the eval transcripts; return eval.json."""
    from selfplay.evaluate import EvalSettings, evaluate, resolve_eval_model

    config = load_run_config(config_path)
    settings = EvalSettings(
        samples=samples, tasks_per_level=tasks_per_level, max_new_tokens=config.probe.max_new_tokens
    )
    source, step = resolve_eval_model(str(model), config, console)
    envs = load_envs(config, str(config_path))
    return evaluate(source, config, envs, settings, Path(out), step=step, console=console)


def analyze_run(
    run_dir: str | Path, *, evaluate_models: bool = True, console=None, **options
) -> Path:
    """Analyse a run, as ``selfplay analyze``: write ``analysis/summary.json`` and
    ``analysis/report.html``; return the report's path. ``options``: ``base``, ``samples``,
    ``tasks_per_level``, ``controls`` (see ``selfplay.analysis.analyze.analyze``)."""
    from selfplay.analysis.analyze import analyze

    return analyze(run_dir, evaluate_models=evaluate_models, console=console, **options)


def read_transcripts(run_dir: str | Path, role: str | None = None):
    """Every transcript row of a run (one per completion) as a pandas DataFrame."""
    from selfplay.transcripts import read_transcripts as read

    return read(run_dir, role=role)


def query_transcripts(run_dir: str | Path, **filters):
    """The rows the filters of ``selfplay transcripts`` select (``steps``, ``env``, ``level``,
    ``behaviour``, ``reward``, ``role``, ``task_id``, ...), as a pandas DataFrame."""
    from selfplay.transcripts import query

    return query(run_dir, **filters)
