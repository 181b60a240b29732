"""What the training loop keeps: transcripts, metrics, probes, and the curriculum's feedback.

These plug into TRL's ``GRPOTrainer`` through its public extension points only: the reward
functions (``selfplay.scoring.Scorer`` hands each scored batch to the ``Recorder``), the train
dataset (``task_stream``) and callbacks (``MetricsLog``, ``ProbeCallback``).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from envs import Environment, Task, task_to_json
from rewards import ScoredBatch
from selfplay.behaviours import aggregate
from selfplay.dashboards import Dashboards
from selfplay.dialogue import dialogue_metrics, transcript_fields
from selfplay.scoring import group_advantages, primary_verdicts, totals
from selfplay.transcripts import TranscriptWriter, schema
from selfplay.transcripts.rows import head, task_fields, verdict_fields


def task_row(task: Task, carry_task: bool = False, system: str = "") -> dict[str, Any]:
    """A task as a dataset row: a conversational prompt plus the columns rewards read.

    ``system``: a system prompt put before the task. ``carry_task``: the task's message also
    carries the Task, for dialogue rollouts (which see only prompts; see ``selfplay.dialogue``).
    """
    from selfplay.generation import messages

    prompt = messages(task, system)
    if carry_task:
        from selfplay.dialogue import dialogue_prompt

        prompt[-1] = dialogue_prompt(task)[-1]
    return {
        "prompt": prompt,
        "task": task_to_json(task),
        "task_id": task.task_id,
        "env": task.env,
        "difficulty": task.difficulty,
        "specified": task.specified,
    }


def task_stream(challenger, carry_task: bool = False, system: str = ""):
    """The challenger's tasks as a TRL-ready ``IterableDataset``."""
    from datasets import IterableDataset

    def rows():
        for index, task in challenger.numbered():
            yield {**task_row(task, carry_task, system), "draw": index}

    return IterableDataset.from_generator(rows)


