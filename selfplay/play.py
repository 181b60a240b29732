"""Self-play: a model Challenger writes the tasks, the Solver learns them, both by GRPO.

A run alternates two phases, ``selfplay.iterations`` times, each a TRL ``GRPOTrainer`` run of
a few steps on the same model objects (so each phase starts a fresh optimizer):

1. **Challenger phase** (``challenger_steps`` steps). The Challenger is prompted
   ``Propose a task for <env>.`` and writes ``<task>…</task>``, ``proposals_per_prompt`` per
   prompt (its GRPO group). Each proposal becomes a task through the environment's
   ``from_proposal``: the ground truth is computed there, never taken from the Challenger.
   Unparsable, invalid and unsafe proposals are rejected; a task already proposed in this
   batch or in the recent window is a duplicate. The Solver (sampling at temperature 1)
   attempts every distinct valid task ``attempts`` times; its solve rate ``p`` rates the task.
2. **Solver phase** (``solver_steps`` steps). The Solver trains on this iteration's
   accepted tasks whose solve rate lies in ``keep_band`` (always or never solved teach
   nothing), with earlier iterations' tasks replayed at ``replay_rate``, rewarded by the
   run's usual components and judge.

The Challenger's reward for one proposal is ``selfplay.challenger.REWARD_FORMULA`` (computed
by ``challenger_reward``; the report prints it beside the curves). With ``frontier_weight`` > 0
it also pays for climbing: a task at or above its environment's frontier (the lowest level the
Solver has not yet mastered, by ``selfplay.challenger.Frontier``'s running estimates) that the
Solver solves at least once earns ``frontier_weight`` more, so a Challenger settled on an easy
level is pulled to the next one once the Solver masters it.

``mode: shared`` is one model under role-conditioned prompts (the Challenger's prompt names
its role, the Solver's is the task); ``mode: separate`` trains a second model as Challenger.

Against collapse: the fixed held-out probe set (every level of every environment) after each
iteration; per Challenger step the distinct ratio, the spread of difficulty and solve rate,
and the token entropy of the proposals; and a collapse check. A step whose proposals are
mostly invalid, mostly alike, or almost all unsolved (or all solved) is flagged in
``metrics.jsonl`` (``challenger/collapsed``), on the console and in ``summary.json``; an
iteration with no task fit to train on skips its Solver phase and says so.

A checkpoint is committed after every iteration (``checkpoint.every`` > 0): the models and
this loop's state, from which ``selfplay train CONFIG --resume`` continues a killed run.

Transcripts: role ``challenger`` (one row per proposal: status, computed task, solve rate,
reward terms), role ``attempt`` (the Solver attempts that rated it, same ``task_id``) and role
``solver`` (training rows, as in ``selfplay train``), so ``selfplay transcripts RUN --chain
TASK_ID`` follows a task from proposal to attempts to training.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from rewards import build_rewards
from selfplay.behaviours import TAGGERS
from selfplay.challenger import ModelChallenger, TaskPool
from selfplay.config.grpo import phase_args
from selfplay.config.run import RunConfig
from selfplay.decode import fast_rollout, quiet_rollout_notice
from selfplay.generation import prompt_messages
from selfplay.judges import make_judge
from selfplay.models import load_model
from selfplay.runs import RunState, dashboards, finish
from selfplay.scoring import Scorer


class _Unscheduled:
    """The Recorder's curriculum in self-play: the Challenger sets difficulty, nothing moves."""

    def update_task(self, env: str, difficulty: int, scores: list[float]) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}


def challenger_rows(config, envs: dict, seed: int):
    """Endless Challenger prompt rows: an environment drawn by weight, its proposal prompt.

    No system prompt: the run's ``system_prompt`` states the Solver's format, and a proposal
    prompt states its own (``Environment.challenger_prompt``).
    """
    names = list(config.envs)
    weights = [config.envs[n].weight for n in names]
    rng = random.Random(f"selfplay/{seed}")
    while True:
        name = rng.choices(names, weights)[0]
        yield {
            "prompt": prompt_messages(envs[name].challenger_prompt()),
            "env": name,
        }


def solver_rows(tasks, system: str):
    """The Solver phase's rows, from a stream of tasks."""
    from selfplay.recorder import task_row

    for task in tasks:
        yield task_row(task, system=system)


def run_selfplay(
    config: RunConfig,
    envs: dict,
    loaded: tuple,
    run_dir: Path,
    console,
    source: str,
    callbacks: list | None = None,
    resume: bool = False,
) -> Path:
    """Alternate Challenger and Solver phases (see the module docstring); return the run folder.

    ``callbacks`` join every phase's trainer. ``resume``: continue ``run_dir`` from its last
    checkpoint (one is committed after every iteration while ``checkpoint.every`` > 0: the
    models and this loop's state; each phase starts a fresh optimizer anyway, so nothing else
    is needed), rewinding what the killed run wrote after it; with none, from the start.
    """
    return SelfPlay(config, envs, loaded, run_dir, console, source, callbacks or []).run(resume)


