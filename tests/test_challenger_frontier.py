"""The Challenger's climb term: the frontier that follows the Solver up an environment's levels,
the reward it adds, its saved state, and a simulated self-play loop in which it makes the
Challenger climb where the solve-rate reward alone keeps it at level 1."""

import json
import math
import random

import pytest
from challengers import ARITHMETIC, proposal, unit_model_challenger

from selfplay.challenger import Frontier, Proposal, challenger_reward
from selfplay.config import config_hash
from selfplay.config.play import SelfPlayConfig

LEVELS = {"arithmetic": ARITHMETIC.levels}  # 1 … 6


def mastered_level_1() -> Frontier:
    frontier = Frontier(LEVELS, at=0.5, ema=0.1)
    frontier.observe("arithmetic", 1, 0.9)
    assert frontier.level("arithmetic") == 2
    return frontier


# -- (a) the reward terms --------------------------------------------------------------------


def test_a_task_at_the_frontier_out_rewards_a_mastered_one_by_the_weight():
    # near_duplicate 1: only equal texts repeat, so repetition is 0 and the climb stands alone
    config = SelfPlayConfig(frontier_weight=0.75, near_duplicate=1.0)
    batch = [
        proposal("12+34", 0.5),  # level 1: mastered
        proposal("123+45", 0.5),  # level 2: the frontier
        proposal("1234+5", 0.0),  # level 3, above the frontier, but never solved
        proposal("1234+6", 0.125),  # level 3, solved once in 8
        proposal("234+56", 0.5, status="duplicate"),  # a repeat still climbs, less w_rep
        proposal("12+(3"),  # rejected
    ]
    assert [p.task.difficulty for p in batch[:5]] == [1, 2, 3, 3, 2] and batch[5].task is None
    challenger_reward(batch, [], config, mastered_level_1())
    assert [p.climb for p in batch] == [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert batch[0].reward == 1.0
    assert batch[1].reward - batch[0].reward == 0.75
    assert batch[2].reward == 0.0  # u(0) and no climb: an unsolvable task earns nothing
    assert batch[3].reward == pytest.approx(0.25 + 0.75)
    assert batch[4].reward == 1.0 + 0.75 - 0.5
    assert batch[5].reward == -1.0


def test_below_the_first_mastered_level_every_solved_task_climbs():
    frontier = Frontier(LEVELS, at=0.5, ema=0.1)  # nothing observed: the frontier is level 1
    batch = [proposal("12+34", 0.5), proposal("123+45", 0.25)]
    challenger_reward(batch, [], SelfPlayConfig(frontier_weight=1.0), frontier)
    assert [p.climb for p in batch] == [1.0, 1.0]


def test_frontier_weight_zero_gives_exactly_the_old_rewards():
    """The batch of test_selfplay's formula test, with and without a frontier at weight 0."""
    window = [("arithmetic", "123*46"), ("arithmetic", "500-1"), ("countdown", "123*45")]

    def batch():
        return [
            proposal("12+34", 0.5),
            proposal("12+35", 0.25),
            proposal("123*45", 1.0),
            proposal("1234+5", 0.5),
            proposal("12+34", 0.5, status="duplicate"),
            proposal("__import__('os')"),
        ]

    config = SelfPlayConfig()
    assert config.frontier_weight == 0.0
    old, new = batch(), batch()
    challenger_reward(old, window, config)
    challenger_reward(new, window, config, mastered_level_1())
    assert [p.reward for p in new] == [p.reward for p in old]  # exactly, not approximately
    # recorded all the same: 123*45 (level 2, always solved) and 1234+5 (level 3) climb
    assert [p.climb for p in new] == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert [p.climb for p in old] == [0.0] * 6


def test_a_frontier_weight_needs_a_frontier():
    with pytest.raises(ValueError, match="frontier_weight > 0 needs a Frontier"):
        challenger_reward([proposal("12+34", 0.5)], [], SelfPlayConfig(frontier_weight=1.0))


# -- (b) how the frontier moves --------------------------------------------------------------


def test_the_frontier_moves_up_past_mastered_levels_and_back_down():
    """The frontier is the lowest level whose estimate is below ``at`` or not yet made: it
    goes up when the estimate at the frontier reaches ``at``, and back down to a mastered
    level whose estimate falls below it again (nothing is mastered for good)."""
    frontier = Frontier(LEVELS, at=0.5, ema=0.1)
    assert frontier.level("arithmetic") == 1  # nothing observed
    frontier.observe("arithmetic", 1, 0.6)  # the first observation is taken as is
    assert frontier.estimate["arithmetic"] == {1: 0.6}
    assert frontier.level("arithmetic") == 2
    frontier.observe("arithmetic", 3, 0.9)  # a level above the frontier does not skip it
    frontier.observe("arithmetic", 2, 0.4)
    assert frontier.level("arithmetic") == 2
    frontier.observe("arithmetic", 2, 1.0)  # 0.4 + 0.1 * 0.6
    assert frontier.estimate["arithmetic"][2] == pytest.approx(0.46)
    assert frontier.level("arithmetic") == 2
    frontier.observe("arithmetic", 2, 1.0)  # 0.514: mastered; 3 is too, 4 never observed
    assert frontier.level("arithmetic") == 4
    frontier.observe("arithmetic", 1, 0.0)  # 0.54: still mastered
    assert frontier.level("arithmetic") == 4
    frontier.observe("arithmetic", 1, 0.0)  # 0.486: below again
    assert frontier.level("arithmetic") == 1
    assert frontier.metrics() == {"frontier/arithmetic": 1.0}


def test_with_every_level_mastered_the_frontier_is_the_highest():
    frontier = Frontier({"toy": (1, 2)}, at=0.5, ema=1.0)
    frontier.observe("toy", 1, 1.0)
    frontier.observe("toy", 2, 0.5)  # at ``at`` is mastered
    assert frontier.level("toy") == 2


def test_a_batch_feeds_each_distinct_rated_task_once():
    frontier = Frontier(LEVELS, at=0.5, ema=0.5)
    batch = [
        proposal("12+34", 0.5),
        proposal("12+34", 0.5, status="duplicate"),  # the same task, rated once
        proposal("12+35", 1.0),
        proposal("123+45", 0.25),
        proposal("12+(3"),  # rejected: no task, no rating
    ]
    frontier.update(batch)
    assert frontier.estimate["arithmetic"] == {1: 0.75, 2: 0.25}


def test_a_level_the_environment_lacks_is_an_error():
    frontier = Frontier(LEVELS, at=0.5, ema=0.1)
    with pytest.raises(ValueError, match="arithmetic level 9 is not one of its levels"):
        frontier.observe("arithmetic", 9, 0.5)
    with pytest.raises(ValueError, match="modular level 1"):
        frontier.observe("modular", 1, 0.5)


# -- (c) a simulated self-play loop ----------------------------------------------------------

START = {1: 0.5, 2: 0.25, 3: 0.2, 4: 0.15, 5: 0.1, 6: 0.05}
"""The simulated Solver's solve rate at each level before any training."""
PLATEAU = 0.6
"""Training on a level moves its solve rate toward this: the Solver gets better at the
levels it trains on, and only at those."""


def tasks_at(level: int, count: int = 16) -> list[Proposal]:
    """``count`` distinct arithmetic proposals whose tasks are of ``level``."""
    out, index = [], 0
    while len(out) < count:
        p = proposal(ARITHMETIC.proposal(ARITHMETIC.task(0, index, level)))
        index += 1
        if p.task.difficulty == level:
            out.append(p)
    return out


TASKS = {level: tasks_at(level) for level in ARITHMETIC.levels}


def rated(level: int, solve_rate: float, rng: random.Random | None = None) -> Proposal:
    """A fresh proposal of a task of ``level`` (drawn with ``rng``), rated ``solve_rate``."""
    known = rng.choice(TASKS[level]) if rng else TASKS[level][0]
    return Proposal("arithmetic", known.text, task=known.task, solve_rate=solve_rate)


def expected_reward(level, solve, config, frontier) -> float:
    """The reward a task of ``level`` gets on average: ``challenger_reward`` of every solve
    rate k/attempts, weighted by its binomial chance."""
    n, s = config.attempts, solve[level]
    total = 0.0
    for k in range(n + 1):
        p = rated(level, k / n)
        challenger_reward([p], [], config, frontier)
        total += math.comb(n, k) * s**k * (1 - s) ** (n - k) * p.reward
    return total


def simulate(frontier_weight: float, seed: int, iterations: int = 15) -> list[float]:
    """Per iteration, the mean level of the Challenger's proposals.

    The Challenger picks each proposal's level by a sharp softmax (temperature 0.02) over the
    expected reward of each level; the Solver attempts each task ``attempts`` times at its
    solve rate for the level; the rewards are ``challenger_reward``'s; the frontier is fed the
    batch; the tasks in ``keep_band`` train the Solver, each moving its level's solve rate 5%
    of the way to ``PLATEAU``.
    """
    rng = random.Random(seed)
    config = SelfPlayConfig(frontier_weight=frontier_weight, near_duplicate=1.0)
    frontier = Frontier(LEVELS, at=config.frontier_at, ema=config.frontier_ema)
    solve, levels, n = dict(START), list(ARITHMETIC.levels), config.attempts
    low, high = config.keep_band
    means = []
    for _ in range(iterations):
        value = {level: expected_reward(level, solve, config, frontier) for level in levels}
        best = max(value.values())
        weights = [math.exp((value[level] - best) / 0.02) for level in levels]
        chosen = rng.choices(levels, weights, k=16)
        batch = [
            rated(level, sum(rng.random() < solve[level] for _ in range(n)) / n, rng)
            for level in chosen
        ]
        challenger_reward(batch, [], config, frontier)
        frontier.update(batch)
        for p in batch:
            if low <= p.solve_rate <= high:
                solve[p.task.difficulty] += 0.05 * (PLATEAU - solve[p.task.difficulty])
        means.append(sum(chosen) / len(chosen))
    return means


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_climb_term_makes_the_challenger_climb(seed):
    climbing = simulate(frontier_weight=1.0, seed=seed)
    blocks = [sum(climbing[i : i + 5]) / 5 for i in (0, 5, 10)]
    assert blocks[0] < blocks[1] < blocks[2], blocks
    assert blocks[2] >= 3.5, blocks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_without_it_the_challenger_stays_at_level_1(seed):
    """Level 1 near p = 1/2 beats every harder level on uncertainty alone, for good."""
    assert simulate(frontier_weight=0.0, seed=seed) == [1.0] * 15


# -- (d) saved state -------------------------------------------------------------------------


def test_the_state_round_trips_through_json():
    frontier = mastered_level_1()
    frontier.observe("arithmetic", 2, 0.3)
    state = json.loads(json.dumps(frontier.state_dict()))
    assert state == {"estimate": {"arithmetic": {"1": 0.9, "2": 0.3}}}
    again = Frontier(LEVELS, at=0.5, ema=0.1)
    again.load_state_dict(state)
    assert again.estimate == frontier.estimate and again.level("arithmetic") == 2


def test_a_state_saved_before_the_frontier_loads_as_a_fresh_one():
    """A checkpoint written before the frontier existed has none: ``SelfPlay._restore``
    passes ``{}``, which restores no estimate (and forgets any made since)."""
    frontier = mastered_level_1()
    frontier.load_state_dict({})
    assert frontier.estimate == {"arithmetic": {}} and frontier.level("arithmetic") == 1
    with pytest.raises(ValueError, match="unknown environment 'modular'"):
        frontier.load_state_dict({"estimate": {"modular": {"1": 0.5}}})


# -- (e) config ------------------------------------------------------------------------------


def test_the_frontier_settings_at_their_defaults_leave_the_config_hash_alone():
    assert config_hash(SelfPlayConfig()) == "a4c33f353cff"  # the hash before they existed
    assert config_hash(SelfPlayConfig(frontier_weight=1.0)) != "a4c33f353cff"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"frontier_weight": -0.5}, "selfplay.frontier_weight must be 0 or more, got -0.5"),
        ({"frontier_at": 0.0}, "selfplay.frontier_at must be strictly between 0 and 1"),
        ({"frontier_at": 1.0}, "selfplay.frontier_at must be strictly between 0 and 1"),
        ({"frontier_ema": 0.0}, r"selfplay.frontier_ema must be in \(0, 1\], got 0.0"),
        ({"frontier_ema": 1.5}, r"selfplay.frontier_ema must be in \(0, 1\]"),
    ],
)
def test_bad_frontier_settings(options, message):
    with pytest.raises(ValueError, match=message):
        SelfPlayConfig(**options)
    SelfPlayConfig(frontier_weight=2.0, frontier_at=0.9, frontier_ema=1.0)  # the edges allowed


