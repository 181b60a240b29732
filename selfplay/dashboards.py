"""Where a run's metrics go beside ``metrics.jsonl``: the dashboards of the run config's
``report_to`` (TensorBoard, trackio, Weights & Biases, MLflow).

Every record ``selfplay.recorder.MetricsLog`` writes (TRL's numbers, ours, the probes, both
self-play phases) reaches every dashboard at its step, and each Solver step's completions go
to the dashboards that show tables (trackio, W&B, MLflow) as TRL's completions table: TRL's
columns (``step``, ``prompt``, ``completion``, one per reward function, ``advantage``) and
ours (``COMPLETION_COLUMNS``). TRL itself reports to none of them (its ``report_to`` is "none"):
its logs come through ``MetricsLog`` with ours, so nothing is sent twice.

Dashboards open on the first record (rank 0 only writes). A resumed run continues the same
dashboard run: its identity is kept in ``dashboards.json`` in the run folder. TensorBoard
writes each record through and drops the killed run's events after the checkpoint
(``purge_step``). trackio and W&B send from a buffer, so a killed run may never have sent its
last records: a resumed run first sends them every record ``metrics.jsonl`` kept (the same
values at the same steps again, which draw over themselves), so nothing is missing. MLflow
writes through. None of the three can drop what they were sent, so the steps between the
checkpoint and the kill appear twice there, as the killed run sent them and as the resumed
run does.

trackio, W&B and MLflow are optional extras (``track``, ``wandb``, ``mlflow``: MLflow's
client, ``mlflow-skinny``). Each keeps to its own settings:
trackio writes to ``TRACKIO_DIR`` (default ``~/.cache/huggingface/trackio``), W&B follows
``WANDB_MODE`` (``offline`` writes ``wandb/`` in the run folder, for ``wandb sync``), and the
project is ``TRACKIO_PROJECT`` / ``WANDB_PROJECT`` / ``MLFLOW_EXPERIMENT_NAME``, "selfplay" by
default. MLflow writes to ``MLFLOW_TRACKING_URI`` (a server; or a folder, ``file:...``, with
``MLFLOW_ALLOW_FILE_STORE=true``); its client alone cannot open MLflow's default, a SQLite
file, and a run that cannot open the store is refused before it starts.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any

from selfplay.errors import ConfigError
from selfplay.transcripts import schema

DASHBOARDS = ("tensorboard", "trackio", "wandb", "mlflow")
"""What ``report_to`` accepts, beside "none"."""

EXTRAS = {"trackio": "track", "wandb": "wandb", "mlflow": "mlflow"}
"""Dashboard -> the optional extra that installs it."""

IDENTITY = "dashboards.json"
"""The run folder's record of its dashboard runs, for a resume to continue them."""

STEP_METRIC = "train/global_step"
"""The x-axis of every W&B chart (as TRL's W&B callback names it): a resumed run logs its
steps again, which W&B's own step counter would refuse."""

COMPLETION_COLUMNS = {
    "env": schema.ENV,
    "level": schema.DIFFICULTY,
    "verdict": schema.VERDICT_SCORE,
    "parsed": schema.VERDICT_PARSED,
    "reward": schema.REWARD,
    "completion_tokens": schema.COMPLETION_TOKENS,
}
"""Our columns of the completions table after TRL's: table column -> transcript column (the
behaviour tags follow under their own names)."""


def report_to_names(value: str | list[str]) -> list[str]:
    """The dashboards a ``report_to`` value names, in order (empty for "none"); a ValueError
    naming the value for anything else."""
    names = [value] if isinstance(value, str) else list(value)
    if names == ["none"] or names == []:
        return []
    for name in names:
        if name not in DASHBOARDS:
            known = ", ".join(repr(n) for n in (*DASHBOARDS, "none"))
            raise ValueError(f"{name!r} is not a dashboard selfplay reports to ({known})")
    if len(set(names)) != len(names):
        raise ValueError(f"{names} names a dashboard twice")
    return names


