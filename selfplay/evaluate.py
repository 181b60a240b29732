"""`selfplay eval`: many samples per held-out task, kept as eval transcripts.

For every environment and level of a run config's mix, ``tasks_per_level`` held-out tasks
(their own seed, distinct from training, probes and the organism's corpus) are completed
once greedily and ``samples`` times at temperature 1, in batches. Each completion becomes a
transcript row with the training schema (role ``eval``; ``sample`` is -1 for the greedy one,
``temperature`` says which) plus the continuous measures of ``selfplay.continuous`` on the
greedy completion. Two evaluations with the same settings see the same tasks, which is what
pass@k comparisons of a base and a trained model need.

The output folder is written whole (built aside, then renamed)::

    <out>/eval.json                          settings, model, timings, pass@k table
    <out>/transcripts/eval-step-NNNNNN.parquet
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from selfplay.errors import UsageError
from selfplay.transcripts import schema
from selfplay.transcripts.rows import task_fields, verdict_fields

EVAL_FILE = "eval.json"


@dataclass(frozen=True)
class EvalSettings:
    """What an evaluation draws; equal settings mean equal tasks."""

    samples: int = 16
    """Completions at temperature 1 per task (pass@k is reported for k up to this)."""
    tasks_per_level: int = 64
    """Held-out tasks per environment and level (64 lets "never solved" mean a one-sided 95%
    upper bound under 5%: 1 - 0.05 ** (1 / 64) = 0.046)."""
    seed: int = 4242
    """Seed of the held-out tasks (distinct from training, probe and corpus seeds)."""
    max_new_tokens: int = 192
    """Completion budget."""
    sample_seed: int | None = None
    """Seed of the samples when it differs from ``seed`` (same tasks, other draws: how
    ``selfplay compare --seed-b`` shows that sampling noise alone is not a difference)."""

    def __post_init__(self) -> None:
        if not 1 <= self.samples <= 4096:
            raise ValueError(f"samples must be between 1 and 4096, got {self.samples}")
        if self.tasks_per_level < 1:
            raise ValueError(f"tasks_per_level must be at least 1, got {self.tasks_per_level}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")


def eval_tasks(config, envs: dict, settings: EvalSettings) -> list:
    """The held-out tasks: every level of every environment in the config's mix."""
    from selfplay.config.load import mix_levels

    return [
        envs[name].task(settings.seed, i, level)
        for name, levels in mix_levels(config, envs).items()
        for level in levels
        for i in range(settings.tasks_per_level)
    ]


def resolve_eval_model(model: str, config, console) -> tuple[str, int]:
    """``(model path, step)``: "organism", a run folder (its ``final/``), a checkpoint folder
    (``checkpoint-N``, step N) or any model folder or hub name (step 0)."""
    from selfplay.config.load import resolve_model

    if model == "organism":
        return resolve_model(config, console), 0
    path = Path(model)
    if (path / "final" / "config.json").is_file():
        summary = path / "summary.json"
        step = json.loads(summary.read_text()).get("steps", 0) if summary.is_file() else 0
        return str(path / "final"), int(step)
    if m := re.fullmatch(r"checkpoint-(\d+)", path.name):
        return model, int(m.group(1))
    return model, 0


