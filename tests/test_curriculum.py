"""The curriculum moves levels to keep the solve rate in its band; the challenger follows it."""

import random

import pytest

from envs import load_env
from selfplay.config import from_dict
from selfplay.curriculum import Curriculum, CurriculumConfig, ProgramChallenger
from selfplay.errors import ConfigError


def make(mode="adaptive", window=4, band=(0.3, 0.7), start=2):
    config = CurriculumConfig(mode=mode, band=list(band), window=window)
    return Curriculum(config, {"arithmetic": [1, 2, 3]}, {"arithmetic": start})


def feed(curriculum, scores, level=None):
    for s in scores:
        curriculum.update("arithmetic", level or curriculum.level["arithmetic"], s)


@pytest.mark.parametrize(
    "scores,level",
    [
        ([1, 1, 1, 1], 3),  # too easy: up
        ([0, 0, 0, 0], 1),  # too hard: down
        ([1, 0, 1, 0], 2),  # inside the band: stay
        ([1, 1, 1], 2),  # window not full yet: stay
        ([1, 1, 1, 1, 1, 1, 1, 1], 3),  # at the top of the ladder: stays at 3
        ([0] * 8, 1),  # at the bottom: stays at 1
    ],
)
def test_adaptive_moves(scores, level):
    curriculum = make()
    feed(curriculum, scores)
    assert curriculum.level["arithmetic"] == level


def test_window_restarts_after_a_move():
    curriculum = make()
    feed(curriculum, [1, 1, 1, 1])
    assert curriculum.level["arithmetic"] == 3 and curriculum.solve_rate("arithmetic") is None
    assert curriculum.moves == 1


def test_outcomes_from_another_level_are_ignored():
    curriculum = make()
    feed(curriculum, [0, 0, 0, 0], level=3)
    assert curriculum.level["arithmetic"] == 2 and curriculum.solve_rate("arithmetic") is None


def test_fixed_mode_never_moves():
    curriculum = make(mode="fixed")
    feed(curriculum, [1] * 20)
    assert curriculum.level["arithmetic"] == 2
    assert curriculum.metrics()["curriculum/arithmetic/solve_rate"] == 1.0