def check_installed(names: list[str], source: str) -> None:
    """A ConfigError naming the extra to install for a dashboard whose package is missing, or
    MLflow's store when it cannot be opened (checked before a run is created, not at its
    first step)."""
    import importlib.util

    for name in names:
        if name in EXTRAS and importlib.util.find_spec(name) is None:
            raise ConfigError(
                f"{source}: key 'report_to': {name} is not installed; "
                f"pip install -e '.[{EXTRAS[name]}]'"
            )
    if "mlflow" in names:
        import mlflow

        try:
            mlflow.MlflowClient().search_experiments(max_results=1)
        except Exception as err:  # MLflow's store errors have no common base class
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(
                f"{source}: key 'report_to': MLflow cannot open its tracking store "
                f"{mlflow.get_tracking_uri()!r} (set MLFLOW_TRACKING_URI): {first[:300]}"
            ) from None


def completions_table(rows: list[dict], reward_names: list[str]) -> dict[str, list]:
    """A Solver step's transcript rows as TRL's completions table: column -> values."""
    table: dict[str, list] = {
        "step": [r[schema.STEP] for r in rows],
        "prompt": [r[schema.PROMPT] for r in rows],
        "completion": [r[schema.COMPLETION] for r in rows],
    }
    for name in reward_names:
        table[name] = [r[schema.reward_column(name)] for r in rows]
    table["advantage"] = [r[schema.ADVANTAGE] for r in rows]
    for column, source in COMPLETION_COLUMNS.items():
        table[column] = [r.get(source) for r in rows]
    for tag in schema.TAG_COLUMNS:
        if any(tag in r for r in rows):
            table[tag] = [r.get(tag) for r in rows]
    return table