def evaluate_model(
    model: str | Path,
    config_path: str | Path,
    out: str | Path | None = None,
    *,
    samples: int = 16,
    tasks_per_level: int = 64,
    seed: int = 4242,
    max_new_tokens: int | None = None,
    console=None,
    ray_address: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """``selfplay eval``: sample ``model`` ("organism", a run folder, a checkpoint folder or any
    model folder) on the held-out tasks of the run config at ``config_path`` into ``out``
    (default ``evals/<model>-n<samples>``); return eval.json's contents and the folder.
    ``max_new_tokens``: default the config's probe budget. A bad setting is a ``UsageError``.
    """
    from selfplay.config.load import load_envs, load_run_config

    config = load_run_config(config_path)
    budget = config.probe.max_new_tokens if max_new_tokens is None else max_new_tokens
    try:
        settings = EvalSettings(samples, tasks_per_level, seed, budget)
    except ValueError as err:
        raise UsageError(str(err)) from None
    envs = load_envs(config, str(config_path))
    path, step = resolve_eval_model(str(model), config, console)
    out = Path(out) if out else Path("evals") / f"{Path(path).name}-n{samples}"
    meta = evaluate(
        path, config, envs, settings, out, step=step, console=console, ray_address=ray_address
    )
    return meta, out


def evaluate(
    model_source: str,
    config,
    envs: dict,
    settings: EvalSettings,
    out: Path,
    *,
    step: int = 0,
    label: str | None = None,
    console=None,
    batch_size: int = 64,
    backend: str = "auto",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_source`` on the config's held-out tasks into the folder ``out``.

    ``ray_address``: evaluate in ``resources.eval_actors`` Ray actors there (as for
    ``selfplay launch``), a level at a time; the rows are those of one process.

    ``backend``: the generation engine, "auto" (vLLM when it is installed and a CUDA GPU is
    present, else transformers: ``selfplay.backends.choose_backend``), "vllm" or
    "transformers"; the choice and its reason are printed and kept in ``eval.json``.
    Returns the contents of ``eval.json``.
    """
    from rich.console import Console

    from selfplay.backends import choose_backend
    from selfplay.checkpoints import build_dir_atomic
    from selfplay.models import load_model
    from selfplay.transcripts import TranscriptWriter

    console = console or Console()
    label = label or Path(model_source).name
    choice = choose_backend(backend)
    console.print(f"eval: {choice.reason}")
    model, tokenizer = load_model(model_source)
    tasks = eval_tasks(config, envs, settings)
    start = time.perf_counter()
    if ray_address:
        rows = _ray_rows(
            str(model_source), config, tasks, settings, batch_size, ray_address, console
        )
    else:
        rows = _rows(
            model,
            tokenizer,
            config,
            envs,
            tasks,
            settings,
            batch_size,
            console,
            backend=choice.name,
            model_source=str(model_source),
        )
    seconds = time.perf_counter() - start
    rows = [{"run": label, "step": step, **row} for row in rows]
    meta = {
        "model": str(model_source),
        "label": label,
        "step": step,
        "backend": choice.name,
        "backend_reason": choice.reason,
        **_contents(config, envs, settings, tasks, rows, seconds),
    }

    def fill(tmp: Path) -> None:
        TranscriptWriter(tmp / "transcripts").write(step, rows, role="eval")
        (tmp / EVAL_FILE).write_text(json.dumps(meta, indent=2))  # the folder is atomic

    build_dir_atomic(Path(out), fill)
    return meta


def _contents(config, envs, settings, tasks, rows, seconds: float) -> dict[str, Any]:
    """What ``eval.json`` says of the evaluation beside the model and backend: settings,
    environments, sizes, timing and the pass@k summary."""
    import pandas as pd

    from selfplay.analysis.evals import summarise
    from selfplay.config.load import mix_levels

    return {
        "settings": asdict(settings),
        "envs": mix_levels(config, envs),
        "system_prompt": config.system_prompt,
        "tasks": len(tasks),
        "rows": len(rows),
        "seconds": round(seconds, 1),
        "completion_tokens": int(sum(r["completion_tokens"] for r in rows)),
        "summary": summarise(pd.DataFrame(rows)),
    }


def _rows(
    model,
    tokenizer,
    config,
    envs,
    tasks,
    settings,
    batch_size,
    console,
    *,
    backend: str = "transformers",
    model_source: str = "",
    offset: int = 0,
) -> list[dict]:
    """The eval rows; ``backend`` "vllm" generates with vLLM from ``model_source``.

    Sampling is seeded per environment and level (``_group_seed``) and generated a level at
    a time, so a level's samples do not depend on which other levels are evaluated with it,
    or where (one process, or Ray actors each taking some levels). ``offset``: the index of
    the first task among all evaluated (the rows' ``group``).
    """
    from selfplay.generation import chat_prompts
    from selfplay.judges import make_judge

    prompts = chat_prompts(tokenizer, tasks, config.system_prompt)
    greedy, sampled = _completions(
        model,
        tokenizer,
        tasks,
        prompts,
        settings,
        batch_size,
        console,
        backend=backend,
        model_source=model_source,
    )
    # Eval is judged against ground truth whatever judge the run trained on.
    judge = make_judge("program", envs)
    rewards = _reward_parts(config, judge)
    first = judge(tasks, greedy)
    extras = _greedy_measures(model, tokenizer, envs, tasks, prompts, greedy, first)
    n = settings.samples
    blank = {k: None for k in extras[0]}
    rows: list[dict] = []
    for i, task in enumerate(tasks):
        texts = [greedy[i], *sampled[i * n : (i + 1) * n]]
        verdicts = [first[i], *judge([task] * n, texts[1:])]
        rows += _task_rows(
            tokenizer,
            task,
            prompts[i],
            texts,
            verdicts,
            rewards,
            group=offset + i,
            extras=[extras[i]] + [blank] * n,
        )
    return rows


def _completions(
    model,
    tokenizer,
    tasks,
    prompts,
    settings,
    batch_size,
    console,
    *,
    backend: str,
    model_source: str,
) -> tuple[list[str], list[str]]:
    """``(greedy, sampled)``: one greedy completion per task, then ``settings.samples`` at
    temperature 1 per task (task by task), with a progress bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    n = settings.samples
    total = len(tasks) * (n + 1)
    with Progress(
        TextColumn("eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        bar = progress.add_task("", total=total)

        def advance(k: int) -> None:
            progress.advance(bar, k)

        if backend == "vllm":
            from selfplay.backends import vllm_generate

            greedy, sampled = vllm_generate(
                model_source,
                tokenizer,
                prompts,
                samples=n,
                max_new_tokens=settings.max_new_tokens,
                seed=_sampling_seed(settings),
                max_model_len=getattr(model.config, "max_position_embeddings", None),
                on_batch=advance,
            )
        else:
            greedy, sampled = _generate_by_level(
                model, tokenizer, tasks, prompts, settings, batch_size, advance
            )
    if not console.is_terminal:
        console.print(f"eval: {total} completions of {len(tasks)} tasks")
    return greedy, sampled


def _generate_by_level(
    model, tokenizer, tasks, prompts, settings, batch_size, advance
) -> tuple[list[str], list[str]]:
    """Transformers' ``(greedy, sampled)``, generated a level at a time under its own seed."""
    import torch

    from selfplay.generation import generate

    n = settings.samples
    common = dict(max_new_tokens=settings.max_new_tokens, batch_size=batch_size)
    greedy, sampled = [""] * len(tasks), [""] * (len(tasks) * n)
    for key, members in _levels(tasks).items():
        torch.manual_seed(_group_seed(_sampling_seed(settings), *key))
        mine = [prompts[i] for i in members]
        texts = generate(model, tokenizer, mine, temperature=0.0, on_batch=advance, **common)
        drawn = generate(
            model,
            tokenizer,
            [p for p in mine for _ in range(n)],
            temperature=1.0,
            on_batch=advance,
            **common,
        )
        for k, i in enumerate(members):
            greedy[i] = texts[k]
            sampled[i * n : (i + 1) * n] = drawn[k * n : (k + 1) * n]
    return greedy, sampled


def _greedy_measures(model, tokenizer, envs, tasks, prompts, greedy, verdicts) -> list[dict]:
    """Per task, the continuous measures of its greedy completion (``greedy_<measure>``),
    batched per environment."""
    from selfplay.continuous import continuous_metrics
    from selfplay.generation import Attempt

    extras: list[dict] = [{}] * len(tasks)
    for env_name in {t.env for t in tasks}:
        mine = [i for i, t in enumerate(tasks) if t.env == env_name]
        measured = continuous_metrics(
            model,
            tokenizer,
            envs[env_name],
            [prompts[i] for i in mine],
            [Attempt(tasks[i], greedy[i], verdicts[i]) for i in mine],
        )
        for i, values in zip(mine, measured, strict=True):
            extras[i] = {f"greedy_{k}": _finite(v) for k, v in values.items()}
    return extras


def _reward_parts(config, judge) -> tuple[list[str], list, list[float]]:
    """``(names, functions, weights)`` of the run's reward terms, judged by ``judge``."""
    from rewards import build_rewards
    from selfplay.behaviours import TAGGERS

    funcs, weights = build_rewards(
        config.rewards.weights, judge, config.rewards.length_limit, TAGGERS
    )
    return [f.__name__ for f in funcs], funcs, weights


def _task_rows(
    tokenizer, task, prompt: str, texts, verdicts, rewards, *, group: int, extras
) -> list[dict]:
    """The transcript rows of one task's completions (the greedy one first, ``sample`` -1)."""
    from envs import task_to_json
    from selfplay.behaviours import tag
    from selfplay.recorder import reasoning_tokens
    from selfplay.scoring import weighted_total

    names, funcs, weights = rewards
    columns = {"task": [task_to_json(task)] * len(texts)}
    scores = {
        name: f(prompts=[prompt] * len(texts), completions=texts, **columns)
        for name, f in zip(names, funcs, strict=True)
    }
    rows = []
    for j, (text, verdict) in enumerate(zip(texts, verdicts, strict=True)):
        parts = {schema.reward_column(k): v[j] for k, v in scores.items()}
        total_reward = weighted_total((parts[schema.reward_column(k)] for k in names), weights)
        tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        rows.append(
            {
                schema.ROLE: schema.EVAL,
                schema.GROUP: group,
                schema.SAMPLE: j - 1,
                schema.TEMPERATURE: 0.0 if j == 0 else 1.0,
                **task_fields(task),
                schema.COMPLETION: text,
                schema.COMPLETION_TOKENS: tokens,
                schema.REASONING_TOKENS: reasoning_tokens(tokenizer, text),
                **parts,
                schema.REWARD: total_reward,
                schema.ADVANTAGE: None,
                **verdict_fields(verdict),
                **tag(text, task, verdict),
                **extras[j],
            }
        )
    return rows


def _levels(tasks: list) -> dict[tuple[str, int], list[int]]:
    """Indices of ``tasks`` by (environment, level), in order of first appearance."""
    out: dict[tuple[str, int], list[int]] = {}
    for i, task in enumerate(tasks):
        out.setdefault((task.env, task.difficulty), []).append(i)
    return out


def _sampling_seed(settings: EvalSettings) -> int:
    return settings.seed if settings.sample_seed is None else settings.sample_seed


def _group_seed(seed: int, env: str, level: int) -> int:
    """The sampling seed of one environment and level."""
    return stable_seed(seed, f"{env}/{level}")


def stable_seed(seed: int, key: str) -> int:
    """A seed for the draws of ``key`` (a level, a task id) under ``seed``: stable across
    processes (no ``hash()``), so a draw does not depend on what is drawn beside it."""
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % 2**63


class EvalActor:
    """A Ray actor that holds the model and evaluates the levels it is given (``rows``)."""

    def __init__(self, model_source: str, config, settings, batch_size: int):
        from selfplay.config.load import load_envs
        from selfplay.models import load_model

        self.model, self.tokenizer = load_model(model_source)
        self.config, self.settings, self.batch_size = config, settings, batch_size
        self.envs = load_envs(config, "eval actor")

    def rows(self, parts: list[tuple[int, list]]) -> list[list[dict]]:
        """For each ``(offset, tasks)`` of one level: its eval rows, as ``_rows`` makes them."""
        from rich.console import Console

        return [
            _rows(
                self.model,
                self.tokenizer,
                self.config,
                self.envs,
                tasks,
                self.settings,
                self.batch_size,
                Console(quiet=True),
                offset=offset,
            )
            for offset, tasks in parts
        ]


def _ray_rows(
    model_source: str, config, tasks: list, settings, batch_size: int, ray_address: str, console
):
    """The eval rows, computed by ``resources.eval_actors`` Ray actors, a level each in turn:
    the same rows as ``_rows`` in one process (sampling is seeded per level)."""
    from selfplay.actors import ActorPool
    from selfplay.launch import connect

    resources = config.resources
    connect(ray_address, resources.eval_actors * resources.eval_cpus)
    parts = [(members[0], [tasks[i] for i in members]) for members in _levels(tasks).values()]
    size = min(resources.eval_actors, len(parts))
    console.print(f"eval: {len(parts)} levels on {size} Ray actor(s)")
    pool = ActorPool.start(
        EvalActor,
        (model_source, config, settings, batch_size),
        name=f"selfplay-eval-{os.getpid()}-{time.time_ns()}",
        size=size,
        cpus=resources.eval_cpus,
        timeout=resources.actor_timeout,
        max_restarts=resources.max_restarts,
    )
    try:
        done = pool.map("rows", parts, what=f"evaluating {model_source}")
    finally:
        pool.close()
    return [row for rows in done for row in rows]


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def read_eval(folder: str | Path):
    """``(meta, rows)`` of an eval folder: its ``eval.json`` and its transcripts (pandas)."""
    from selfplay.transcripts import read_transcripts

    folder = Path(folder)
    meta_path = folder / EVAL_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder}: not an eval folder (no {EVAL_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as err:  # JSONDecodeError or UnicodeDecodeError
        raise ValueError(f"{meta_path}: not JSON: {err}") from None
    return meta, read_transcripts(folder, role="eval")
