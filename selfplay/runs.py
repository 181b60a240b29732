"""A run folder: checked before anything is written, created whole, found again to resume.

``prepare`` is what ``selfplay train`` and ``selfplay launch`` share: the config checked
(against the environments, TRL, the judge, the GPU's memory), the model resolved, the run
folder named and created with its ``config.json``, or the unfinished run to resume found and
checked to hold the same config.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.config.grpo import PHASE_KEYS, check_grpo_options, grpo_config, phase_args
from selfplay.config.load import (
    load_envs,
    mix_levels,
    resolve_judge_model,
    resolve_model,
    stored_config,
)
from selfplay.config.run import RewardConfig, RunConfig
from selfplay.config.strict import ConfigError, load_config, to_dict
from selfplay.dashboards import Dashboards, check_installed, report_to_names
from selfplay.disk import check_writable, disk_full_is_one_line
from selfplay.judges import judge_names
from selfplay.organism.corpus import takes_proposals


@dataclass
class Prepared:
    """A run checked and ready to train: everything ``train`` and ``launch`` share."""

    config: RunConfig
    source: str
    run_dir: Path
    envs: dict
    args: Any
    """TRL's GRPOConfig."""
    model_path: str
    loaded: tuple | None
    """(model, tokenizer) when ``prepare`` was asked to load them."""
    judge_path: str = ""
    """The model Judge's folder or name ("policy": the trained model); empty without one."""


def prepare(
    config_path: str | Path,
    console,
    resume: bool | str | Path = False,
    control: str = "",
    load: bool = True,
    check=None,
    report_to: str | list[str] | None = None,
) -> Prepared:
    """Check the config, find or name the run folder, resolve the model (pretraining the
    organism if needed), load it (``load``; else only check that its config loads) and
    create the run folder (unless resuming). ``check(prepared)``: more checks, run last,
    before the folder is created. ``report_to``: the dashboards, over the config's.

    Everything that can be checked is checked before anything is written, so a bad config
    leaves nothing behind and never touches an existing run.
    """
    source = str(config_path)
    config = load_config(config_path, RunConfig)
    if control:
        try:
            config.rewards = RewardConfig(**{**to_dict(config.rewards), "control": control})
        except ValueError as err:
            raise ConfigError(f"--control: {err}") from None
    if report_to is not None:
        try:
            report_to_names(report_to)
        except ValueError as err:
            raise ConfigError(f"--report-to: {err}") from None
        config.report_to = report_to
    stored = to_dict(config)
    if resume:
        run_dir = _run_to_resume(config, Path(config_path), stored, resume, console)
        check_writable(run_dir, source, "--resume")
    else:
        check_writable(Path(config.runs_dir), source, "runs_dir")
        stem = Path(config_path).stem + (f"-{control}" if control else "")
        name = config.name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(config.runs_dir) / name
        check_writable(run_dir, source, "name")
        if run_dir.exists() and any(run_dir.iterdir()):
            _check_same_config(run_dir, stored, source)
            raise ConfigError(
                f"{source}: run folder {run_dir} already exists "
                "(continue it with --resume, or set another name)"
            )
    envs = load_envs(config, source)
    args = grpo_config(config, run_dir / "checkpoints", source)
    if config.precision == "auto":
        from selfplay.precision import uses_bf16

        uses_bf16("auto", console, cuda=not args.use_cpu)  # the one line that says which
    if config.selfplay.enabled:
        check_selfplay(config, envs, source)
        phase_args(config, run_dir, source, "challenger")  # its errors, before any write
    if config.dialogue.enabled:
        _check_dialogue(config, envs, args, source)
    _check_judge(config, source)
    check_installed(report_to_names(config.report_to), source)
    model_path = resolve_model(config, console)
    judge_path = resolve_judge_model(config, model_path, console)
    memory_preflight(config, args, model_path, source, console)
    if load:
        from selfplay.models import load_model

        loaded = load_model(model_path)
    else:
        from selfplay.models import load_model_config

        load_model_config(model_path)
        loaded = None
    _check_sampler(config, args, loaded[0].config if loaded else None, model_path, source)
    ready = Prepared(config, source, run_dir, envs, args, model_path, loaded, judge_path)
    if check is not None:
        check(ready)
    if not resume:
        with disk_full_is_one_line(run_dir, "free some space and start the run again"):
            _create_run_dir(run_dir, stored)
    return ready