def scalars(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a record: what a chart can draw."""
    return {
        k: v
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class Dashboards:
    """The run's dashboards, opened on first use; ``log`` and ``table`` go to every one."""

    def __init__(self, run_dir: Path, names: list[str], config: dict[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.names = list(names)
        self.config = config or {}
        self.purge_step: int | None = None
        """Set on resume (``RunState.restore``): TensorBoard drops the killed run's events from
        this step on."""
        self._sinks: list[Any] | None = None
        self._closed = False

    def sinks(self) -> list[Any]:
        """The open dashboards (opening them on the first call)."""
        if self._sinks is None:
            resumed = self.purge_step is not None or self._closed
            known = _read_identity(self.run_dir) if resumed else {}
            opened = {
                "tensorboard": lambda: TensorBoard(self.run_dir, self.purge_step),
                "trackio": lambda: Trackio(self.run_dir, self.config, known.get("trackio")),
                "wandb": lambda: Wandb(self.run_dir, self.config, known.get("wandb")),
                "mlflow": lambda: Mlflow(self.run_dir, self.config, known.get("mlflow")),
            }
            self._sinks = [opened[name]() for name in self.names]
            pairs = zip(self.names, self._sinks, strict=True)
            identity = {name: sink.identity for name, sink in pairs if sink.identity}
            if identity:
                from selfplay.checkpoints import write_json_atomic

                write_json_atomic(self.run_dir / IDENTITY, {**known, **identity})
        return self._sinks

    def log(self, step: int, values: dict[str, Any]) -> None:
        """One record's numbers to every dashboard at ``step``."""
        if numbers := scalars(values):
            for sink in self.sinks():
                sink.log(step, numbers)

    def replay(self, records: list[dict[str, Any]]) -> None:
        """Send a resumed run's earlier records (``metrics.jsonl``) again to the dashboards
        that send from a buffer (a killed run may have lost their last ones)."""
        for sink in self.sinks():
            if sink.buffered:
                for record in records:
                    values = {k: v for k, v in record.items() if k != "step"}
                    if numbers := scalars(values):
                        sink.log(record["step"], numbers)

    def table(self, step: int, rows: list[dict], reward_names: list[str]) -> None:
        """A Solver step's transcript rows, as the completions table, to the dashboards that
        show tables (built only for them)."""
        showing = [sink for sink in self.sinks() if sink.tables]
        if showing:
            table = completions_table(rows, reward_names)
            for sink in showing:
                sink.table(step, table)

    def close(self) -> None:
        """Flush and close every open dashboard (a later record opens them again)."""
        for sink in self._sinks or []:
            sink.close()
        self._sinks, self._closed = None, True  # reopened, they continue the same runs


def _read_identity(run_dir: Path) -> dict[str, Any]:
    """The dashboard runs a run folder recorded (empty if none or unreadable: a new one)."""
    try:
        found = json.loads((run_dir / IDENTITY).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


class TensorBoard:
    """Scalars to ``tensorboard/`` in the run folder (no table: the transcripts are there)."""

    identity = None
    buffered = False
    tables = False

    def __init__(self, run_dir: Path, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Trackio:
    """A trackio run named after the run folder, in ``TRACKIO_PROJECT`` (default "selfplay")."""

    buffered = True
    tables = True

    def __init__(self, run_dir: Path, config: dict[str, Any], known: dict | None):
        import trackio

        self.trackio = trackio
        project = (known or {}).get("project") or os.environ.get("TRACKIO_PROJECT", "selfplay")
        name = (known or {}).get("name") or run_dir.name
        self.run = trackio.init(
            project=project,
            name=name,
            config=config,
            resume="allow" if known else "never",
            embed=False,
            auto_log_cpu=False,
            auto_log_gpu=False,
        )
        self.identity = {"project": project, "name": self.run.name}

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def table(self, step: int, table: dict[str, list]) -> None:
        columns = list(table)
        data = [list(row) for row in zip(*table.values(), strict=True)]
        self.run.log({"completions": self.trackio.Table(columns=columns, data=data)}, step=step)

    def close(self) -> None:
        if self.trackio.context_vars.current_run.get() is self.run:
            self.trackio.finish()  # and forget it, so trackio's exit hook does not finish it again
        else:
            self.run.finish()


class Wandb:
    """A W&B run named after the run folder, its files in ``wandb/`` there; W&B's own settings
    (``WANDB_MODE``, ``WANDB_PROJECT``, ``WANDB_ENTITY``) apply."""

    buffered = True
    tables = True

    def __init__(self, run_dir: Path, config: dict[str, Any], known: dict | None):
        import wandb

        self.wandb = wandb
        stem = re.sub(r"[^A-Za-z0-9_-]", "-", run_dir.name)[:40]
        run_id = (known or {}).get("id") or f"{stem}-{secrets.token_hex(4)}"
        self.run = wandb.init(
            project=(known or {}).get("project") or os.environ.get("WANDB_PROJECT", "selfplay"),
            name=run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=config,
        )
        self.run.define_metric(STEP_METRIC)
        self.run.define_metric("*", step_metric=STEP_METRIC)
        self.identity = {"project": self.run.project, "id": self.run.id}

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log({**values, STEP_METRIC: step})

    def table(self, step: int, table: dict[str, list]) -> None:
        data = [list(row) for row in zip(*table.values(), strict=True)]
        completions = self.wandb.Table(columns=list(table), data=data)
        self.run.log({"completions": completions, STEP_METRIC: step})

    def close(self) -> None:
        self.run.finish()


class Mlflow:
    """An MLflow run named after the run folder, in the experiment ``MLFLOW_EXPERIMENT_NAME``
    (default "selfplay") of MLflow's tracking store (``MLFLOW_TRACKING_URI``: a server, or a
    folder); each completions table is an artifact ``completions/step-NNNNNN.json``."""

    buffered = False  # MlflowClient writes each call through
    tables = True

    def __init__(self, run_dir: Path, config: dict[str, Any], known: dict | None):
        import mlflow

        self.client = mlflow.MlflowClient()
        self.experiment = (known or {}).get("experiment") or os.environ.get(
            "MLFLOW_EXPERIMENT_NAME", "selfplay"
        )
        if known and known.get("run_id"):
            self.run_id = known["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            found = self.client.get_experiment_by_name(self.experiment)
            experiment = found.experiment_id if found else None
            if experiment is None:
                experiment = self.client.create_experiment(self.experiment)
            self.run_id = self.client.create_run(experiment, run_name=run_dir.name).info.run_id
            self.client.log_dict(self.run_id, config, "config.json")
        self.identity = {"experiment": self.experiment, "run_id": self.run_id}

    def log(self, step: int, values: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's most per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def table(self, step: int, table: dict[str, list]) -> None:
        self.client.log_table(self.run_id, table, f"completions/step-{step:06d}.json")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
