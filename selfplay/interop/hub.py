"""`selfplay export RUN DIR`: a run as a Hugging Face dataset folder, and pushing it to the Hub.

The folder holds three configs, each one split (``train``) of Parquet files, and a dataset
card (``README.md``) whose YAML header declares them, so that ``load_dataset(DIR)`` gives the
transcripts (the default config) and ``load_dataset(DIR, "metrics")`` the metrics::

    DIR/README.md                             the card: the run's config, model, counts, columns
    DIR/data/transcripts/part-00000.parquet   one row per completion (selfplay.transcripts)
    DIR/data/metrics/part-00000.parquet       one row per record of metrics.jsonl
    DIR/data/evals/part-00000.parquet         the run's eval rows (selfplay analyze), if any

The tables are those ``selfplay transcripts RUN --sql`` queries (``selfplay.transcripts.sql``),
columns unified over the steps. The folder is built beside DIR and renamed into place when
whole, so a failed or killed export leaves no half-written DIR; the run folder is only read.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfplay.analysis.reading import read_json
from selfplay.disk import REPLACED, disk_full_is_one_line, replace_dir, stale_scratch
from selfplay.errors import HubError, UsageError
from selfplay.transcripts.schema import ENV, ROLE, RUN, STEP, column_meaning, column_meanings
from selfplay.transcripts.sql import (
    EVALS,
    METRICS,
    TRANSCRIPTS,
    RunTables,
    eval_folders,
    run_tables,
)

if TYPE_CHECKING:
    import pyarrow as pa

SPLIT = "train"
"""The one split of each config (what ``load_dataset`` returns without ``split``)."""
SHARD_BYTES = 256 * 2**20
"""A data file is closed and the next begun once this many bytes (in memory) went into it."""
GROUP_BYTES = 32 * 2**20
"""Bytes (in memory) of a Parquet row group: steps are joined up to this, not one group each."""
CARD = "README.md"
METRICS_NOTE = (
    "One row per record of `metrics.jsonl`: `step`, then one column per key, null in records "
    "without it. Training records are TRL's logs (`loss`, `reward`, `grad_norm`, ...) with "
    "selfplay's namespaced metrics; a training record at step `s + 1` holds the metrics of "
    "the completions at transcript step `s` (TRL logs after the update). Probe records hold "
    "`probe/<env>/<level>/<measure>` on held-out tasks, at the steps they were taken."
)
"""What the card says of the ``metrics`` config's columns, beside their list."""


