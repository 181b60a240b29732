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

The Challenger's reward for one proposal is ``REWARD_FORMULA`` (computed by
``challenger_reward``; the report prints it beside the curves).

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

import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("shared", "separate")
REWARD_FORMULA = """\
r = u(p) - w_rep * repetition    valid task, p = the Solver's solve rate over its attempts
r = u(p) - w_rep                 duplicate (the same task, in this batch or the recent window)
r = -invalid_penalty             rejected: unparsable, invalid or unsafe

u(p) = 1 - |2p - 1|              "uncertainty" (R-Zero): 1 at p = 1/2, 0 at p = 0 or 1
u(p) = 1 - p if 0 < p < 1 else 0 "learnability" (Absolute Zero)
repetition = min(1, share of the batch's other valid tasks that are near-duplicates
                    + share of the recent window's tasks that are near-duplicates)
near-duplicates: 1 - Levenshtein(a, b) / max(|a|, |b|) >= near_duplicate, over what the
Challenger wrote; exact duplicates are the same task_id, whatever the wording"""
"""The Challenger's reward for one proposal (``challenger_reward``), as the report shows it."""
CHALLENGER_REWARDS = ("uncertainty", "learnability")


@dataclass
class CollapseConfig:
    """When a Challenger step counts as collapsed."""

    valid_floor: float = 0.1
    """Collapsed when fewer than this share of proposals are tasks at all (new or repeated)."""
    distinct_floor: float = 0.25
    """Collapsed when distinct tasks / proposals that are tasks falls below this (all alike)."""
    duplicate_ceiling: float = 0.75
    """Collapsed when at least this share of proposals repeat a task (of the batch or window)."""
    solved_ceiling: float = 0.95
    """Collapsed when at least this share of valid tasks is never solved, or always solved."""

    def __post_init__(self) -> None:
        for name in ("valid_floor", "distinct_floor", "duplicate_ceiling", "solved_ceiling"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"selfplay.collapse.{name} must be in [0, 1], got {getattr(self, name)}"
                )


@dataclass
class SelfPlayConfig:
    """Self-play: a model Challenger proposes the tasks (see ``selfplay.play``)."""

    enabled: bool = False
    """Train by self-play instead of on the ProgramChallenger's curriculum."""
    mode: str = "shared"
    """"shared": one model in both roles (role-conditioned prompts); "separate": a second
    model trained as Challenger."""
    challenger_model: str = ""
    """Separate mode: the Challenger's starting model (default: the Solver's base model)."""
    iterations: int = 4
    """Challenger phase + Solver phase, this many times."""
    challenger_steps: int = 4
    """GRPO steps per Challenger phase."""
    solver_steps: int = 8
    """GRPO steps per Solver phase."""
    prompts_per_step: int = 4
    """Challenger prompts per step, each naming an environment drawn by ``envs.*.weight``."""
    proposals_per_prompt: int = 8
    """Proposals per prompt: the Challenger's GRPO group."""
    attempts: int = 8
    """Solver attempts that rate each distinct proposed task."""
    reward: str = "uncertainty"
    """The Challenger's reward for a solve rate p: "uncertainty" or "learnability"."""
    repetition_weight: float = 0.5
    """Weight of the repetition penalty."""
    invalid_penalty: float = 1.0
    """Reward of a rejected proposal is minus this."""
    near_duplicate: float = 0.8
    """Proposal similarity at or above which two tasks are near-duplicates."""
    window: int = 128
    """Recent accepted tasks that duplicates and repetition are checked against."""
    keep_band: list[float] = field(default_factory=lambda: [0.1, 0.9])
    """Solve rates of proposed tasks the Solver trains on, [low, high] inclusive."""
    replay_rate: float = 0.25
    """Share of Solver tasks replayed from earlier iterations."""
    max_proposal_tokens: int = 32
    """Completion budget of a proposal."""
    challenger_grpo: dict[str, Any] = field(default_factory=dict)
    """GRPOConfig options for the Challenger phase, over the run's ``grpo:``."""
    collapse: CollapseConfig = field(default_factory=CollapseConfig)
    """When a Challenger step counts as collapsed."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"selfplay.mode must be one of {MODES}, got {self.mode!r}")
        if self.reward not in CHALLENGER_REWARDS:
            raise ValueError(
                f"selfplay.reward must be one of {CHALLENGER_REWARDS}, got {self.reward!r}"
            )
        for name in ("iterations", "challenger_steps", "prompts_per_step", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"selfplay.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("proposals_per_prompt", "attempts"):
            if getattr(self, name) < 2:
                raise ValueError(f"selfplay.{name} must be at least 2, got {getattr(self, name)}")
        if self.solver_steps < 0:
            raise ValueError(f"selfplay.solver_steps must be 0 or more, got {self.solver_steps}")
        if self.max_proposal_tokens < 1:
            raise ValueError(
                f"selfplay.max_proposal_tokens must be at least 1, got {self.max_proposal_tokens}"
            )
        for name in ("repetition_weight", "invalid_penalty"):  # a penalty, never a bonus
            if getattr(self, name) < 0:
                raise ValueError(f"selfplay.{name} must be 0 or more, got {getattr(self, name)}")
        low_high = self.keep_band
        if len(low_high) != 2 or not 0.0 <= low_high[0] <= low_high[1] <= 1.0:
            raise ValueError(
                f"selfplay.keep_band must be [low, high] within [0, 1], got {low_high}"
            )
        for name in ("replay_rate", "near_duplicate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"selfplay.{name} must be in [0, 1], got {getattr(self, name)}")


def uncertainty(p: float) -> float:
    """R-Zero's uncertainty reward: 1 - |2p - 1|."""
    return 1.0 - abs(2.0 * p - 1.0)


