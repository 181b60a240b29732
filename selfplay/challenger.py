"""The model Challenger's side of self-play: proposals, their rating and reward, the pool.

A ``ModelChallenger`` is a reward function for the Challenger's GRPO phase: each proposal
becomes a task through its environment (the ground truth computed there, never taken from
the Challenger), the Solver's attempts rate it, and its reward is ``REWARD_FORMULA``. The
``Frontier`` follows the Solver up each environment's levels, so that the reward can pay for
climbing (``frontier_weight``). The ``TaskPool`` keeps the accepted tasks the Solver phase
trains on. The loop that alternates the phases is ``selfplay.play``; the other Challenger,
which samples tasks from programmed environments on a curriculum, is
``selfplay.curriculum.ProgramChallenger``.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from envs import Task
from selfplay.config.play import CollapseConfig, SelfPlayConfig
from selfplay.transcripts import schema
from selfplay.transcripts.rows import head, task_fields, verdict_fields

REWARD_FORMULA = """\
r = u(p) + w_front * climb - w_rep * repetition  valid task, p = the Solver's solve rate
r = u(p) + w_front * climb - w_rep               duplicate (the same task, in this batch or
                                                 the recent window)
r = -invalid_penalty                             rejected: unparsable, invalid or unsafe

u(p) = 1 - |2p - 1|              "uncertainty" (R-Zero): 1 at p = 1/2, 0 at p = 0 or 1
u(p) = 1 - p if 0 < p < 1 else 0 "learnability" (Absolute Zero)
repetition = min(1, share of the batch's other valid tasks that are near-duplicates
                    + share of the recent window's tasks that are near-duplicates)
near-duplicates: 1 - Levenshtein(a, b) / max(|a|, |b|) >= near_duplicate, over what the
Challenger wrote; exact duplicates are the same task_id, whatever the wording
climb = 1 if the task's level >= its environment's frontier level and p > 0, else 0
frontier level: the lowest of the environment's levels whose solve-rate estimate (an EMA at
rate frontier_ema over the rated tasks of that level, before this batch) is below frontier_at
or not yet made; the highest level once every one is above. w_front = frontier_weight (0: off)"""
"""The Challenger's reward for one proposal (``challenger_reward``), as the report shows it."""


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
    """u(p): the uncertainty or learnability of its solve rate."""
    repetition: float = 0.0
    climb: float = 0.0
    """1 when its task is at or above the environment's frontier level and solved at all."""
    reward: float = 0.0


def challenger_reward(
    proposals: list[Proposal],
    window: list[tuple[str, str]],
    config: SelfPlayConfig,
    frontier: Frontier | None = None,
) -> None:
    """Fill each proposal's reward terms (``REWARD_FORMULA``); solve rates must be set.

    ``window``: (env, proposal) of recent accepted tasks. ``frontier``: where the Solver
    stands, for the climb term; needed when ``config.frontier_weight`` is above 0 (left out,
    every climb is 0). At ``frontier_weight`` 0 the rewards are exactly those without the
    climb term.
    """
    if config.frontier_weight > 0 and frontier is None:
        raise ValueError("challenger_reward: selfplay.frontier_weight > 0 needs a Frontier")
    score = SOLVE_RATE_REWARDS[config.reward]
    rated = [p for p in proposals if p.task is not None]
    for p in proposals:
        if p.task is None:
            p.learnability, p.repetition, p.climb = 0.0, 0.0, 0.0
            p.reward = -config.invalid_penalty
            continue
        p.learnability = score(p.solve_rate)
        p.climb = float(frontier is not None and frontier.climbs(p.task, p.solve_rate))
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
        p.reward += config.frontier_weight * p.climb  # + 0.0 when off: the old reward exactly


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