def test_state_round_trips():
    curriculum = make()
    feed(curriculum, [1, 1, 1, 1, 0, 1])
    again = make()
    again.load_state_dict(curriculum.state_dict())
    assert again.state_dict() == curriculum.state_dict()
    assert again.metrics() == curriculum.metrics()


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"mode": "wobbly"}, "curriculum.mode must be one of 'adaptive', 'fixed', 'uniform'"),
        ({"band": [0.8, 0.2]}, "curriculum.band"),
        ({"window": 0}, "curriculum.window"),
    ],
)
def test_bad_config(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(CurriculumConfig, raw)


def test_challenger_follows_the_curriculum_and_is_deterministic():
    envs = {"arithmetic": load_env("arithmetic"), "modular": load_env("modular")}
    config = CurriculumConfig(window=2)
    curriculum = Curriculum(
        config, {"arithmetic": [1, 2, 3], "modular": [1, 2]}, {"arithmetic": 1, "modular": 1}
    )
    challenger = ProgramChallenger(envs, {"arithmetic": 3.0, "modular": 1.0}, curriculum, seed=5)
    first = [challenger.propose() for _ in range(200)]
    assert {t.difficulty for t in first} == {1}
    share = sum(t.env == "arithmetic" for t in first) / len(first)
    assert 0.65 < share < 0.85  # weights 3:1
    assert len({t.task_id for t in first}) == len(first)
    feed_env = [("arithmetic", 1)] * 2
    for env, level in feed_env:
        curriculum.update(env, level, 1.0)
    later = [challenger.propose() for _ in range(50)]
    assert {t.difficulty for t in later if t.env == "arithmetic"} == {2}
    replay = ProgramChallenger(
        envs,
        {"arithmetic": 3.0, "modular": 1.0},
        Curriculum(config, curriculum.levels, {"arithmetic": 1, "modular": 1}),
        seed=5,
    )
    assert [replay.propose() for _ in range(200)] == first


def uniform_challenger(seed=5, start=1):
    envs = {"arithmetic": load_env("arithmetic"), "modular": load_env("modular")}
    curriculum = Curriculum(
        CurriculumConfig(mode="uniform", window=8),
        {"arithmetic": [1, 2, 3], "modular": [2, 4]},
        {"arithmetic": start, "modular": 2},
    )
    return ProgramChallenger(envs, {"arithmetic": 1.0, "modular": 1.0}, curriculum, seed=seed)


def test_uniform_covers_the_ladder_evenly():
    challenger = uniform_challenger()
    tasks = [challenger.propose() for _ in range(600)]
    for env, ladder in (("arithmetic", [1, 2, 3]), ("modular", [2, 4])):
        levels = [t.difficulty for t in tasks if t.env == env]
        assert sorted(set(levels)) == ladder
        for level in ladder:
            share = levels.count(level) / len(levels)
            assert abs(share - 1 / len(ladder)) < 0.1, (env, level, share)


def test_uniform_is_deterministic_given_seed_and_index():
    challenger = uniform_challenger()
    tasks = [challenger.propose() for _ in range(100)]
    # Neither the start level nor the outcomes fed back matter: each index draws its level.
    replay = uniform_challenger(start=3)
    for t in tasks:
        replay.curriculum.update(t.env, t.difficulty, 1.0)
    assert [replay.propose() for _ in range(100)] == tasks
    other = uniform_challenger(seed=6)
    assert [other.propose().difficulty for _ in range(100)] != [t.difficulty for t in tasks]


def test_uniform_never_moves_and_keeps_every_outcome():
    curriculum = Curriculum(
        CurriculumConfig(mode="uniform", window=4), {"arithmetic": [1, 2, 3]}, {"arithmetic": 1}
    )
    for level, score in [(1, 1.0), (2, 1.0), (3, 0.0), (3, 1.0), (2, 1.0), (1, 1.0)]:
        curriculum.update("arithmetic", level, score)
    assert curriculum.level == {"arithmetic": 1} and curriculum.moves == 0
    assert curriculum.metrics() == {
        "curriculum/arithmetic/level": 2.0,  # the ladder's mean: the expected level of a task
        "curriculum/arithmetic/solve_rate": 0.75,  # the last 4 outcomes, whatever their level
    }
    again = Curriculum(curriculum.config, curriculum.levels, {"arithmetic": 1})
    again.load_state_dict(curriculum.state_dict())
    assert again.state_dict() == curriculum.state_dict()


@pytest.mark.parametrize("mode", ["adaptive", "fixed"])
def test_held_modes_set_the_tasks_they_always_did(mode):
    # Only uniform mode draws a level from the per-index rng; the others must leave it alone,
    # so their runs set exactly the tasks they set before uniform mode existed.
    import random

    envs = {"arithmetic": load_env("arithmetic"), "modular": load_env("modular")}
    curriculum = Curriculum(
        CurriculumConfig(mode=mode),
        {"arithmetic": [1, 2, 3], "modular": [1, 2]},
        {"arithmetic": 2, "modular": 1},
    )
    challenger = ProgramChallenger(envs, {"arithmetic": 3.0, "modular": 1.0}, curriculum, seed=5)
    for index in range(50):
        name = random.Random(f"challenger/5/{index}").choices(["arithmetic", "modular"], [3, 1])[0]
        expected = envs[name].task(5, index, {"arithmetic": 2, "modular": 1}[name])
        assert challenger.propose() == expected


# A simulated solver on a ladder of four levels with known solve rates. Each task's own solve
# rate is drawn around its level's (Beta, mean P[level]), so a task's completions are
# correlated as in a real run, and a step is 8 tasks x 8 completions as in the quickstart.
P = {1: 0.9, 2: 0.6, 3: 0.2, 4: 0.02}  # p(1-p): 0.09, 0.24, 0.16, 0.02: level 2 is the edge
LADDER = {"sim": [1, 2, 3, 4]}


def simulate(curriculum, steps, first=0, seed=0):
    """Run steps ``first``.. of the simulated solver; the level of every task set, in order.

    Each step's levels are all set before any outcome comes back, as in training; the rng is
    per step, so a run can be continued from any step."""
    levels = []
    for step in range(first, first + steps):
        rng = random.Random(f"sim/{seed}/{step}")
        batch = [curriculum.level_for("sim", rng) for _ in range(8)]
        for level in batch:
            p = rng.betavariate(2 * P[level], 2 * (1 - P[level]))
            curriculum.update_task("sim", level, [float(rng.random() < p) for _ in range(8)])
        levels += batch
    return levels


def simulated(steps=400, seed=0, **config):
    curriculum = Curriculum(CurriculumConfig(**config), LADDER, {"sim": 1})
    return curriculum, simulate(curriculum, steps, seed=seed)


def share(levels, *at):
    return sum(level in at for level in levels) / len(levels)


@pytest.mark.parametrize("seed", [0, 1])
def test_default_flips_on_every_noisy_window(seed):
    # One window of 64 completions is one step's 8 tasks: a move is taken on that noise.
    curriculum, levels = simulated(seed=seed)
    assert curriculum.moves > 100  # of 400 steps (about 200 seen)


@pytest.mark.parametrize("seed", [0, 1])
def test_tasks_window_with_patience_holds_the_edge(seed):
    default, _ = simulated(seed=seed)
    curriculum, levels = simulated(seed=seed, window_unit="tasks", window=16, patience=2)
    assert curriculum.moves < 30 and curriculum.moves * 5 < default.moves  # about 10 seen
    assert share(levels, 2, 3) > 0.9
    assert share(levels[len(levels) // 2 :], 2) > 0.8


@pytest.mark.parametrize("seed", [0, 1])
def test_learnability_settles_on_the_most_learnable_level(seed):
    curriculum, levels = simulated(seed=seed, mode="learnability", window_unit="tasks")
    assert curriculum.level["sim"] == 2
    assert share(levels, 2) > 0.75  # explore sends 10% to the neighbours
    assert share(levels, 4) < 0.03  # tried only as a neighbour of level 3
    estimate = curriculum.estimate["sim"]
    assert abs(estimate[2] - P[2]) < 0.2 and estimate[1] > estimate[2] > estimate[3]


def test_learnability_climbs_the_ladder_in_order():
    config = CurriculumConfig(mode="learnability", window_unit="tasks", ema=0.5, explore=0.0)
    curriculum = Curriculum(config, LADDER, {"sim": 1})
    assert curriculum.level["sim"] == 1  # every level unvisited: the start level
    curriculum.update_task("sim", 1, [0.0] * 8)  # estimate 0.5 -> 0.25
    assert curriculum.level["sim"] == 1  # too hard: no level above can be easier
    curriculum.update_task("sim", 1, [1.0] * 8)
    curriculum.update_task("sim", 1, [1.0] * 8)  # 0.8125
    assert curriculum.level["sim"] == 2  # easy now: the next level, not the hardest
    curriculum.update_task("sim", 2, [1.0] * 8)  # 0.75
    assert curriculum.level["sim"] == 3
    curriculum.update_task("sim", 3, [0.0] * 8)  # 0.25: p(1-p) ties level 2's; 2 is nearer
    assert curriculum.level["sim"] == 2 and curriculum.moves == 3
    assert 4 not in curriculum.estimate["sim"]  # bounded by level 3, never the best
    assert curriculum.metrics() == {
        "curriculum/sim/level": 2.0,
        "curriculum/sim/solve_rate": 0.6,  # the 5 tasks so far, at every level
        "curriculum/sim/estimate/1": 0.8125,
        "curriculum/sim/estimate/2": 0.75,
        "curriculum/sim/estimate/3": 0.25,
    }


def test_learnability_explores_the_neighbours_deterministically():
    config = CurriculumConfig(mode="learnability", explore=0.3)
    curriculum = Curriculum(config, LADDER, {"sim": 2})
    draws = [curriculum.level_for("sim", random.Random(i)) for i in range(1000)]
    assert set(draws) == {1, 2, 3} and 0.25 < 1 - share(draws, 2) < 0.35
    assert draws == [curriculum.level_for("sim", random.Random(i)) for i in range(1000)]


def test_patience_needs_strikes_in_a_row_on_one_side():
    config = CurriculumConfig(window=4, patience=2)
    curriculum = Curriculum(config, {"arithmetic": [1, 2, 3]}, {"arithmetic": 2})
    feed(curriculum, [1, 1, 1, 1])
    assert curriculum.level["arithmetic"] == 2 and curriculum.strikes["arithmetic"] == 1
    assert curriculum.solve_rate("arithmetic") is None  # a strike restarts the window
    feed(curriculum, [0, 0, 0, 0])  # the other side: the count starts again
    assert curriculum.level["arithmetic"] == 2 and curriculum.strikes["arithmetic"] == -1
    feed(curriculum, [1, 0, 1, 0])  # in the band: the count clears, the window rolls on
    assert curriculum.strikes["arithmetic"] == 0 and curriculum.solve_rate("arithmetic") == 0.5
    feed(curriculum, [1, 1, 1, 1, 1, 1, 1, 1])
    assert curriculum.level["arithmetic"] == 3 and curriculum.moves == 1


def test_tasks_unit_counts_a_task_once():
    config = CurriculumConfig(window=2, window_unit="tasks")
    curriculum = Curriculum(config, {"arithmetic": [1, 2, 3]}, {"arithmetic": 2})
    curriculum.update_task("arithmetic", 2, [1.0, 1.0, 1.0, 0.0])
    assert list(curriculum.recent["arithmetic"]) == [0.75]
    curriculum.update_task("arithmetic", 2, [1.0, 1.0, 1.0, 1.0])
    assert curriculum.level["arithmetic"] == 3  # mean 0.875 over two tasks
    completions = make(window=8)
    completions.update_task("arithmetic", 2, [1.0, 1.0, 1.0, 0.0])
    assert list(completions.recent["arithmetic"]) == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"window_unit": "tasks", "window": 16, "patience": 2},
        {"mode": "learnability", "window_unit": "tasks"},
    ],
)
def test_resumed_mid_stream_sets_the_same_levels(config):
    import json

    curriculum, _ = simulated(steps=41, **config)
    state = json.loads(json.dumps(curriculum.state_dict()))  # as a checkpoint keeps it
    if "patience" in config:
        assert state["strikes"]["sim"] == 1  # stopped between two strikes
    if "mode" in config:
        assert len(state["estimate"]["sim"]) >= 3
    resumed = Curriculum(CurriculumConfig(**config), LADDER, {"sim": 1})
    resumed.load_state_dict(state)
    assert resumed.state_dict() == curriculum.state_dict()
    assert simulate(resumed, 150, first=41) == simulate(curriculum, 150, first=41)


