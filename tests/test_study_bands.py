"""The bands study's kind (``selfplay.studies.kinds.bands``) and the run config's fixed task
list it trains on: banding, the measures on constructed draws, the shared base draws, and
bad settings refused before anything is written. The whole kind end to end is the slow
``test_every_study_runs_quick[bands]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from study_configs import refused

from selfplay.studies.kinds import bands

ROOT = Path(__file__).resolve().parents[1]
BANDS = ROOT / "configs" / "studies" / "bands.yaml"


def settings(**changes) -> bands.Settings:
    return bands.Settings(config=str(ROOT / "configs" / "arithmetic_countdown.yaml"), **changes)


# -- banding --------------------------------------------------------------------------------


def test_a_task_is_banded_by_its_solve_rate():
    s = settings()  # in_distribution_at 0.5, edge_below 0.1
    assert bands.band_of(0, 1024, s) == "out_of_reach"
    assert bands.band_of(1, 1024, s) == "edge"
    assert bands.band_of(102, 1024, s) == "edge"  # 0.0996
    assert bands.band_of(103, 1024, s) == "middle"  # 0.1006
    assert bands.band_of(511, 1024, s) == "middle"
    assert bands.band_of(512, 1024, s) == "in_distribution"
    assert bands.band_of(1024, 1024, s) == "in_distribution"


def test_pass_at_k_is_reported_at_powers_of_two_up_to_the_samples():
    assert settings(samples=256).ks() == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert settings(samples=24).ks() == [1, 2, 4, 8, 16, 24]
    assert settings(samples=1, base_samples=1).ks() == [1]


# -- measures on constructed draws ------------------------------------------------------------


def row(task_id: str, band: str, base: str, level: int = 1) -> dict:
    return {
        "task_id": task_id,
        "env": "arithmetic",
        "level": level,
        "split": "test",
        "band": band,
        "base_outcomes": base,
    }


def test_measures_compare_the_trained_draw_with_the_base_fresh_draw():
    s = settings(samples=4, base_samples=8, hard_levels={"arithmetic": [5]})
    rows = [
        row("a", "in_distribution", "11111111"),  # base pass@1 1
        row("b", "edge", "00000001"),  # solved only after the first 4 draws
        row("c", "out_of_reach", "00000000", level=5),
        row("d", "edge", "01000000", level=5),
        {**row("e", "edge", ""), "split": "train"},  # training tasks are never measured
    ]
    trained = {"a": "1110", "b": "0000", "c": "1000", "d": "0000"}
    m = bands.measures(rows, trained, s)
    # pass@1: trained (0.75 + 0 + 0.25 + 0) / 4; base (1 + 1/8 + 0 + 1/8) / 4.
    assert m["pass_at_1_gain"] == pytest.approx(0.25 - 1.25 / 4)
    # pass@4 (unbiased, 1 - C(n-c, 4) / C(n, 4)): trained 1, 0, 1, 0; base 1, 0.5, 0, 0.5.
    assert m["pass_at_kmax_gain"] == pytest.approx(2 / 4 - 2 / 4)
    assert m["pass_at_1_gain_in_distribution"] == pytest.approx(0.75 - 1.0)
    assert m["pass_at_kmax_gain_edge"] == pytest.approx(0 - 0.5)
    assert m["pass_at_kmax_gain_out_of_reach"] == pytest.approx(1.0)
    assert m["pass_at_kmax_gain_hard"] == pytest.approx((1 + 0) / 2 - (0 + 0.5) / 2)
    # First 4 draws each: trained solves a, c; base solves a, d.
    assert m["trained_only"] == 0.25 and m["base_only"] == 0.25 and m["net_new"] == 0.0


def test_an_unchanged_model_gains_nothing():
    s = settings(samples=8, base_samples=8)
    rows = [row("a", "edge", "00100000"), row("b", "in_distribution", "11011110")]
    m = bands.measures(rows, {r["task_id"]: r["base_outcomes"] for r in rows}, s)
    gains = {k: v for k, v in m.items() if "gain" in k and v is not None}
    assert gains and all(v == 0 for v in gains.values())
    assert m["net_new"] == 0 and m["pass_at_1_gain_out_of_reach"] is None  # no such task


def test_signal_is_the_share_of_groups_with_right_and_wrong_answers():
    import pandas as pd

    rows = pd.DataFrame(
        {
            "step": [1, 1, 1, 1, 2, 2, 2, 2],
            "group": [0, 0, 1, 1, 0, 0, 1, 1],
            "verdict_score": [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 1.0],
        }
    )
    assert bands.signal_of(rows) == pytest.approx(2 / 4)  # (1, 0) and (2, 1) are mixed
    assert bands.signal_of(rows.iloc[:0]) is None


# -- the shared base draws --------------------------------------------------------------------


def test_prepare_bands_once_and_refuses_a_band_with_no_training_task(tmp_path, monkeypatch):
    """The base draws (sampling isolated: each task's outcomes set by its level) are made once
    for every arm, split even/odd, banded by the first draw and measured by the second."""
    from rich.console import Console

    from selfplay.errors import StudyError

    monkeypatch.setattr("selfplay.config.load.resolve_model", lambda config, console: "base")
    draws = []

    def fake(model, config, envs, tasks, s, n, draw, console):
        draws.append((draw, len(tasks), n))
        rate = {1: n, 2: 1, 3: 0}  # level 1 always right, level 2 once, level 3 never
        return {t.task_id: "1" * rate[t.difficulty] + "0" * (n - rate[t.difficulty]) for t in tasks}

    monkeypatch.setattr(bands, "sample", fake)
    s = settings(
        levels={"arithmetic": [1, 2, 3]},
        tasks_per_level=2,
        train_tasks_per_level=4,
        band_samples=32,
        base_samples=16,
        samples=16,
        train_band_samples=16,
    )
    quiet = Console(quiet=True)
    bands.prepare(s, quiet, tmp_path)
    bands.prepare(bands.Settings(**{**s.__dict__, "band": "in_distribution"}), quiet, tmp_path)
    assert draws == [(1, 6, 32), (2, 6, 16), (3, 12, 16)]  # once, whichever arm comes first
    (path,) = tmp_path.glob("bands-*.json")
    made = json.loads(path.read_text())
    by_id = {t["task_id"]: t for t in made["tasks"]}
    assert len(by_id) == 18
    assert by_id["arithmetic/5152/1/3"] == {
        "task_id": "arithmetic/5152/1/3",
        "env": "arithmetic",
        "level": 1,
        "split": "train",
        "band_hits": 16,
        "band": "in_distribution",
    }
    assert by_id["arithmetic/5151/2/1"]["split"] == "test"
    assert by_id["arithmetic/5151/2/1"]["band_hits"] == 1
    assert by_id["arithmetic/5151/2/1"]["base_outcomes"] == "1" + "0" * 15
    assert {t["band"] for t in made["tasks"] if t["level"] == 3} == {"out_of_reach"}
    assert {t["band"] for t in made["tasks"] if t["level"] == 2} == {"edge"}
    # A band with no training task stops the study before any arm runs.
    s = settings(
        levels={"arithmetic": [1]}, tasks_per_level=2, band_samples=32, base_samples=16, samples=16
    )
    with pytest.raises(StudyError, match="band 'edge' has no training task"):
        bands.prepare(s, quiet, tmp_path)
    # A damaged file is named, and so is an arm's damaged draw.
    path.write_text("{")
    with pytest.raises(StudyError, match=f"{path.name}.*delete it"):
        bands.read_bands(path)
    draws = tmp_path / "draws.json"
    for text in ("[1, 2", '{"arithmetic/5151/1/0": 3}'):
        draws.write_text(text)
        with pytest.raises(StudyError, match="draws.json.*delete it"):
            bands.read_draws(draws)


def test_arms_of_run_configs_with_the_same_tasks_share_the_base_draws(tmp_path):
    """The draws' key is the base, the banding settings and the environments but for their
    weights: the self-play config and the GRPO one (weights 2:1 and 1:1) share them."""
    from selfplay.studies.kinds import grpo

    def key(config: str, **overrides) -> str:
        s = bands.Settings(config=str(ROOT / "configs" / config), overrides=overrides)
        loaded, _ = grpo._loaded(s.training(), "study")
        return bands.bands_path(s, loaded, "base", tmp_path).name

    shared = key("arithmetic_countdown.yaml")
    assert key("selfplay_organism.yaml") == shared
    assert key("arithmetic_countdown.yaml", curriculum={"mode": "uniform"}) == shared
    # Another ladder, another system prompt or another base are other tasks or another model.
    envs = {"arithmetic": {"weight": 1, "levels": [1, 2, 3]}}
    assert key("arithmetic_countdown.yaml", envs=envs) != shared
    assert key("arithmetic_countdown.yaml", system_prompt="Think first.") != shared
    s = bands.Settings(config=str(ROOT / "configs" / "arithmetic_countdown.yaml"))
    loaded, _ = grpo._loaded(s.training(), "study")
    assert bands.bands_path(s, loaded, "other", tmp_path).name != shared


# -- the fixed task list ----------------------------------------------------------------------


def test_a_fixed_task_list_is_all_the_challenger_sets():
    from selfplay.config.load import build_challenger, load_envs
    from selfplay.config.run import RunConfig
    from selfplay.config.strict import from_dict

    ids = ["arithmetic/5151/4/0", "countdown/5151/1/2", "arithmetic/5151/2/6"]
    plain = {"envs": {"arithmetic": {"levels": [1, 2]}, "countdown": {}}, "tasks": ids}
    config = from_dict(RunConfig, plain, source="test")
    envs = load_envs(config, "test", equip=lambda env: env)
    challenger = build_challenger(config, envs)
    drawn = [challenger.propose() for _ in range(60)]
    assert {t.task_id for t in drawn} == set(ids)  # level 4 too, though off the ladder
    assert drawn[0] == envs["arithmetic"].task(5151, 0, 4)
    for task in drawn:  # the curriculum is told, and holds its start levels
        challenger.curriculum.update_task(task.env, task.difficulty, [1.0] * 8)
    assert challenger.curriculum.level == {"arithmetic": 1, "countdown": 1}
    again = build_challenger(config, envs)
    assert [again.propose().task_id for _ in range(60)] == [t.task_id for t in drawn]


# -- bad settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("settings: {band: edge}", "settings: {band: edgy}", "arm 'edge': key 'band': must be"),
        ("  samples: 256", "  samples: 2048", "key 'samples': 2048 is more than base_samples"),
        ("tasks_per_level: 12", "tasks_per_level: 0", "key 'tasks_per_level': must be at least 1"),
        ("train_band_samples: 128", "train_band_samples: 0", "key 'train_band_samples': must be"),
        ("  threads: 1", "  threads: 1\n  train_seed: 5151", "the same seed (5151) would train on"),
        (
            "hard_levels: {arithmetic: [4, 5]",
            "hard_levels: {arithmetic: [4, 9]",
            "key 'hard_levels.arithmetic': level 9 is not one of arithmetic's levels",
        ),
        (
            "hard_levels: {arithmetic: [4, 5], countdown: [3, 4]}",
            "hard_levels: {modular: [1]}",
            "key 'hard_levels.modular': not an environment of",
        ),
        (
            "settings: {band: none}",
            "settings: {band: none, overrides: {tasks: [arithmetic/0/1/0]}}",
            "key 'overrides.tasks': the study sets it",
        ),
        ("  threads: 1", "  threads: 1\n  edge_below: 0.7", "need 0 < edge_below <="),
    ],
)
def test_a_bad_bands_arm_is_one_line_before_anything_is_written(
    tmp_path, capsys, monkeypatch, old, new, message
):
    monkeypatch.chdir(ROOT)
    text = BANDS.read_text() + f"\nstudies_dir: {tmp_path / 'studies'}\n"
    assert old in text, old
    path = tmp_path / "study.yaml"
    path.write_text(text.replace(old, new, 1))
    refused(path, tmp_path, capsys, message)