class Frontier:
    """Per environment, a running estimate of the Solver's solve rate at each level, and the
    frontier level: the lowest level (``levels``, easiest first) whose estimate is below
    ``at`` or not yet made. The levels below it are mastered; when every level is, the
    frontier is the highest one. It moves both ways: should a mastered level's estimate fall
    below ``at`` again, the frontier goes back down to it.

    Each estimate is an exponential moving average at rate ``ema`` of the solve rates of the
    rated tasks at that level, the first taken as is.
    """

    def __init__(self, levels: dict[str, tuple[int, ...]], at: float, ema: float):
        self.levels = {env: tuple(ladder) for env, ladder in levels.items()}
        self.at = at
        self.ema = ema
        self.estimate: dict[str, dict[int, float]] = {env: {} for env in self.levels}

    def observe(self, env: str, level: int, solve_rate: float) -> None:
        """Move ``env``'s estimate at ``level`` toward ``solve_rate``."""
        if level not in self.levels.get(env, ()):
            raise ValueError(f"frontier: {env} level {level} is not one of its levels")
        estimate = self.estimate[env]
        before = estimate.get(level, solve_rate)
        estimate[level] = before + self.ema * (solve_rate - before)

    def update(self, proposals: list[Proposal]) -> None:
        """Observe every distinct rated task of a batch once (a task proposed twice in a batch
        was rated once)."""
        rated = {p.task.task_id: p for p in proposals if p.task is not None}
        for p in rated.values():
            self.observe(p.env, p.task.difficulty, p.solve_rate)

    def level(self, env: str) -> int:
        """``env``'s frontier level."""
        estimate = self.estimate[env]
        for level in self.levels[env]:
            if level not in estimate or estimate[level] < self.at:
                return level
        return self.levels[env][-1]

    def climbs(self, task: Task, solve_rate: float) -> bool:
        """Whether ``task``, solved at ``solve_rate``, is at or above its environment's
        frontier and solved at all."""
        return task.difficulty >= self.level(task.env) and solve_rate > 0.0

    def metrics(self) -> dict[str, float]:
        """``frontier/<env>``: each environment's frontier level (logged under ``challenger/``)."""
        return {f"frontier/{env}": float(self.level(env)) for env in self.levels}

    def state_dict(self) -> dict[str, Any]:
        """The estimates as JSON-ready values (levels as strings, as JSON keys are)."""
        return {
            "estimate": {e: {str(k): p for k, p in v.items()} for e, v in self.estimate.items()}
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; ``{}`` (a checkpoint from before the frontier
        existed) restores no estimate, as at the start."""
        self.estimate = {env: {} for env in self.levels}
        for env, values in state.get("estimate", {}).items():
            if env not in self.levels:
                raise ValueError(f"frontier: the saved state has an unknown environment {env!r}")
            self.estimate[env] = {int(k): p for k, p in values.items()}


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
    (``challenger_reward``, against the ``frontier`` as it stood before the batch), feeds the
    solve rates to the frontier, accepts the tasks into the pool the Solver trains on, writes
    the ``challenger`` and ``attempt`` transcript rows and logs ``challenger/*`` (with
    ``frontier_weight`` > 0 also ``challenger/reward_climb`` and ``challenger/frontier/<env>``,
    and a ``reward_climb`` transcript column).
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
        self.frontier = Frontier(
            {name: env.levels for name, env in envs.items()},
            at=play.frontier_at,
            ema=play.frontier_ema,
        )
        """Kept whatever ``frontier_weight``, so a resumed run can turn the climb term on."""
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
        challenger_reward(proposals, list(self.pool.recent), self.play, self.frontier)
        self.frontier.update(proposals)
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
        if self.play.frontier_weight > 0:  # off, the metrics are exactly as before
            stats["reward_climb"] = _mean([p.climb for p in proposals])
            stats.update(self.frontier.metrics())
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
        from selfplay.scoring import group_advantages

        advantages = group_advantages(
            [p.reward for p in proposals], self.play.proposals_per_prompt, self.scale_rewards
        )
        climbing = self.play.frontier_weight > 0  # off, the rows have the columns of before
        rows, per_prompt = [], self.play.proposals_per_prompt
        for i, (p, advantage) in enumerate(zip(proposals, advantages, strict=True)):
            task = p.task
            climb = {schema.reward_column("climb"): p.climb} if climbing else {}
            rows.append(
                {
                    **head(self.run_name, step, schema.CHALLENGER, i // per_prompt),
                    schema.TASK_ID: task.task_id if task else None,
                    schema.ENV: p.env,
                    schema.DIFFICULTY: task.difficulty if task else None,
                    schema.SPECIFIED: True,
                    schema.PROMPT: self.envs[p.env].challenger_prompt(),
                    schema.ANSWER: task.answer if task else None,
                    schema.COMPLETION: p.text,
                    schema.COMPLETION_TOKENS: len(self._tokens(p.text)),
                    schema.PROPOSED_TASK: task.prompt if task else None,
                    schema.PROPOSAL_STATUS: p.status,
                    schema.PROPOSAL_DETAIL: p.detail,
                    schema.SOLVE_RATE: p.solve_rate,
                    schema.ATTEMPTS: len(attempts.get(task.task_id, [])) if task else 0,
                    schema.reward_column("learnability"): p.learnability,
                    schema.reward_column("repetition"): p.repetition,
                    **climb,
                    schema.REWARD: p.reward,
                    schema.ADVANTAGE: advantage,
                }
            )
        self.writer.write(step, rows, role=schema.CHALLENGER)
        if not attempts:
            return
        rows = []
        by_id = {p.task.task_id: p.task for p in proposals if p.task is not None}
        for group, (task_id, tried) in enumerate(attempts.items()):
            task = by_id[task_id]
            for text, verdict in tried:
                rows.append(
                    {
                        **head(self.run_name, step, schema.ATTEMPT, group),
                        **task_fields(task),
                        schema.COMPLETION: text,
                        schema.COMPLETION_TOKENS: len(self._tokens(text)),
                        schema.REWARD: verdict.score,
                        **verdict_fields(verdict),
                        **tag(text, task, verdict),
                    }
                )
        self.writer.write(step, rows, role=schema.ATTEMPT)