def learnability(p: float) -> float:
    """Absolute Zero's learnability reward: 1 - p for 0 < p < 1, else 0."""
    return 1.0 - p if 0.0 < p < 1.0 else 0.0


SOLVE_RATE_REWARDS = {"uncertainty": uncertainty, "learnability": learnability}


def similarity(a: str, b: str) -> float:
    """1 - Levenshtein distance / the longer length (1 for equal strings)."""
    from selfplay.continuous import levenshtein

    longest = max(len(a), len(b))
    return 1.0 - levenshtein(a, b) / longest if longest else 1.0


@dataclass
class Proposal:
    """One Challenger completion and what became of it."""

    env: str
    text: str
    status: str = "ok"
    """"ok", or why it was rejected: unparsable, invalid, unsafe, duplicate."""
    detail: str = ""
    task: Any = None
    """The Task it describes (None when rejected before one was built)."""
    solve_rate: float | None = None
    learnability: float = 0.0
    repetition: float = 0.0
    reward: float = 0.0


def challenger_reward(
    proposals: list[Proposal], window: list[tuple[str, str]], config: SelfPlayConfig
) -> None:
    """Fill each proposal's reward terms (see the module docstring); solve rates must be set.

    ``window``: (env, proposal) of recent accepted tasks.
    """
    score = SOLVE_RATE_REWARDS[config.reward]
    rated = [p for p in proposals if p.task is not None]
    for p in proposals:
        if p.task is None:
            p.learnability, p.repetition = 0.0, 0.0
            p.reward = -config.invalid_penalty
            continue
        p.learnability = score(p.solve_rate)
        if p.status == "duplicate":
            p.repetition = 1.0
        else:
            others = [q for q in rated if q is not p and q.env == p.env]
            near = sum(_near(p, proposal_of(q.task), config) for q in others)
            recent = [text for env, text in window if env == p.env]
            seen = sum(_near(p, text, config) for text in recent)
            p.repetition = min(
                1.0, near / max(1, len(others)) + (seen / len(recent) if recent else 0.0)
            )
        p.reward = p.learnability - config.repetition_weight * p.repetition


def _near(p: Proposal, text: str, config: SelfPlayConfig) -> bool:
    return similarity(proposal_of(p.task), text) >= config.near_duplicate


def proposal_of(task) -> str:
    """What the Challenger wrote for ``task`` (``task_from_proposal`` keeps it)."""
    return task.metadata["proposal"]