class SelfPlay:
    """One self-play run's parts: both models, both phases' GRPOConfigs, the Solver's scorer
    and recorder, the Challenger's reward (``ModelChallenger``), the task pool, the probes."""

    def __init__(
        self,
        config: RunConfig,
        envs: dict,
        loaded: tuple,
        run_dir: Path,
        console,
        source: str,
        callbacks: list,
    ):
        from selfplay.recorder import MetricsLog, ProbeCallback, Recorder, probe_tasks

        self.config, self.envs, self.run_dir, self.console = config, envs, run_dir, console
        self.callbacks = callbacks
        play = self.play = config.selfplay
        self.model_path, self.solver, self.tokenizer = loaded
        self.challenger = self.solver
        if play.mode == "separate":
            self.challenger, _ = load_model(play.challenger_model or self.model_path)
        self.solver_args = phase_args(config, run_dir, source, "solver")
        self.challenger_args = phase_args(config, run_dir, source, "challenger")
        total = play.iterations * (play.challenger_steps + play.solver_steps)
        self.metrics = MetricsLog(
            run_dir / "metrics.jsonl", console, total, dashboards(config, run_dir)
        )
        self.probe = ProbeCallback(
            probe_tasks(envs, config.probe),
            envs,
            self.tokenizer,
            config.probe,
            self.metrics,
            system=config.system_prompt,
        )
        judge = make_judge(config.judge, envs)  # one judge: the Solver's rewards and the attempts
        funcs, self.solver_args.reward_weights = build_rewards(
            config.rewards.effective_weights(), judge, config.rewards.length_limit, TAGGERS
        )
        self.recorder = Recorder(
            run_dir,
            run_name=run_dir.name,
            judge=judge,
            curriculum=_Unscheduled(),
            tokenizer=self.tokenizer,
            weights=dict(
                zip([f.__name__ for f in funcs], self.solver_args.reward_weights, strict=True)
            ),
            scale_rewards=self.solver_args.scale_rewards,
            num_generations=self.solver_args.num_generations,
        )
        self.recorder.completions = self.metrics.completions
        self.scorer = Scorer(funcs, judge, on_batch=self.recorder.record)
        self.pool = TaskPool(play.window)
        self.proposer = ModelChallenger(
            envs=envs,
            play=play,
            solver=self.solver,
            tokenizer=self.tokenizer,
            judge=judge,
            pool=self.pool,
            writer=self.recorder.writer,
            run_name=run_dir.name,
            system=config.system_prompt,
            max_new_tokens=self.solver_args.max_completion_length,
            scale_rewards=self.challenger_args.scale_rewards,
            console=console,
        )
        self.state = RunState(self.recorder, self.metrics)
        self.step, self.iterations = 0, []

    def run(self, resume: bool) -> Path:
        """Every iteration not done yet, then the final models and the summary."""
        play = self.play
        self.console.print(
            f"Self-play ({play.mode}) on {self.model_path}: {play.iterations} iterations of "
            f"{play.challenger_steps} Challenger + {play.solver_steps} Solver steps "
            f"-> {self.run_dir}"
        )
        if resume:
            self._restore()
        self.metrics.on_train_begin(None, None, None)
        if not self.iterations:
            self.probe.probe(self.solver, 0)
        for iteration in range(len(self.iterations), play.iterations):
            self._iteration(iteration)
        self.metrics.on_train_end(None, None, None)
        self._finish()
        return self.run_dir

    def _iteration(self, iteration: int) -> None:
        """A Challenger phase, a Solver phase on the tasks kept, probes and a checkpoint."""
        # The row generators close over plain values only: datasets pickles them to fingerprint.
        play, config, pool, envs = self.play, self.config, self.pool, self.envs
        seed = config.seed + iteration
        self.proposer.step_offset = self.step
        self.challenger_args.seed = self.solver_args.seed = seed
        rows = lambda seed=seed: challenger_rows(config, envs, seed)  # noqa: E731
        self._phase(self.challenger, self.challenger_args, [self.proposer], rows, "challenger/")
        self.step += play.challenger_steps
        done = {"iteration": iteration, "kept": len(pool.fresh), "replay": len(pool.replay)}
        if play.solver_steps and (pool.fresh or pool.replay):
            self.recorder.step_offset = self.step
            rows = lambda seed=seed: solver_rows(  # noqa: E731
                pool.stream(play.replay_rate, seed), config.system_prompt
            )
            self._phase(self.solver, self.solver_args, self.scorer.reward_funcs(), rows, "")
            self.step += play.solver_steps
        elif play.solver_steps:
            done["solver_skipped"] = True
            self.console.print(
                f"[yellow]iteration {iteration}: no proposed task fit to train on "
                f"(solve rate within {play.keep_band}); Solver phase skipped[/]"
            )
        pool.next_iteration()
        self.iterations.append({**done, "step": self.step})
        self.probe.probe(self.solver, self.step)
        if config.checkpoint.every:
            _checkpoint(
                self.run_dir,
                self.solver,
                self.challenger,
                self.tokenizer,
                self._snapshot(),
                config.checkpoint.keep,
            )

    def _phase(self, model, args, reward_funcs: list, rows, prefix: str) -> None:
        """One phase: a fresh GRPOTrainer of ``model`` on the rows ``rows()`` yields."""
        from datasets import IterableDataset
        from transformers import PrinterCallback
        from trl import GRPOTrainer

        from selfplay.lm_head import score_completions_only
        from selfplay.recorder import PhaseLog

        score_completions_only()
        with quiet_rollout_notice():
            trainer = GRPOTrainer(
                model=model,
                processing_class=self.tokenizer,
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=IterableDataset.from_generator(rows),
                rollout_func=fast_rollout(self.config.sampler, model, args),
                callbacks=[PhaseLog(self.metrics, self.step, prefix), *self.callbacks],
            )
        trainer.remove_callback(PrinterCallback)
        trainer.train()

    def _snapshot(self) -> dict[str, Any]:
        """What a resume needs besides the models (see ``_restore``)."""
        proposer = self.proposer
        return self.state.snapshot(
            self.step,
            iterations=self.iterations,
            pool=self.pool.state_dict(),
            frontier=proposer.frontier.state_dict(),
            challenger={
                "history": proposer.history,
                "collapses": proposer.collapses,
                "seconds": proposer.seconds,
            },
        )

    def _restore(self) -> None:
        """Put a killed run back at its last checkpoint: the models' weights, the task pool,
        the frontier's estimates (none in a checkpoint written before the frontier existed)
        and every counter; what it wrote later is rewound (``RunState.restore``)."""
        from selfplay.checkpoints import latest_checkpoint

        checkpoint = latest_checkpoint(self.run_dir / "checkpoints")
        state = self.state.restore(self.run_dir, checkpoint, self.console)
        if state is None:
            return
        _load_weights(self.solver, checkpoint / SOLVER_DIR)
        if self.challenger is not self.solver:
            _load_weights(self.challenger, checkpoint / CHALLENGER_DIR)
        self.pool.load_state_dict(state["pool"])
        self.proposer.frontier.load_state_dict(state.get("frontier", {}))
        self.proposer.history = state["challenger"]["history"]
        self.proposer.collapses = state["challenger"]["collapses"]
        self.proposer.seconds = state["challenger"]["seconds"]
        self.step, self.iterations = state["step"], state["iterations"]

    def _finish(self) -> None:
        """The final models, the collapse warning and the summary."""
        seconds = self.state.seconds()
        _save_model(self.solver, self.tokenizer, self.run_dir / "final")
        if self.play.mode == "separate":
            _save_model(self.challenger, self.tokenizer, self.run_dir / "challenger-final")
        proposer = self.proposer
        if proposer.collapses:
            self.console.print(
                f"[yellow]The Challenger collapsed at {len(proposer.collapses)} of "
                f"{len(proposer.history)} steps[/] (summary.json: selfplay.collapses)"
            )
        finish(
            self.run_dir,
            self.console,
            seconds=seconds,
            steps=self.step,
            recorder=self.recorder,
            metrics=self.metrics,
            added={"challenger": proposer.seconds},
            selfplay={
                "iterations": self.iterations,
                "challenger_steps": proposer.history,
                "collapses": proposer.collapses,
            },
        )