def memory_preflight(config: RunConfig, args, model_path: str, source: str, console) -> None:
    """On a CUDA GPU: estimate the run's GPU memory (``selfplay.preflight``) and print it, or
    stop with a ConfigError naming the largest terms and a setting that fits, before anything
    is written or loaded. Without a GPU there is nothing to check."""
    from selfplay.preflight import PreflightError, check, format_estimate, gpu_total_memory

    total = gpu_total_memory()
    if total is None:
        return
    from selfplay.models import load_model_config

    try:
        estimate = check(
            load_model_config(model_path),
            args,
            total,
            prompt_length=_prompt_length(config, model_path),
        )
    except PreflightError as err:
        raise ConfigError(f"{source}: {err}") from None
    console.print(format_estimate(estimate))


def _prompt_length(config: RunConfig, model_path: str) -> int:
    """Tokens of the longest prompt among a few tasks at every level of the mix, as the
    trainer will see it (chat template and system prompt included)."""
    from transformers import AutoTokenizer

    from selfplay.generation import chat_prompts

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    envs = load_envs(config, "")
    tasks = [
        envs[name].task(config.seed, i, level)
        for name, levels in mix_levels(config, envs).items()
        for level in levels
        for i in range(4)
    ]
    texts = chat_prompts(tokenizer, tasks, config.system_prompt)
    return max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def _check_sampler(config: RunConfig, args, model_config, model_path: str, source: str) -> None:
    """A ConfigError where ``sampler: fast`` cannot sample this model with these options."""
    from selfplay.decode import uses_fast

    if config.sampler != "fast":
        return
    if model_config is None:
        from selfplay.models import load_model_config

        model_config = load_model_config(model_path)
    try:
        uses_fast(config.sampler, model_config, args)
    except ValueError as err:
        raise ConfigError(f"{source}: key 'sampler': {err}") from None


def _check_judge(config: RunConfig, source: str) -> None:
    """A ConfigError for an unknown judge, or a model judge where it cannot run yet."""
    names = judge_names()
    if config.judge not in names:
        raise ConfigError(
            f"{source}: key 'judge': unknown judge {config.judge!r} "
            f"(choose one of: {', '.join(names)})"
        )
    if config.judge == "model" and (config.selfplay.enabled or config.dialogue.enabled):
        key = "selfplay" if config.selfplay.enabled else "dialogue"
        raise ConfigError(
            f"{source}: key 'judge': the model judge does not support {key} yet; "
            "use judge: program or majority there"
        )


def _check_dialogue(config: RunConfig, envs: dict, args, source: str) -> None:
    from selfplay.dialogue import answering_envs

    try:
        if not answering_envs(envs, config.dialogue):
            raise ValueError(f"none of the environments ({', '.join(envs)}) answers questions")
    except ValueError as err:
        raise ConfigError(f"{source}: key 'dialogue': {err}") from None
    if args.use_vllm:
        raise ConfigError(
            f"{source}: key 'dialogue.enabled': dialogues generate with the trainer's model; "
            "set grpo.use_vllm to false"
        )


def _create_run_dir(run_dir: Path, stored: dict) -> None:
    """The run folder with its config.json, created whole (built aside, then renamed; an
    existing ``run_dir`` here is an empty folder the user made)."""
    from selfplay.checkpoints import build_dir_atomic

    def fill(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "config.json").write_text(json.dumps(stored, indent=2))

    build_dir_atomic(run_dir, fill)


def _check_same_config(run_dir: Path, stored: dict, source: str) -> None:
    """A ConfigError naming the keys where ``run_dir``'s config differs from ``stored``."""
    try:
        before = stored_config(run_dir)
    except ValueError as err:
        raise ConfigError(f"{source}: {run_dir} is not a selfplay run: {err}") from None
    keys = _run_differences(before, stored)
    if keys:
        raise ConfigError(
            f"{source}: run folder {run_dir} holds a different config "
            f"(differs at {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}); nothing changed"
        )


WHERE_KEYS = ("resources", "report_to")
"""Run-config keys that say where a run trains and reports (a resumed run may move to another
cluster, or open a dashboard), not what it is: left out of the same-config check."""