class Recorder:
    """Records each scored batch (``selfplay.scoring.Scorer``'s ``on_batch``): a transcript
    row per completion (written as one Parquet file for the step), solve outcomes to the
    curriculum, and per-step metrics to TRL's logger.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        run_name: str,
        judge,
        curriculum,
        tokenizer,
        weights: dict[str, float],
        scale_rewards: str | bool,
        num_generations: int,
    ):
        self.writer = TranscriptWriter(Path(run_dir) / "transcripts")
        self.run_name = run_name
        self.judge = judge
        """The Scorer's judge: turns a batch's summed counts into statistics (several processes)."""
        self.curriculum = curriculum
        self.tokenizer = tokenizer
        self.weights = dict(weights)
        """Component name -> weight, in the order of the reward functions."""
        self.scale_rewards = scale_rewards
        self.num_generations = num_generations
        self.tag_history: list[dict[str, float]] = []
        self.seconds = 0.0
        """Time spent recording (rows, Parquet, metrics): this project's cost per batch."""
        self.step_offset = 0
        """Added to the trainer's step: self-play runs a fresh trainer per phase on one step count."""
        self.next_draw = 0
        """The challenger's draw index after the last task recorded (the ``draw`` column)."""
        self.completions = None
        """``completions(step, rows, reward_names)``: where each step's rows go as the
        completions table (the run's ``MetricsLog.completions``: to the dashboards); None for
        nowhere."""

    def record(self, batch: ScoredBatch, columns: dict[str, Any]) -> None:
        """Turn the scored batch into transcript rows, curriculum updates and metrics.

        With several training processes (a launched run) each scores its own slice of the
        generation batch: the slices are gathered in rank order, which is the order of the
        batch itself. Rank 0 records the whole batch as one process would, then sends every
        process the scores, so all curricula take the same updates in the same order and
        set the same levels for the next batch.
        """
        rank, size = world()
        if size > 1:
            batch, columns = _gathered(batch, columns)
            if rank != 0:
                self._follow(batch, columns)
                return
        scores = self._record(batch, columns)
        if size > 1:
            from torch.distributed import broadcast_object_list

            broadcast_object_list([scores], src=0)

    def _follow(self, batch: ScoredBatch, columns: dict[str, Any]) -> None:
        """A process other than rank 0: the curriculum updates rank 0 made, in its order."""
        from torch.distributed import broadcast_object_list

        if "draw" in columns:
            self.next_draw = max(self.next_draw, max(columns["draw"]) + 1)
        received: list[Any] = [None]
        broadcast_object_list(received, src=0)
        self._feed(batch.tasks, received[0])

    def _record(self, batch: ScoredBatch, columns: dict[str, Any]) -> list[float]:
        """Record one whole scored batch; return its verdict scores, in order."""
        start = time.perf_counter()
        step = self.step_offset + columns["trainer_state"].global_step
        if "draw" in columns:
            self.next_draw = max(self.next_draw, max(columns["draw"]) + 1)
        verdicts = primary_verdicts(batch)
        if batch.talks is None:
            tokens = [len(ids) for ids in columns["completion_ids"]]
        else:
            tokens = list(columns["model_tokens"])
        rewards = totals(batch, self.weights)
        advantages = group_advantages(rewards, self.num_generations, self.scale_rewards)
        rows = []
        self._feed(batch.tasks, [v.score for v in verdicts])
        for i in range(len(batch.tasks)):
            rows.append(self._row(batch, i, step, tokens[i], rewards[i], advantages[i]))
        self.writer.write(step, rows)
        self._log(batch, step, rows, columns["log_metric"])
        if self.completions is not None:
            self.completions(step, rows, list(self.weights))
        self.seconds += time.perf_counter() - start
        return [v.score for v in verdicts]

    def _feed(self, tasks: list[Task], scores: list[float]) -> None:
        """Solve outcomes to the curriculum in batch order, a task's group of completions at a
        time (a curriculum with ``window_unit: tasks`` counts the group's mean as one)."""
        g = self.num_generations
        if len(tasks) % g:
            raise ValueError(f"curriculum: {len(tasks)} completions is not whole groups of {g}")
        for k in range(0, len(tasks), g):
            task = tasks[k]
            if any(t.task_id != task.task_id for t in tasks[k : k + g]):
                ids = sorted({t.task_id for t in tasks[k : k + g]})
                raise ValueError(f"curriculum: one group of {g} completions holds tasks {ids}")
            self.curriculum.update_task(task.env, task.difficulty, scores[k : k + g])

    def _row(
        self, batch: ScoredBatch, i: int, step: int, tokens: int, total: float, advantage: float
    ) -> dict:
        """The transcript row of completion ``i`` (columns in ``selfplay.transcripts.schema``)."""
        verdict, text = primary_verdicts(batch)[i], batch.texts[i]
        return {
            **head(self.run_name, step, schema.SOLVER, i // self.num_generations),
            **task_fields(batch.tasks[i]),
            schema.COMPLETION: text,
            schema.COMPLETION_TOKENS: tokens,
            schema.REASONING_TOKENS: reasoning_tokens(self.tokenizer, text),
            **{schema.reward_column(n): batch.rewards[n][i] for n in self.weights},
            schema.REWARD: total,
            schema.ADVANTAGE: advantage,
            **verdict_fields(verdict),
            **({schema.TRUTH_SCORE: batch.truths[i]} if batch.truths is not None else {}),
            **batch.tags[i],
            **(transcript_fields(batch.talks[i]) if batch.talks else {}),
        }

    def _log(self, batch: ScoredBatch, step: int, rows: list[dict], log_metric) -> None:
        """The step's metrics to TRL's logger (and the tag history of the end-of-run table)."""
        verdicts = primary_verdicts(batch)
        step_metrics = {
            **aggregate(batch.tags),
            **self._judge_stats(batch),
            **self.curriculum.metrics(),
        }
        if batch.talks is not None:
            step_metrics.update(dialogue_metrics(batch.talks))
        for env in {t.env for t in batch.tasks}:
            scores = [v.score for t, v in zip(batch.tasks, verdicts, strict=True) if t.env == env]
            step_metrics[f"accuracy/{env}"] = sum(scores) / len(scores)
        for column in ("completion_tokens", "reasoning_tokens"):
            step_metrics[f"length/{column}_mean"] = sum(r[column] for r in rows) / len(rows)
        self.tag_history.append({"step": step, **step_metrics})
        for key, value in step_metrics.items():
            log_metric(key, value)

    def _judge_stats(self, batch: ScoredBatch) -> dict[str, float]:
        """The batch's ``judge/*`` statistics; from the summed counts of its slices when several
        processes scored it."""
        if batch.judge_counts is None:
            return batch.judge_stats
        if hasattr(self.judge, "stats_from"):
            return self.judge.stats_from(batch.judge_counts)
        return self.judge.summarise(batch.judge_counts)


def world() -> tuple[int, int]:
    """(rank, number of processes) of this training process: (0, 1) outside a launched run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# The batch columns a transcript row needs beside the scored batch: gathered across processes.
_GATHERED = ("completion_ids", "model_tokens", "draw")


def _gathered(batch: ScoredBatch, columns: dict[str, Any]) -> tuple[ScoredBatch, dict[str, Any]]:
    """Every process's slice of a scored batch, concatenated in rank order, with the columns
    of ``_GATHERED``."""
    from accelerate.utils import gather_object

    local = {"batch": batch, **{k: list(columns[k]) for k in _GATHERED if k in columns}}
    parts = gather_object([local])
    whole = dict(columns)
    for key in local.keys() - {"batch"}:
        whole[key] = [x for part in parts for x in part[key]]
    return ScoredBatch.concat([part["batch"] for part in parts]), whole


def reasoning_tokens(tokenizer, text: str) -> int:
    """Tokens of a completion's reasoning (its ``<think>`` content, or the text before the tag)."""
    from envs import parse_completion

    reasoning = parse_completion(text).reasoning
    return len(tokenizer(reasoning, add_special_tokens=False)["input_ids"]) if reasoning else 0


def probe_tasks(envs: dict[str, Environment], probe) -> dict[tuple[str, int], list[Task]]:
    """The fixed held-out probe set: ``tasks_per_level`` tasks at every level of every env."""
    return {
        (name, level): [env.task(probe.seed, i, level) for i in range(probe.tasks_per_level)]
        for name, env in envs.items()
        for level in env.levels
    }


PROBE_MEASURES = ("greedy", "sampled", "gold_logprob", "edit_distance", "confidence", "brier")
"""What each probe group records: exact match greedy and sampled, and the continuous
measures of ``selfplay.continuous`` on the greedy completions."""


def run_probes(model, tokenizer, envs, probes, max_new_tokens: int, system: str = "") -> list[dict]:
    """Greedy and sampled (temperature 1) accuracy on every probe group, and the continuous
    measures of the greedy completions (``PROBE_MEASURES``)."""
    import torch

    from selfplay.accuracy import greedy_and_sampled

    rows = []
    was_training = model.training
    # Probing must not change training: its sampling draws from the global generator, so
    # the generator is put back as it was (a run with probes samples as one without).
    rng_state = torch.get_rng_state()
    for (name, level), tasks in probes.items():
        row = {"env": name, "level": level, "n": len(tasks)}
        row.update(
            greedy_and_sampled(
                model,
                tokenizer,
                envs[name],
                tasks,
                max_new_tokens=max_new_tokens,
                system=system,
                continuous=True,
            )
        )
        rows.append(row)
    model.train(was_training)
    torch.set_rng_state(rng_state)
    return rows


CHALLENGER_PROGRESS = {
    "reward": "challenger/reward",
    "valid": "challenger/valid_rate",
    "distinct": "challenger/distinct_ratio",
    "solve": "challenger/solve_rate_mean",
    "level": "challenger/difficulty_mean",
}
"""What a self-play Challenger step shows on its progress line: label -> metric."""


class MetricsLog(TrainerCallback):
    """Every log record to ``metrics.jsonl`` and TensorBoard, and live progress.

    On a terminal the progress is a bar whose text shows reward, accuracy per environment
    and curriculum levels; in a log file (CI, nohup) it is one such line per step.
    """

    def __init__(self, path: Path, console, total_steps: int, dashboards=None):
        self.path = Path(path)
        self.console = console
        self.total_steps = total_steps
        self.probes: list[dict] = []
        self.dashboards = dashboards or Dashboards(self.path.parent, ["tensorboard"])
        """Where each record goes beside ``path`` (``selfplay.dashboards``)."""
        self._replay: list[dict] | None = None
        self._progress = None
        self.seconds = 0.0
        """Time spent writing metrics and progress."""
        self.lines = 0
        """Records written to ``path`` (a checkpoint keeps it; a resume cuts the file back to it)."""

    def resume(self, step: int, records: list[dict]) -> None:
        """A resumed run goes on from ``step``: TensorBoard drops the killed run's events from
        there, and the first record written sends ``records`` (what ``path`` kept) again to the
        dashboards that send from a buffer (``Dashboards.replay``)."""
        self.dashboards.purge_step = step
        self._replay = records

    def write(self, step: int, values: dict[str, float]) -> None:
        """Append one record (and its numbers to the dashboards, after a resumed run's replay)."""
        if self._replay is not None:
            self.dashboards.replay(self._replay)
            self._replay = None
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        self.lines += 1
        self.dashboards.log(step, values)

    def completions(self, step: int, rows: list[dict], reward_names: list[str]) -> None:
        """A Solver step's transcript rows to the dashboards that show tables, as the
        completions table (the recorder, which calls this, counts its time)."""
        self.dashboards.table(step, rows, reward_names)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.console.is_terminal and state.is_world_process_zero:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=self.console,
            )
            self._bar = self._progress.add_task("", total=self.total_steps)
            self._progress.start()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:  # every process logs; rank 0 writes
            self.record(state.global_step, logs)

    def record(self, step: int, logs: dict | None) -> None:
        """Write one log record of ``step`` and show its progress line."""
        start = time.perf_counter()
        try:
            self._on_log(step, logs)
        finally:
            self.seconds += time.perf_counter() - start

    def _on_log(self, step: int, logs) -> None:
        if not logs:
            return
        self.write(step, logs)
        if "challenger/reward" in logs:
            text = "challenger | " + " ".join(
                f"{name} {logs[key]:.2f}"
                for name, key in CHALLENGER_PROGRESS.items()
                if isinstance(logs.get(key), (int, float))
            )
        elif "reward" in logs:
            accuracy = {k.split("/", 1)[1]: v for k, v in logs.items() if k.startswith("accuracy/")}
            levels = {k.split("/")[1]: int(v) for k, v in logs.items() if k.endswith("/level")}
            text = f"reward {logs['reward']:.3f} | acc " + " ".join(
                f"{k} {v:.2f}" for k, v in sorted(accuracy.items())
            )
            if levels:  # none in self-play, where the Challenger sets the difficulty
                text += " | level " + " ".join(f"{k}:{v}" for k, v in sorted(levels.items()))
        else:  # the trainer's closing summary (runtime, mean loss): logged only
            return
        if self._progress is not None:
            self._progress.update(self._bar, completed=step, description=text)
        else:
            self.console.print(f"step {step:>4}/{self.total_steps} {text}", soft_wrap=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.stop()
        self.dashboards.close()


class PhaseLog(TrainerCallback):
    """A self-play phase trainer's logs to the run's ``MetricsLog``, on the run's step count
    (the phase starts at ``offset``), keys prefixed by ``prefix`` (e.g. ``challenger/``)."""

    def __init__(self, metrics: MetricsLog, offset: int, prefix: str = ""):
        self.metrics, self.offset, self.prefix = metrics, offset, prefix

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if logs and self.prefix:
            logs = {k if k.startswith(self.prefix) else self.prefix + k: v for k, v in logs.items()}
        self.metrics.record(self.offset + state.global_step, logs)


class ProbeCallback(TrainerCallback):
    """Evaluates the probe set before training, every ``every`` steps, and at the end.

    ``at_start=False`` skips the probe before training (a resumed run has its probes up to
    the checkpoint already).
    """

    def __init__(
        self, probes, envs, tokenizer, config, metrics: MetricsLog, at_start=True, system=""
    ):
        self.probes, self.envs, self.tokenizer = probes, envs, tokenizer
        self.config, self.metrics = config, metrics
        self.at_start = at_start
        self.system = system

    def probe(self, model, step: int) -> None:
        """Evaluate the probe set with ``model`` and log it at ``step``."""
        rows = run_probes(
            model, self.tokenizer, self.envs, self.probes, self.config.max_new_tokens, self.system
        )
        values: dict[str, float] = {}
        for r in rows:
            self.metrics.probes.append({"step": step, **r})
            for measure in PROBE_MEASURES:
                if measure in r and math.isfinite(r[measure]):
                    values[f"probe/{r['env']}/{r['level']}/{measure}"] = r[measure]
        by_env = defaultdict(list)
        for r in rows:
            by_env[r["env"]].append(r["greedy"])
        for env, scores in by_env.items():
            values[f"probe/{env}/greedy_mean"] = sum(scores) / len(scores)
        self.metrics.write(step, values)
        summary = " ".join(f"{e} {sum(s) / len(s):.2f}" for e, s in by_env.items())
        self.metrics.console.print(f"probe at step {step}: greedy {summary}")

    def _probe(self, args, model, step: int) -> None:
        """``probe`` inside one autocast region where a bf16 run generates with ``generate``
        on the CPU (``selfplay.decode.cast_once``: weights cast once, not once a token)."""
        from selfplay.decode import cast_once

        with cast_once(args):
            self.probe(model, step)

    # Probes run in rank 0 alone (the others wait for it at their next collective step).
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.at_start and state.is_world_process_zero:
            self._probe(args, model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        every = self.config.every
        due = every and state.global_step % every == 0 and state.global_step < state.max_steps
        if due and state.is_world_process_zero:
            self._probe(args, model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero:
            self._probe(args, model, state.global_step)
