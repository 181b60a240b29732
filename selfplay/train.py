"""`selfplay train`: GRPO on tasks a Challenger sets and a Judge scores, with every completion kept.

The learner is TRL's ``GRPOTrainer``, unchanged. Where this departs from plain GRPO on a
fixed dataset:

1. The prompts are not a fixed dataset. A ``ProgramChallenger`` streams tasks whose
   environment is drawn by weight and whose difficulty the ``Curriculum`` sets; TRL reads
   the stream as an ``IterableDataset`` (no shuffle buffer, so a level change takes effect
   on the next batch).
2. Rewards are components (``rewards/``) computed from a Judge's verdicts, each logged on
   its own and combined by TRL with ``reward_weights``.
3. A ``Recorder`` sees every scored batch: it turns each completion into a transcript row
   (verdict, reward components, total, group advantage computed as TRL does, behaviour
   tags), writes the step's Parquet file, feeds the solve outcomes back to the curriculum
   and hands behaviour, length, clarify, judge and curriculum metrics to TRL's logger.
4. A held-out probe set (every level of every environment) is evaluated before training,
   every ``probe.every`` steps and at the end, greedy and sampled.
"""

from __future__ import annotations

from pathlib import Path

from envs import task_from_json, task_to_json
from selfplay.config.load import build_challenger
from selfplay.config.run import RunConfig
from selfplay.decode import fast_rollout, quiet_rollout_notice, uses_fast
from selfplay.disk import disk_full_is_one_line
from selfplay.runs import RunState, dashboards, finish, prepare
from selfplay.scoring import Scorer, build_judge


def train(
    config_path: str | Path,
    console=None,
    callbacks: list | None = None,
    resume: bool | str | Path = False,
    control: str = "",
    rollout_func=None,
    report_to: str | list[str] | None = None,
) -> Path:
    """Run GRPO training for the config at ``config_path``; return the run folder.

    ``control``: "random" or "format_only" sets ``rewards.control`` over the config's, for a
    control run of the same config (named ``<stem>-<control>-<time>``). ``report_to``: the
    dashboards (``selfplay.dashboards``) over the config's ``report_to``.

    ``resume``: True continues the newest unfinished run of this config (the run named by
    ``name:`` when it is set), a path continues that run folder; either way from its last
    complete checkpoint (see ``selfplay.checkpoints``), and the run's stored config must equal
    this one. ``callbacks`` (TRL/transformers ``TrainerCallback``s) are added after our own,
    e.g. to time steps in ``benchmarks/step_overhead.py``. ``rollout_func``: TRL's rollout
    function in place of generation (tests script completions with it).

    Everything that can be checked is checked before anything is written, so a bad config
    leaves nothing behind and never touches an existing run.
    """
    from rich.console import Console

    console = console or Console()
    ready = prepare(config_path, console, resume, control, report_to=report_to)
    model, tokenizer = ready.loaded
    then = (
        "free some space, then continue from the last complete checkpoint with "
        f"`selfplay train {ready.source} --resume {ready.run_dir}`"
    )
    with disk_full_is_one_line(ready.run_dir, then):
        if ready.config.selfplay.enabled:
            from selfplay import play

            return play.run_selfplay(
                ready.config,
                ready.envs,
                (ready.model_path, model, tokenizer),
                ready.run_dir,
                console,
                ready.source,
                callbacks,
                resume=bool(resume),
            )
        return run(
            ready.config,
            ready.envs,
            ready.args,
            (ready.model_path, model, tokenizer),
            ready.run_dir,
            console,
            callbacks or [],
            resume=bool(resume),
            rollout_func=rollout_func,
            judge_path=ready.judge_path,
        )