def diversity(proposals: list[Proposal], tokenize) -> dict[str, float]:
    """Distinct ratio, difficulty and solve-rate spread, token entropy of one batch's proposals."""
    valid = [p for p in proposals if p.task is not None]
    out = {
        "valid_rate": sum(p.status == "ok" for p in proposals) / len(proposals),
        "duplicate_rate": sum(p.status == "duplicate" for p in proposals) / len(proposals),
    }
    for reason in ("unparsable", "invalid", "unsafe"):
        out[f"rejected/{reason}"] = float(sum(p.status == reason for p in proposals))
    if not valid:
        return out
    distinct = {p.task.task_id: p for p in valid}
    levels = [float(p.task.difficulty) for p in distinct.values()]
    rates = [p.solve_rate for p in distinct.values()]
    tokens = Counter(t for p in valid for t in tokenize(proposal_of(p.task)))
    total = sum(tokens.values())
    out.update(
        distinct_ratio=len(distinct) / len(valid),
        difficulty_mean=_mean(levels),
        difficulty_spread=_spread(levels),
        solve_rate_mean=_mean(rates),
        solve_rate_spread=_spread(rates),
        unsolved_share=sum(r == 0.0 for r in rates) / len(rates),
        solved_share=sum(r == 1.0 for r in rates) / len(rates),
        token_entropy=-sum(c / total * math.log2(c / total) for c in tokens.values())
        if total
        else 0.0,
    )
    return out


def collapse_reasons(stats: dict[str, float], config: CollapseConfig) -> list[str]:
    """Why a Challenger step's proposals count as collapsed (empty when they do not)."""
    reasons = []
    tasks = stats["valid_rate"] + stats["duplicate_rate"]
    if tasks < config.valid_floor:
        reasons.append(f"only {tasks:.0%} of proposals are valid tasks")
    if stats["duplicate_rate"] >= config.duplicate_ceiling:
        reasons.append(f"{stats['duplicate_rate']:.0%} of proposals repeat a task")
    if "distinct_ratio" not in stats:
        return reasons
    if stats["distinct_ratio"] < config.distinct_floor:
        reasons.append(f"proposals alike: distinct ratio {stats['distinct_ratio']:.2f}")
    if stats["unsolved_share"] >= config.solved_ceiling:
        reasons.append(f"{stats['unsolved_share']:.0%} of proposed tasks never solved")
    if stats["solved_share"] >= config.solved_ceiling:
        reasons.append(f"{stats['solved_share']:.0%} of proposed tasks always solved")
    return reasons


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _spread(values: list[float]) -> float:
    """Population standard deviation."""
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