# -- the ModelChallenger's record of it -----------------------------------------------------


@pytest.mark.parametrize("frontier_weight", [0.0, 1.0])
def test_the_model_challenger_feeds_the_frontier_and_records_the_climb(
    tiny, tmp_path, frontier_weight
):
    """Proposals rated by a real (tiny) Solver: the frontier gets every distinct task; with a
    frontier weight the rows have ``reward_climb`` and the step logs the frontier, without one
    the rows and metrics are those of before."""
    from types import SimpleNamespace

    from selfplay.transcripts import read_transcripts

    envs = {"arithmetic": ARITHMETIC}
    play = SelfPlayConfig(proposals_per_prompt=2, attempts=2, frontier_weight=frontier_weight)
    challenger = unit_model_challenger(envs, tiny[1], tmp_path, play)
    texts = ["<task>12+34</task>", "<task>123+45</task>", "<task>12+34</task>", "<task>1+(</task>"]
    logged = {}
    rewards = challenger(
        prompts=[None] * len(texts),
        completions=texts,
        env=["arithmetic"] * len(texts),
        trainer_state=SimpleNamespace(global_step=0),
        log_metric=logged.__setitem__,
    )
    assert sorted(challenger.frontier.estimate["arithmetic"]) == [1, 2]
    rows = read_transcripts(tmp_path, role="challenger")
    assert list(rows["reward"]) == rewards
    if frontier_weight:
        assert list(rows["reward_climb"])[3] == 0.0  # rejected
        assert "challenger/reward_climb" in logged
        level = challenger.frontier.level("arithmetic")
        assert logged["challenger/frontier/arithmetic"] == float(level)
    else:
        assert "reward_climb" not in rows.columns
        assert not [key for key in logged if "climb" in key or "frontier" in key]
