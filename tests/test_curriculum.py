"""The curriculum moves levels to keep the solve rate in its band; the challenger follows it."""

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