def export(run_dir: str | Path, out: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Write the run at ``run_dir`` as a dataset folder ``out``; return its counts (the card's)
    and, under ``left_out``, a line per thing that could not be read and was left out.

    An existing non-empty ``out`` is a ``UsageError`` unless ``force`` (then it is replaced
    once the new folder is whole); ``out`` may not be, hold or lie inside the run folder.
    """
    run, out = Path(run_dir), Path(out)
    check_destination(run, out, force)
    if recover(out):  # an earlier export came back to ``out``: it holds again
        check_destination(run, out, force)
    tables = run_tables(run)
    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with disk_full_is_one_line(out.parent, "free some space and export again"):
            tmp.mkdir()
            counts = write_data(tables, tmp)
            (tmp / CARD).write_text(dataset_card(run, tables, counts), encoding="utf-8")
            replace_dir(tmp, out)
    except BaseException:  # a failure or an interrupt: nothing half-written stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**counts, "left_out": tables.notes()}


def recover(out: Path) -> bool:
    """Clear what exports of ``out`` killed on this host left beside it: a half-built folder
    is deleted, and a folder a ``--force`` export set aside is put back when it was killed
    before its new one took ``out``'s place (so the earlier export is never lost). True when
    one was put back."""
    restored = False
    for path in stale_scratch(out):
        if path.name.startswith(f".{out.name}.{REPLACED}-") and not out.exists():
            os.replace(path, out)
            restored = True
        else:
            shutil.rmtree(path, ignore_errors=True)
    return restored


def check_destination(run: Path, out: Path, force: bool) -> None:
    """A ``UsageError`` when ``out`` cannot take the export (see ``export``)."""
    if not run.is_dir():
        raise UsageError(f"run folder {run} does not exist")
    here, there = run.resolve(), out.resolve()
    if there == here or here in there.parents or there in here.parents:
        raise UsageError(
            f"{out}: the export must go outside the run folder {run} (it is never changed)"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} exists and is not empty (choose another folder, or --force)")


def write_data(tables: RunTables, folder: Path) -> dict[str, Any]:
    """Each of ``tables``' views as Parquet files under ``folder/data/<view>/``, and the counts."""
    import pyarrow.dataset as ds

    counts: dict[str, Any] = {}
    for name, table in tables.views().items():
        if isinstance(table, ds.Dataset):  # a file (a step) at a time, in step order
            parts = (
                ds.dataset([path], schema=table.schema, format="parquet").to_table()
                for path in table.files
            )
        else:
            parts = iter([table])
        rows = write_parquet(parts, table.schema, folder / "data" / name)
        counts[name] = {"rows": rows, "columns": list(table.schema.names)}
    counts[TRANSCRIPTS].update(row_counts(tables.transcripts.to_table(columns=[STEP, ENV, ROLE])))
    if tables.metrics is not None:
        steps = tables.metrics.column(STEP).to_pylist()
        counts[METRICS]["steps"] = [min(steps), max(steps)] if steps else []
    if tables.evals is not None:
        counts[EVALS].update(row_counts(tables.evals.to_table(columns=[STEP, ENV, ROLE, RUN])))
    return counts


def write_parquet(parts, schema: pa.Schema, folder: Path) -> int:
    """Write the tables ``parts`` (each with ``schema``) as ``part-NNNNN.parquet`` files of up
    to about ``SHARD_BYTES`` each under ``folder``; return the rows written."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    writer, size, rows, shards = None, 0, 0, 0
    try:
        for group in _row_groups(parts):
            if writer is None or size >= SHARD_BYTES:
                if writer is not None:
                    writer.close()
                path = folder / f"part-{shards:05d}.parquet"
                writer = pq.ParquetWriter(path, schema, compression="zstd")
                size, shards = 0, shards + 1
            writer.write_table(group)
            size += group.nbytes
            rows += group.num_rows
        if writer is None:  # no rows: one empty file keeps the columns
            writer = pq.ParquetWriter(folder / "part-00000.parquet", schema, compression="zstd")
    finally:
        if writer is not None:
            writer.close()
    return rows


def _row_groups(parts) -> Iterator[pa.Table]:
    """``parts`` (a step's rows each) joined into tables of about ``GROUP_BYTES``."""
    import pyarrow as pa

    pending, size = [], 0
    for table in parts:
        pending.append(table)
        size += table.nbytes
        if size >= GROUP_BYTES:
            yield pa.concat_tables(pending)
            pending, size = [], 0
    if pending:
        yield pa.concat_tables(pending)


def row_counts(table: pa.Table) -> dict[str, Any]:
    """Steps (how many, first, last) and rows per environment, role (and eval label)."""
    import pyarrow.compute as pc

    steps = pc.unique(table.column(STEP)).to_pylist()
    out: dict[str, Any] = {"steps": len(steps), "first_step": min(steps, default=None)}
    out["last_step"] = max(steps, default=None)
    for column, key in ((ENV, "envs"), (ROLE, "roles"), (RUN, "labels")):
        if column in table.column_names:
            counted = pc.value_counts(table.column(column)).to_pylist()
            out[key] = {str(c["values"]): c["counts"] for c in counted}
    return out


# -- the dataset card -----------------------------------------------------------------------


def dataset_card(run: Path, tables: RunTables, counts: dict[str, Any]) -> str:
    """``README.md``: a YAML header declaring the configs, then the run, its counts and columns."""
    import yaml

    config = _config(run)
    header = {
        "pretty_name": f"selfplay run {run.name}",
        "tags": ["selfplay", "grpo", "reinforcement-learning", "reasoning", "transcripts"],
        "configs": [
            {
                "config_name": name,
                "data_files": [{"split": SPLIT, "path": f"data/{name}/*.parquet"}],
                **({"default": True} if name == TRANSCRIPTS else {}),
            }
            for name in counts
        ],
    }
    parts = [
        f"---\n{yaml.safe_dump(header, sort_keys=False)}---",
        f"# selfplay run `{run.name}`",
        "Every completion of a GRPO run of selfplay, one row each (`transcripts`), the run's "
        "logged metrics (`metrics`)"
        + (", and its held-out evals (`evals`)" if EVALS in counts else "")
        + ".",
        _loading(counts),
        _run_section(run, tables, config, counts),
        "## Config\n\nThe run's `config.json`, as YAML:\n\n```yaml\n"
        + (yaml.safe_dump(config, sort_keys=False) if config else "# (no config.json)\n")
        + "```",
        _columns_section(tables, counts),
    ]
    return "\n\n".join(parts) + "\n"


def _config(run: Path) -> dict[str, Any]:
    path = run / "config.json"
    return read_json(path) if path.is_file() else {}


def model_line(config: dict[str, Any]) -> str:
    """The model a run trained, as its config names it."""
    model = config.get("model")
    if model is None:
        return "unknown (the run has no config.json)"
    if model == "organism":
        return f"`organism`: the base-model organism of `{config.get('organism_config')}`"
    return f"`{model}`"


def _loading(counts: dict[str, Any]) -> str:
    lines = [
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'transcripts = load_dataset("PATH_OR_REPO", split="{SPLIT}")  # the default config',
    ]
    others = [name for name in counts if name != TRANSCRIPTS]
    lines += [
        f'{name} = load_dataset("PATH_OR_REPO", "{name}", split="{SPLIT}")' for name in others
    ]
    return "\n".join([*lines, "```"])


def _run_section(
    run: Path, tables: RunTables, config: dict[str, Any], counts: dict[str, Any]
) -> str:
    rows = counts[TRANSCRIPTS]
    summary_path = run / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else None
    lines = ["## The run", "", f"- model: {model_line(config)}"]
    if summary is not None:
        lines.append(
            f"- finished: {summary.get('steps')} steps in {summary.get('train_seconds')} s"
        )
    else:
        lines.append("- finished: no (no summary.json): the run as it stood when exported")
    envs = ", ".join(f"{env} ({n} rows)" for env, n in sorted(rows.get("envs", {}).items()))
    roles = ", ".join(f"{role} ({n})" for role, n in sorted(rows.get("roles", {}).items()))
    lines += [
        f"- transcripts: {rows['rows']} rows, {rows['steps']} steps "
        f"({rows['first_step']} to {rows['last_step']}), {len(rows.get('envs', {}))} envs",
        f"- envs: {envs}",
        f"- roles: {roles}",
    ]
    lines += [f"- left out: {note}" for note in tables.notes()]
    if METRICS in counts:
        m = counts[METRICS]
        span = f", steps {m['steps'][0]} to {m['steps'][1]}" if m["steps"] else ""
        lines.append(f"- metrics: {m['rows']} records, {len(m['columns'])} columns{span}")
    for folder in eval_folders(run):
        meta = read_json(folder / "eval.json") if (folder / "eval.json").is_file() else {}
        label = meta.get("label", folder.name)
        n = counts.get(EVALS, {}).get("labels", {}).get(label, 0)
        lines.append(
            f"- eval `{label}`: {n} rows, model `{meta.get('model')}` at step {meta.get('step')}"
        )
    return "\n".join(lines)


def _columns_section(tables: RunTables, counts: dict[str, Any]) -> str:
    meanings = column_meanings()
    lines = [
        "## Columns",
        "",
        "### transcripts",
        "",
        "| column | type | meaning |",
        "| --- | --- | --- |",
    ]
    for f in tables.transcripts.schema:
        meaning = (column_meaning(f.name, meanings) or "").replace("|", "\\|")
        lines.append(f"| `{f.name}` | {f.type} | {meaning} |")
    if tables.evals is not None:
        extra = [n for n in tables.evals.schema.names if n not in tables.transcripts.schema.names]
        lines += [
            "",
            "### evals",
            "",
            "The transcripts' columns (a row per completion of a "
            "held-out task: the greedy one, then the samples), with `run` the eval's label"
            + (", and:" if extra else "."),
            "",
        ]
        lines += [f"- `{n}`: {column_meaning(n, meanings) or ''}" for n in extra]
    if tables.metrics is not None:
        lines += [
            "",
            "### metrics",
            "",
            METRICS_NOTE,
            "",
            *_metric_groups(tables.metrics.schema.names),
        ]
    return "\n".join(lines)


def _metric_groups(names: list[str]) -> list[str]:
    """One line per namespace (the part before the first ``/``) with its columns."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.split("/", 1)[0] if "/" in name else "", []).append(name)
    return [
        f"- {f'`{space}/...`' if space else 'un-namespaced'} ({len(cols)}): "
        + ", ".join(f"`{c}`" for c in cols)
        for space, cols in groups.items()
    ]


# -- the Hub --------------------------------------------------------------------------------


def check_repo_id(repo: str) -> None:
    """A ``UsageError`` for a repo id the Hub would refuse (checked before anything is written)."""
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except ValueError as err:
        raise UsageError(f"--push-to-hub {repo!r}: {str(err).split('. ')[0]}") from None


def push_to_hub(folder: str | Path, repo: str) -> str:
    """Upload the dataset folder to the Hub dataset repo ``repo`` (created if missing); return
    its URL. Any failure (no network, no token, refused) is a ``HubError`` on one line."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        # create_repo first: without a network it fails at once, where upload_folder retries.
        url = api.create_repo(repo, repo_type="dataset", exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset")
    except Exception as err:  # whatever the Hub client raises: the folder is written anyway
        first = (str(err).strip().splitlines() or [""])[0]
        raise HubError(
            f"--push-to-hub {repo}: upload failed ({type(err).__name__}: {first}); the dataset "
            f"folder {folder} is written: push it later with "
            f"`hf upload {repo} {folder} --repo-type dataset`"
        ) from None
    return str(url)