class TaskPool:
    """Accepted tasks: this iteration's (fresh) and earlier ones (replayed), plus the recent
    window that duplicates and repetition are checked against."""

    def __init__(self, window: int):
        self.fresh: list = []
        self.replay: list = []
        self.recent: deque[tuple[str, str]] = deque(maxlen=window)
        self.recent_ids: deque[str] = deque(maxlen=window)

    def seen(self, task_id: str) -> bool:
        return task_id in self.recent_ids

    def accept(self, task, keep: bool) -> None:
        """Note an accepted task; ``keep``: its solve rate makes it worth training on."""
        self.recent.append((task.env, proposal_of(task)))
        self.recent_ids.append(task.task_id)
        if keep:
            self.fresh.append(task)

    def next_iteration(self) -> None:
        self.replay += self.fresh
        self.fresh = []

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready values (tasks as ``task_to_json``)."""
        from envs import task_to_json

        return {
            "fresh": [task_to_json(t) for t in self.fresh],
            "replay": [task_to_json(t) for t in self.replay],
            "recent": [list(r) for r in self.recent],
            "recent_ids": list(self.recent_ids),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        from envs import task_from_json

        self.fresh = [task_from_json(t) for t in state["fresh"]]
        self.replay = [task_from_json(t) for t in state["replay"]]
        self.recent.clear()
        self.recent.extend(tuple(r) for r in state["recent"])
        self.recent_ids.clear()
        self.recent_ids.extend(state["recent_ids"])

    def stream(self, replay_rate: float, seed: int):
        """Endless tasks: fresh ones in shuffled rounds, a replayed one at ``replay_rate``."""
        rng = random.Random(seed)
        fresh, replay = list(self.fresh), list(self.replay)
        order: list = []
        while True:
            if replay and (not fresh or rng.random() < replay_rate):
                yield rng.choice(replay)
                continue
            if not order:
                order = rng.sample(fresh, len(fresh))
            yield order.pop()


class ModelChallenger:
    """A language model setting tasks: turns its proposals into verified tasks and rewards it.

    The model itself is trained by a ``GRPOTrainer`` (the Challenger phase); this object is
    that trainer's reward function. Called with the batch's completions and the prompts'
    ``env`` column, it builds each proposal's task (``envs.task_from_proposal``), rejects and
    counts what is not one, has the Solver attempt the rest, rewards each proposal
    (``challenger_reward``), accepts the tasks into the pool the Solver trains on, writes the
    ``challenger`` and ``attempt`` transcript rows and logs ``challenger/*``.
    """

    __name__ = "challenger"

    def __init__(
        self,
        *,
        envs,
        play: SelfPlayConfig,
        solver,
        tokenizer,
        judge,
        pool: TaskPool,
        writer,
        run_name: str,
        system: str,
        max_new_tokens: int,
        scale_rewards: str | bool,
        console,
    ):
        self.envs = envs
        self.play = play
        self.solver = solver
        self.tokenizer = tokenizer
        self.judge = judge
        self.pool = pool
        self.writer = writer
        self.run_name = run_name
        self.system = system
        self.max_new_tokens = max_new_tokens
        """The Solver's completion budget for its attempts."""
        self.scale_rewards = scale_rewards
        """As the Challenger's GRPOConfig has it, for the advantages in its transcript rows."""
        self.console = console
        self.step_offset = 0
        self.history: list[dict[str, Any]] = []
        """Per step: its ``challenger/*`` metrics (for the summary)."""
        self.collapses: list[dict[str, Any]] = []
        """Per collapsed step: the step and why."""
        self.seconds = 0.0
        """Time spent rating and recording proposals (the Solver's attempts included)."""

    def __call__(self, prompts, completions, env, trainer_state, log_metric, **kwargs):
        from envs import Rejected, task_from_proposal
        from rewards import completion_text

        start = time.perf_counter()
        step = self.step_offset + trainer_state.global_step
        proposals = []
        batch_ids: set[str] = set()
        for name, completion in zip(env, completions, strict=True):
            p = Proposal(name, completion_text(completion))
            try:
                p.task = task_from_proposal(self.envs[name], p.text)
            except Rejected as err:
                p.status, p.detail = err.reason, err.detail
            else:
                if p.task.task_id in batch_ids or self.pool.seen(p.task.task_id):
                    p.status, p.detail = "duplicate", "seen_before"
                batch_ids.add(p.task.task_id)
            proposals.append(p)
        attempts = self._rate(proposals)
        challenger_reward(proposals, list(self.pool.recent), self.play)
        low, high = self.play.keep_band
        kept = 0
        for p in proposals:
            if p.status == "ok":
                keep = low <= p.solve_rate <= high
                self.pool.accept(p.task, keep)
                kept += keep
        stats = diversity(proposals, self._tokens)
        stats["reward_learnability"] = _mean([p.learnability for p in proposals])
        stats["reward_repetition"] = _mean([p.repetition for p in proposals])
        stats["kept"] = float(kept)
        reasons = collapse_reasons(stats, self.play.collapse)
        stats["collapsed"] = float(bool(reasons))
        if reasons:
            self.collapses.append({"step": step, "reasons": reasons})
            self.console.print(
                f"[yellow]challenger collapse at step {step}:[/] {'; '.join(reasons)}"
            )
        self._write(step, proposals, attempts)
        self.history.append({"step": step, **stats})
        for key, value in stats.items():
            log_metric(f"challenger/{key}", value)
        self.seconds += time.perf_counter() - start
        return [p.reward for p in proposals]

    def _rate(self, proposals: list[Proposal]) -> dict[str, list]:
        """Solver attempts on every distinct proposed task; sets each proposal's solve rate."""
        from selfplay.generation import chat_prompts, generate

        tasks = {p.task.task_id: p.task for p in proposals if p.task is not None}
        if not tasks:
            return {}
        g = self.play.attempts
        repeated = [t for t in tasks.values() for _ in range(g)]
        was_training = self.solver.training
        texts = generate(
            self.solver,
            self.tokenizer,
            chat_prompts(self.tokenizer, repeated, self.system),
            max_new_tokens=self.max_new_tokens,
            temperature=1.0,
        )
        self.solver.train(was_training)
        verdicts = self.judge(repeated, texts)
        attempts: dict[str, list] = {task_id: [] for task_id in tasks}
        for task, text, verdict in zip(repeated, texts, verdicts, strict=True):
            attempts[task.task_id].append((text, verdict))
        for p in proposals:
            if p.task is not None:
                scores = [v.score for _, v in attempts[p.task.task_id]]
                p.solve_rate = sum(scores) / len(scores)
        return attempts

    def _tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _write(self, step: int, proposals: list[Proposal], attempts: dict[str, list]) -> None:
        from selfplay.behaviours import tag
        from selfplay.recorder import group_advantages, task_fields

        advantages = group_advantages(
            [p.reward for p in proposals], self.play.proposals_per_prompt, self.scale_rewards
        )
        rows = []
        for i, (p, advantage) in enumerate(zip(proposals, advantages, strict=True)):
            task = p.task
            rows.append(
                {
                    "run": self.run_name,
                    "step": step,
                    "role": "challenger",
                    "group": i // self.play.proposals_per_prompt,
                    "task_id": task.task_id if task else None,
                    "env": p.env,
                    "difficulty": task.difficulty if task else None,
                    "specified": True,
                    "prompt": self.envs[p.env].challenger_prompt(),
                    "answer": task.answer if task else None,
                    "completion": p.text,
                    "completion_tokens": len(self._tokens(p.text)),
                    "proposed_task": task.prompt if task else None,
                    "proposal_status": p.status,
                    "proposal_detail": p.detail,
                    "solve_rate": p.solve_rate,
                    "attempts": len(attempts.get(task.task_id, [])) if task else 0,
                    "reward_learnability": p.learnability,
                    "reward_repetition": p.repetition,
                    "reward": p.reward,
                    "advantage": advantage,
                }
            )
        self.writer.write(step, rows, role="challenger")
        if not attempts:
            return
        rows = []
        by_id = {p.task.task_id: p.task for p in proposals if p.task is not None}
        for group, (task_id, tried) in enumerate(attempts.items()):
            task = by_id[task_id]
            for text, verdict in tried:
                rows.append(
                    {
                        "run": self.run_name,
                        "step": step,
                        "role": "attempt",
                        "group": group,
                        **task_fields(task),
                        "completion": text,
                        "completion_tokens": len(self._tokens(text)),
                        "reward": verdict.score,
                        "verdict_kind": verdict.kind,
                        "verdict_parsed": verdict.parsed,
                        "verdict_score": verdict.score,
                        "verdict_reason": verdict.reason,
                        **tag(text, task, verdict),
                    }
                )
        self.writer.write(step, rows, role="attempt")


class _Unscheduled:
    """The Recorder's curriculum in self-play: the Challenger sets difficulty, nothing moves."""

    def update(self, env: str, difficulty: int, score: float) -> None:
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
    from selfplay.generation import prompt_messages

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


def phase_args(config, run_dir: Path, source: str, role: str):
    """GRPOConfig of one phase: the run's ``grpo:`` with the phase's sizes, no TRL checkpoints."""
    from selfplay.train import grpo_config

    play = config.selfplay
    if role == "solver":
        sizes = {"max_steps": max(1, play.solver_steps)}
    else:
        sizes = {
            "max_steps": play.challenger_steps,
            "num_generations": play.proposals_per_prompt,
            "per_device_train_batch_size": play.prompts_per_step * play.proposals_per_prompt,
            "max_completion_length": play.max_proposal_tokens,
            **play.challenger_grpo,
        }
    return grpo_config(config, run_dir / "checkpoints", source, {**sizes, "save_strategy": "no"})


# Challenger-phase options that selfplay sets from its own keys.
_PHASE_KEYS = {
    "max_steps": "selfplay.challenger_steps",
    "num_generations": "selfplay.proposals_per_prompt",
    "per_device_train_batch_size": "selfplay.prompts_per_step",
    "max_completion_length": "selfplay.max_proposal_tokens",
}


def check(config, envs: dict, source: str) -> None:
    """ConfigErrors for a self-play config that cannot run (before anything is written)."""
    from selfplay.config import ConfigError
    from selfplay.organism.corpus import takes_proposals
    from selfplay.train import check_grpo_options

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
    for name, instead in _PHASE_KEYS.items():
        if name in config.selfplay.challenger_grpo:
            raise ConfigError(
                f"{source}: key 'selfplay.challenger_grpo.{name}' is set by selfplay; use {instead}"
            )
    check_grpo_options(config.selfplay.challenger_grpo, source, "selfplay.challenger_grpo")


def run_selfplay(
    config,
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
    from datasets import IterableDataset

    from rewards import build_rewards
    from selfplay.behaviours import TAGGERS
    from selfplay.judges import make_judge
    from selfplay.models import load_model
    from selfplay.recorder import MetricsLog, PhaseLog, ProbeCallback, Recorder, probe_tasks
    from selfplay.train import finish

    play = config.selfplay
    model_path, solver, tokenizer = loaded
    challenger = solver
    if play.mode == "separate":
        challenger, _ = load_model(play.challenger_model or model_path)
    solver_args = phase_args(config, run_dir, source, "solver")
    challenger_args = phase_args(config, run_dir, source, "challenger")
    total = play.iterations * (play.challenger_steps + play.solver_steps)
    metrics = MetricsLog(run_dir / "metrics.jsonl", console, total_steps=total)
    probes = probe_tasks(envs, config.probe)
    probe = ProbeCallback(
        probes, envs, tokenizer, config.probe, metrics, system=config.system_prompt
    )
    weights = config.rewards.effective_weights()
    judge = make_judge(config.judge, envs)
    funcs, solver_args.reward_weights = build_rewards(
        weights, judge, config.rewards.length_limit, TAGGERS
    )
    recorder = Recorder(
        run_dir,
        run_name=run_dir.name,
        judge=make_judge(config.judge, envs),  # see selfplay.train.run: its own, for judge/*
        curriculum=_Unscheduled(),
        tokenizer=tokenizer,
        names=[f.__name__ for f in funcs],
        weights=solver_args.reward_weights,
        scale_rewards=solver_args.scale_rewards,
        num_generations=solver_args.num_generations,
    )
    pool = TaskPool(play.window)
    proposer = ModelChallenger(
        envs=envs,
        play=play,
        solver=solver,
        tokenizer=tokenizer,
        judge=make_judge(config.judge, envs),
        pool=pool,
        writer=recorder.writer,
        run_name=run_dir.name,
        system=config.system_prompt,
        max_new_tokens=solver_args.max_completion_length,
        scale_rewards=challenger_args.scale_rewards,
        console=console,
    )

    def phase(model, args, reward_funcs, rows, offset: int, prefix: str) -> None:
        from transformers import PrinterCallback
        from trl import GRPOTrainer

        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=IterableDataset.from_generator(rows),
            callbacks=[PhaseLog(metrics, offset, prefix), *(callbacks or [])],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()

    console.print(
        f"Self-play ({play.mode}) on {model_path}: {play.iterations} iterations of "
        f"{play.challenger_steps} Challenger + {play.solver_steps} Solver steps -> {run_dir}"
    )
    step, iterations, earlier = 0, [], 0.0
    if resume:
        step, iterations, earlier = _restore(
            run_dir, solver, challenger, pool, proposer, recorder, metrics, console
        )
    start = time.perf_counter()
    metrics.on_train_begin(None, None, None)
    if not iterations:
        probe.probe(solver, 0)

    def state() -> dict[str, Any]:
        """What a resume needs besides the models (see ``_restore``)."""
        return {
            "step": step,
            "iterations": iterations,
            "train_seconds": earlier + time.perf_counter() - start,
            "pool": pool.state_dict(),
            "challenger": {
                "history": proposer.history,
                "collapses": proposer.collapses,
                "seconds": proposer.seconds,
            },
            "transcripts": {
                "rows_written": recorder.writer.rows_written,
                "bytes_written": recorder.writer.bytes_written,
            },
            "recorder": {"seconds": recorder.seconds},
            "metrics": {"lines": metrics.lines, "seconds": metrics.seconds},
            "probes": metrics.probes,
        }

    for iteration in range(len(iterations), play.iterations):
        seed = config.seed + iteration
        proposer.step_offset = step
        challenger_args.seed = solver_args.seed = seed
        phase(
            challenger,
            challenger_args,
            [proposer],
            lambda seed=seed: challenger_rows(config, envs, seed),
            step,
            "challenger/",
        )
        step += play.challenger_steps
        done = {"iteration": iteration, "kept": len(pool.fresh), "replay": len(pool.replay)}
        if play.solver_steps and (pool.fresh or pool.replay):
            recorder.step_offset = step
            phase(
                solver,
                solver_args,
                [recorder.wrap(f) for f in funcs],
                lambda seed=seed: solver_rows(
                    pool.stream(play.replay_rate, seed), config.system_prompt
                ),
                step,
                "",
            )
            step += play.solver_steps
        elif play.solver_steps:
            done["solver_skipped"] = True
            console.print(
                f"[yellow]iteration {iteration}: no proposed task fit to train on "
                f"(solve rate within {play.keep_band}); Solver phase skipped[/]"
            )
        pool.next_iteration()
        iterations.append({**done, "step": step})
        probe.probe(solver, step)
        if config.checkpoint.every:
            _checkpoint(run_dir, solver, challenger, tokenizer, state(), config.checkpoint.keep)
    metrics.on_train_end(None, None, None)
    seconds = earlier + time.perf_counter() - start
    _save_model(solver, tokenizer, run_dir / "final")
    if play.mode == "separate":
        _save_model(challenger, tokenizer, run_dir / "challenger-final")
    if proposer.collapses:
        console.print(
            f"[yellow]The Challenger collapsed at {len(proposer.collapses)} of "
            f"{len(proposer.history)} steps[/] (summary.json: selfplay.collapses)"
        )
    finish(
        run_dir,
        console,
        seconds=seconds,
        steps=step,
        recorder=recorder,
        metrics=metrics,
        added={"challenger": proposer.seconds},
        selfplay={
            "iterations": iterations,
            "challenger_steps": proposer.history,
            "collapses": proposer.collapses,
        },
    )
    return run_dir


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


def _restore(run_dir: Path, solver, challenger, pool, proposer, recorder, metrics, console):
    """Put a killed self-play run back at its last checkpoint: the models' weights, the task
    pool and every counter; what it wrote later is rewound (``selfplay.checkpoints.rewind``).
    Returns ``(step, iterations done, seconds so far)``; ``(0, [], 0.0)`` without a checkpoint."""
    from selfplay.checkpoints import latest_checkpoint, load_state, rewind

    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        undone = rewind(run_dir, 0, 0)
        console.print(
            f"No complete checkpoint in {run_dir}: starting it again from step 0 "
            f"({undone['transcripts_discarded']} transcript files moved to discarded/)"
        )
        metrics.purge_step = 0
        return 0, [], 0.0
    state = load_state(checkpoint)
    undone = rewind(run_dir, state["step"], state["metrics"]["lines"])
    _load_weights(solver, checkpoint / SOLVER_DIR)
    if challenger is not solver:
        _load_weights(challenger, checkpoint / CHALLENGER_DIR)
    pool.load_state_dict(state["pool"])
    proposer.history = state["challenger"]["history"]
    proposer.collapses = state["challenger"]["collapses"]
    proposer.seconds = state["challenger"]["seconds"]
    recorder.writer.rows_written = state["transcripts"]["rows_written"]
    recorder.writer.bytes_written = state["transcripts"]["bytes_written"]
    recorder.seconds = state["recorder"]["seconds"]
    metrics.lines = state["metrics"]["lines"]
    metrics.seconds = state["metrics"]["seconds"]
    metrics.probes = state["probes"]
    metrics.purge_step = state["step"] + 1
    console.print(
        f"Resuming {run_dir} from {checkpoint.name} (iteration {len(state['iterations'])}): "
        f"{undone['transcripts_discarded']} transcript files of later steps moved to "
        f"discarded/, {undone['metrics_lines_cut']} metrics lines cut"
    )
    return state["step"], state["iterations"], state["train_seconds"]


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