def run(
    config: RunConfig,
    envs: dict,
    args,
    loaded: tuple,
    run_dir: Path,
    console,
    callbacks: list,
    resume: bool = False,
    rollout_func=None,
    make_judge=None,
    judge_path: str = "",
) -> Path:
    """The training loop proper: build the roles, probe, train, probe, report.

    In a launched run (``selfplay.launch``) every training worker runs this; the first one
    (world rank 0) writes the transcripts, metrics, checkpoints' state, ``final/`` and the
    summary, and runs the probes. ``make_judge(name, envs)``: where judges come from (judge
    actors in a launched run; ``selfplay.judges.make_judge`` by default). ``judge_path``: the
    model Judge of ``judge: model`` (see ``resolve_judge_model``).
    """
    from selfplay.checkpoints import latest_checkpoint
    from selfplay.recorder import MetricsLog, world

    main = world()[0] == 0
    challenger = build_challenger(config, envs)
    model_path, model, tokenizer = loaded
    judge = build_judge(config, envs, make_judge, judge_path, (model, tokenizer), console)
    scorer, recorder = _scorer(config, envs, args, judge, challenger, tokenizer, run_dir)
    metrics = MetricsLog(
        run_dir / "metrics.jsonl", console, args.max_steps, dashboards(config, run_dir)
    )
    recorder.completions = metrics.completions
    state = RunState(recorder, metrics)
    checkpoint = latest_checkpoint(run_dir / "checkpoints") if resume else None
    if resume:
        _restore(state.restore(run_dir, checkpoint, console, rewind_files=main), challenger)
        recorder.next_draw = challenger.replay[0][0] if challenger.replay else challenger.index

    snapshot = _snapshots(state, challenger, recorder)
    trainer = _trainer(
        config,
        envs,
        args,
        (model, tokenizer),
        scorer,
        challenger,
        [*_callbacks(config, envs, tokenizer, metrics, snapshot, checkpoint), *callbacks],
        rollout_func,
    )
    console.print(
        f"Training {model_path} on {', '.join(envs)} for {args.max_steps} steps -> {run_dir}"
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = state.seconds()
    if not main:
        trainer.accelerator.wait_for_everyone()
        return run_dir
    _save_final(trainer, run_dir / "final")
    trainer.accelerator.wait_for_everyone()
    finish(
        run_dir,
        console,
        seconds=seconds,
        steps=trainer.state.global_step,
        recorder=recorder,
        metrics=metrics,
        added={"challenger": challenger.seconds},
        curriculum=challenger.curriculum.state_dict(),
    )
    return run_dir


def _snapshots(state: RunState, challenger, recorder):
    """``snapshot(step)``: what a resume needs beyond TRL's checkpoint (selfplay.checkpoints)."""

    def snapshot(step: int) -> dict:
        return state.snapshot(
            step,
            challenger={
                "index": challenger.index,
                "seconds": challenger.seconds,
                # Drawn by the data loader's read-ahead but not trained on: a resumed run
                # hands these out first, as the unbroken run trains on them next.
                "untrained": [
                    [i, task_to_json(t)] for i, t in challenger.untrained(recorder.next_draw)
                ],
            },
            curriculum=challenger.curriculum.state_dict(),
        )

    return snapshot


def _scorer(config: RunConfig, envs: dict, args, judge, challenger, tokenizer, run_dir: Path):
    """The reward components scored once per batch by ``judge``, and the recorder of each
    scored batch; sets ``args.reward_weights``."""
    from rewards import build_rewards
    from selfplay.behaviours import TAGGERS
    from selfplay.recorder import Recorder, world

    funcs, weights = build_rewards(
        config.rewards.effective_weights(), judge, config.rewards.length_limit, TAGGERS
    )
    args.reward_weights = weights
    recorder = Recorder(
        run_dir,
        run_name=run_dir.name,
        judge=judge,
        curriculum=challenger.curriculum,
        tokenizer=tokenizer,
        weights=dict(zip([f.__name__ for f in funcs], weights, strict=True)),
        scale_rewards=args.scale_rewards,
        num_generations=args.num_generations,
    )
    scorer = Scorer(
        funcs,
        judge,
        truth=envs if config.judge != "program" else None,
        on_batch=recorder.record,
        counts=world()[1] > 1,
    )
    return scorer, recorder


def _callbacks(config: RunConfig, envs: dict, tokenizer, metrics, snapshot, checkpoint) -> list:
    """Our callbacks, in order: probes, the metrics log, checkpoints."""
    from selfplay.checkpoints import Checkpointer
    from selfplay.recorder import ProbeCallback, probe_tasks

    return [
        # A resumed run has its probe at the checkpoint's step already (when one was due).
        ProbeCallback(
            probe_tasks(envs, config.probe),
            envs,
            tokenizer,
            config.probe,
            metrics,
            at_start=not checkpoint,
            system=config.system_prompt,
        ),
        metrics,
        Checkpointer(snapshot, keep=config.checkpoint.keep),
    ]


def _trainer(config, envs, args, policy, scorer, challenger, callbacks, rollout_func):
    """TRL's GRPOTrainer on the challenger's task stream, rewarded by ``scorer``."""
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    from selfplay.lm_head import score_completions_only
    from selfplay.recorder import task_stream

    score_completions_only()  # the fused LM head projects only completion tokens on the CPU
    model, tokenizer = policy
    fast = uses_fast(config.sampler, model.config, args)
    if config.dialogue.enabled:
        from selfplay.dialogue import make_rollout_func

        rollout_func = make_rollout_func(
            envs,
            tokenizer,
            config.dialogue,
            chat_template_kwargs=args.chat_template_kwargs,
            fast=fast,
        )
    elif rollout_func is None:
        rollout_func = fast_rollout(config.sampler, model, args)
    with quiet_rollout_notice():
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=scorer.reward_funcs(),
            args=args,
            train_dataset=task_stream(
                challenger, carry_task=config.dialogue.enabled, system=config.system_prompt
            ),
            rollout_func=rollout_func,
            callbacks=callbacks,
        )
    # Our MetricsLog prints a compact line per step; TRL's printer would dump the raw dict.
    trainer.remove_callback(PrinterCallback)
    return trainer


def _restore(state: dict | None, challenger) -> None:
    """The challenger and its curriculum as a checkpoint's ``state`` left them (None: as new)."""
    if state is None:
        return
    challenger.index = state["challenger"]["index"]
    challenger.replay.extend(
        (i, task_from_json(t)) for i, t in state["challenger"].get("untrained", [])
    )
    challenger.seconds = state["challenger"]["seconds"]
    challenger.curriculum.load_state_dict(state["curriculum"])


def _save_final(trainer, final: Path) -> None:
    """The trained model in ``final/``, written aside and renamed into place (replacing one left
    by a run killed between saving it and writing summary.json)."""
    from selfplay.checkpoints import build_dir_atomic

    build_dir_atomic(final, lambda tmp: trainer.save_model(str(tmp)))