SOLVER_DIR, CHALLENGER_DIR = "solver", "challenger"
"""The models in a self-play checkpoint (the Challenger's only in separate mode)."""


def _checkpoint(run_dir: Path, solver, challenger, tokenizer, state: dict, keep: int) -> None:
    """Commit ``checkpoints/checkpoint-<step>/`` whole (built aside, then renamed), then
    remove all but the newest ``keep``."""
    import json
    import shutil

    from selfplay.checkpoints import STATE_FILE, build_dir_atomic, checkpoints

    def fill(tmp: Path) -> None:
        solver.save_pretrained(str(tmp / SOLVER_DIR))
        tokenizer.save_pretrained(str(tmp / SOLVER_DIR))
        if challenger is not solver:
            challenger.save_pretrained(str(tmp / CHALLENGER_DIR))
        (tmp / STATE_FILE).write_text(json.dumps(state))

    folder = run_dir / "checkpoints"
    build_dir_atomic(folder / f"checkpoint-{state['step']}", fill)
    for _, old in checkpoints(folder)[:-keep]:
        shutil.rmtree(old)


def _load_weights(model, folder: Path) -> None:
    """Load the weights ``save_pretrained`` wrote to ``folder`` into ``model`` in place."""
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(str(folder), dtype=model.dtype)
    model.load_state_dict(saved.state_dict())


def _save_model(model, tokenizer, folder: Path) -> None:
    """``save_pretrained`` of model and tokenizer, written aside and renamed into place."""
    from selfplay.checkpoints import build_dir_atomic

    def fill(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    build_dir_atomic(folder, fill)