def _run_differences(before: dict, now: dict) -> list[str]:
    """Keys at which a run's stored config and a config differ, ``WHERE_KEYS`` aside."""
    return _differences(
        {k: v for k, v in before.items() if k not in WHERE_KEYS},
        {k: v for k, v in now.items() if k not in WHERE_KEYS},
    )


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            k
            for key in sorted(set(a) | set(b), key=str)
            for k in _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        ]
    return [] if a == b else [prefix.rstrip(".") or "(root)"]


def _run_to_resume(
    config: RunConfig, path: Path, stored: dict, resume: bool | str | Path, console=None
) -> Path:
    """The run folder ``--resume`` continues, checked to hold this config and be unfinished.

    Looking for the newest unfinished run of this config, a sibling run whose ``config.json``
    is damaged is skipped with a warning: it cannot be this config's run, and must not stop
    the search. The run resumed itself must have a readable one (a ConfigError names it).
    """
    source = str(path)
    root = Path(config.runs_dir)
    if resume is not True:
        run_dir = Path(resume)
    elif config.name:
        run_dir = root / config.name
    else:
        # Unnamed runs are <config stem>-<start time>: the newest one with this config.
        candidates = sorted(root.glob(f"{path.stem}-*"), reverse=True)
        matching = []
        for p in candidates:
            if not (p / "config.json").exists() or (p / "summary.json").exists():
                continue
            try:
                before = stored_config(p)
            except ValueError as err:
                if console is not None:
                    console.print(
                        f"warning: not resuming {p}: {err}",
                        style="yellow",
                        markup=False,
                        soft_wrap=True,
                    )
                continue
            if not _run_differences(before, stored):
                matching.append(p)
        if not matching:
            raise ConfigError(f"{source}: no unfinished run of this config under {root} to resume")
        run_dir = matching[0]
    if not run_dir.is_dir():
        raise ConfigError(f"{source}: --resume: run folder {run_dir} does not exist")
    _check_same_config(run_dir, stored, source)
    if (run_dir / "summary.json").exists():
        raise ConfigError(f"{source}: run {run_dir} already finished; nothing to resume")
    return run_dir


def check_selfplay(config: RunConfig, envs: dict, source: str) -> None:
    """ConfigErrors for a self-play config that cannot run (before anything is written)."""
    unfit = [name for name, env in envs.items() if not takes_proposals(env)]
    if unfit:
        raise ConfigError(
            f"{source}: key 'envs.{unfit[0]}': self-play needs environments that take "
            "proposals (from_proposal), e.g. arithmetic, countdown"
        )
    if config.dialogue.enabled:
        raise ConfigError(f"{source}: key 'dialogue.enabled': self-play does not run dialogues")
    if config.rewards.control:
        raise ConfigError(
            f"{source}: key 'rewards.control': controls are for runs without self-play"
        )
    if "max_steps" in config.grpo:
        raise ConfigError(
            f"{source}: key 'grpo.max_steps': self-play steps are set by selfplay.iterations, "
            "selfplay.challenger_steps and selfplay.solver_steps"
        )
    for name, instead in PHASE_KEYS.items():
        if name in config.selfplay.challenger_grpo:
            raise ConfigError(
                f"{source}: key 'selfplay.challenger_grpo.{name}' is set by selfplay; use {instead}"
            )
    check_grpo_options(config.selfplay.challenger_grpo, source, "selfplay.challenger_grpo")


def dashboards(config: RunConfig, run_dir: Path) -> Dashboards:
    """The dashboards of the run's ``report_to``, each given the run config."""
    return Dashboards(run_dir, report_to_names(config.report_to), to_dict(config))