@pytest.mark.parametrize("mode", ["adaptive", "learnability"])
def test_a_state_from_before_strikes_and_estimates_loads(mode):
    old = {"level": {"sim": 2}, "recent": {"sim": [1.0, 0.0, 1.0]}, "moves": 5}
    config = CurriculumConfig(mode=mode, window=4, patience=2)
    curriculum = Curriculum(config, LADDER, {"sim": 1})
    curriculum.load_state_dict(old)
    assert curriculum.level == {"sim": 2} and curriculum.moves == 5
    assert curriculum.strikes == {"sim": 0} and curriculum.estimate == {"sim": {}}
    for _ in range(5):  # and runs on from it
        curriculum.update("sim", curriculum.level["sim"], 1.0)
    assert curriculum.level["sim"] > 2 and curriculum.moves > 5


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"window_unit": "steps"}, "curriculum.window_unit must be one of .*got 'steps'"),
        ({"patience": 0}, "curriculum.patience must be at least 1, got 0"),
        ({"ema": 0.0}, r"curriculum.ema must be in \(0, 1\], got 0.0"),
        ({"ema": 1.5}, r"curriculum.ema must be in \(0, 1\], got 1.5"),
        ({"explore": 1.0}, r"curriculum.explore must be in \[0, 1\), got 1.0"),
        ({"explore": -0.1}, r"curriculum.explore must be in \[0, 1\), got -0.1"),
        ({"mode": "edge"}, "curriculum.mode must be one of .*'learnability', got 'edge'"),
    ],
)
def test_bad_new_keys(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(CurriculumConfig, raw)


@pytest.mark.parametrize(
    "unit,window", [("completions", [1.0, 0.0, 1.0, 1.0]), ("tasks", [0.5, 1.0])]
)
def test_recorder_feeds_whole_task_groups(tmp_path, unit, window):
    from selfplay.recorder import Recorder

    envs = load_env("arithmetic")
    tasks = [envs.task(0, 0, 2)] * 2 + [envs.task(0, 1, 2)] * 2
    config = CurriculumConfig(window=8, window_unit=unit)
    curriculum = Curriculum(config, {"arithmetic": [1, 2, 3]}, {"arithmetic": 2})
    recorder = Recorder(
        tmp_path,
        run_name="t",
        judge=None,
        curriculum=curriculum,
        tokenizer=None,
        weights={},
        scale_rewards="group",
        num_generations=2,
    )
    recorder._feed(tasks, [1.0, 0.0, 1.0, 1.0])
    assert list(curriculum.recent["arithmetic"]) == window
    with pytest.raises(ValueError, match="one group of 2 completions holds tasks"):
        recorder._feed(tasks[1:3], [1.0, 1.0])