def finish(
    run_dir: Path, console, *, seconds: float, steps: int, recorder, metrics, added, **more
) -> None:
    """Write ``summary.json`` (with ``more``'s parts) and print the probes and the totals.

    ``added``: seconds this project spent beside the recorder and the metrics, by part.
    """
    from selfplay.checkpoints import write_json_atomic
    from selfplay.tables import before_after_table, peak_memory

    summary = {
        "train_seconds": round(seconds, 1),
        "steps": steps,
        "transcript_rows": recorder.writer.rows_written,
        "transcript_bytes": recorder.writer.bytes_written,
        **more,
        "probes": metrics.probes,
        # What this project adds to TRL's loop, in seconds over the whole run (probes apart).
        "added_seconds": {
            **{part: round(s, 3) for part, s in added.items()},
            "recorder": round(recorder.seconds, 3),
            "metrics": round(metrics.seconds, 3),
        },
    }
    write_json_atomic(run_dir / "summary.json", summary)
    console.print(before_after_table(metrics.probes, recorder.tag_history))
    console.print(
        f"Done in {seconds:.0f}s; {recorder.writer.rows_written} transcript rows "
        f"({_per_row(recorder.writer)} bytes/row) in {run_dir / 'transcripts'}; {peak_memory()}"
    )


def _per_row(writer) -> str:
    return f"{writer.bytes_written / writer.rows_written:.0f}" if writer.rows_written else "n/a"


class RunState:
    """The counters a run keeps beside its models, one for ``selfplay train`` and self-play:
    what a checkpoint's ``state.json`` holds of the recorder, the metrics log and the wall
    time (``snapshot``), and how a resumed run gets them back (``restore``). Each loop adds
    its own parts (the challenger and curriculum; the task pool and iterations)."""

    def __init__(self, recorder, metrics):
        self.recorder = recorder
        self.metrics = metrics
        self.earlier = 0.0
        """Seconds trained before this process started (a resumed run's)."""
        self.start = time.perf_counter()

    def seconds(self) -> float:
        """Seconds trained so far, earlier processes included."""
        return self.earlier + time.perf_counter() - self.start

    def snapshot(self, step: int, **parts: Any) -> dict[str, Any]:
        """The state a resume needs beyond the models, with the loop's own ``parts``."""
        writer = self.recorder.writer
        return {
            "step": step,
            "train_seconds": self.seconds(),
            **parts,
            "transcripts": {
                "rows_written": writer.rows_written,
                "bytes_written": writer.bytes_written,
            },
            "recorder": {"seconds": self.recorder.seconds},
            "metrics": {"lines": self.metrics.lines, "seconds": self.metrics.seconds},
            "probes": self.metrics.probes,
        }

    def restore(
        self, run_dir: Path, checkpoint: Path | None, console, rewind_files: bool = True
    ) -> dict[str, Any] | None:
        """Put the counters back at ``checkpoint`` and return its whole state, for the loop's
        own parts; None without a checkpoint (the run starts again from step 0). Either way
        what the killed run wrote later is rewound (``rewind_files``: one process of a
        launched run does this; every process restores its own counters)."""
        from selfplay.checkpoints import load_state, rewind
        from selfplay.transcripts.reading import metric_records

        if checkpoint is None:
            undone = rewind(run_dir, 0, 0) if rewind_files else {"transcripts_discarded": 0}
            console.print(
                f"No complete checkpoint in {run_dir}: starting it again from step 0 "
                f"({undone['transcripts_discarded']} transcript files moved to discarded/)"
            )
            self.metrics.resume(0, [])
            self.start = time.perf_counter()
            return None
        state = load_state(checkpoint)
        undone = (
            rewind(run_dir, state["step"], state["metrics"]["lines"])
            if rewind_files
            else {"transcripts_discarded": 0, "metrics_lines_cut": 0}
        )
        recorder, metrics = self.recorder, self.metrics
        recorder.writer.rows_written = state["transcripts"]["rows_written"]
        recorder.writer.bytes_written = state["transcripts"]["bytes_written"]
        recorder.seconds = state["recorder"]["seconds"]
        records = metric_records(run_dir) if metrics.path.exists() else []
        recorder.tag_history = [r for r in records if "reward" in r]
        metrics.lines = state["metrics"]["lines"]
        metrics.seconds = state["metrics"]["seconds"]
        metrics.probes = state["probes"]
        metrics.resume(state["step"] + 1, records)
        self.earlier, self.start = state["train_seconds"], time.perf_counter()
        where = f" (iteration {len(state['iterations'])})" if "iterations" in state else ""
        console.print(
            f"Resuming {run_dir} from {checkpoint.name}{where}: {undone['transcripts_discarded']} "
            f"transcript files of later steps moved to discarded/, "
            f"{undone['metrics_lines_cut']} metrics lines cut"
        )
        return state
