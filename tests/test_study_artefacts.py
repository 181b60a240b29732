"""The metric-artefacts study's kind (``selfplay.studies.kinds.artefacts``): a level's row and
the arm's measures on constructed inputs, and bad settings refused before anything is
written. The whole kind end to end is the slow ``test_every_study_runs_quick``."""

from __future__ import annotations

import pytest
from study_configs import ROOT, refused, study_config

from selfplay.studies.kinds import artefacts

STUDY = ROOT / "configs" / "studies" / "metric_artefacts.yaml"


def smooth(exact: list[float], logprob: float = -0.5, distance: float = 0.25) -> list[dict]:
    return [{"exact": e, "gold_logprob": logprob, "edit_distance": distance} for e in exact]


def test_a_level_row_predicts_exact_match_by_p_to_the_l():
    # Four tasks of three-token answers: p per task 1, 1, 2/3, 1/3 -> p = 0.75, L = 3.
    hits = [[True] * 3, [True] * 3, [True, True, False], [False, False, True]]
    row = artefacts.level_row("arithmetic", 3, smooth([1.0, 1.0, 0.0, 0.0]), hits)
    assert row["n"] == 4 and row["exact"] == 0.5
    assert row["token_accuracy"] == pytest.approx(0.75) and row["answer_tokens"] == 3
    assert row["p_pow_l"] == pytest.approx(0.75**3)
    assert row["gold_logprob"] == -0.5 and row["edit_distance"] == 0.25


def test_a_level_row_takes_the_mean_length():
    row = artefacts.level_row("modular", 1, smooth([0.0, 0.0]), [[True], [True, False, False]])
    assert row["answer_tokens"] == 2 and row["token_accuracy"] == pytest.approx((1 + 1 / 3) / 2)
    assert row["p_pow_l"] == pytest.approx(row["token_accuracy"] ** 2)


def test_measures_weigh_tasks_for_means_and_levels_for_the_gap():
    settings = artefacts.Settings(
        organism_config=str(ROOT / "configs" / "organism.yaml"),
        levels={"arithmetic": [1, 2]},
        hard_levels={"arithmetic": [2]},
    )
    rows = [
        {"env": "arithmetic", "level": 1, "n": 30, "exact": 0.9, "token_accuracy": 0.95}
        | {"p_pow_l": 0.9, "gold_logprob": -0.1, "edit_distance": 0.05, "answer_tokens": 2},
        {"env": "arithmetic", "level": 2, "n": 10, "exact": 0.1, "token_accuracy": 0.7}
        | {"p_pow_l": 0.3, "gold_logprob": -1.0, "edit_distance": 0.5, "answer_tokens": 3},
    ]
    m = artefacts.measures(rows, settings)
    assert set(m) == set(artefacts.MEASURES)
    assert m["exact"] == pytest.approx((0.9 * 30 + 0.1 * 10) / 40)
    assert m["token_accuracy"] == pytest.approx((0.95 * 30 + 0.7 * 10) / 40)
    assert m["pl_gap"] == pytest.approx((0.0 + 0.2) / 2)  # each level once
    assert m["gold_logprob"] == pytest.approx((-0.1 * 30 - 1.0 * 10) / 40)
    assert m["exact_hard"] == 0.1 and m["token_accuracy_hard"] == 0.7
    none_hard = artefacts.Settings(
        organism_config=str(ROOT / "configs" / "organism.yaml"),
        levels={"arithmetic": [1, 2]},
        hard_levels={},
    )
    assert artefacts.measures(rows, none_hard)["exact_hard"] is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "levels: {arithmetic: [1, 2, 3, 4, 5], modular",
            "levels: {countdown: [1], arithmetic: [1, 2, 3, 4, 5], modular",
            "key 'levels.countdown': exact match is all-tokens-right only for arithmetic",
        ),
        ("modular: [1, 2, 3, 4, 5]}", "modular: [1, 2, 3, 4, 5, 9]}", "modular has no level 9"),
        ("modular: [1, 2, 3, 4, 5]}", "modular: [0]}", "key 'levels.modular': give levels >= 1"),
        (
            "hard_levels: {arithmetic: [4, 5]",
            "hard_levels: {arithmetic: [6]",
            "key 'hard_levels.arithmetic': [6] are not all in 'levels'",
        ),
        ("tasks_per_level: 64", "tasks_per_level: 0", "key 'tasks_per_level': must be >= 1"),
        ("organism.yaml}", "nowhere.yaml}", "key 'organism_config': recipe"),
        (
            "settings: {organism_config: configs/organism.yaml}",
            "settings: {organism_config: configs/organism.yaml, organism: {train: {steps: 0}}}",
            "train.steps",
        ),
        ("measure: pl_gap, arm: organism_4m", "measure: gap, arm: organism_4m", "'gap' is not"),
    ],
)
def test_bad_artefacts_studies_are_one_line_before_anything_is_written(
    tmp_path, capsys, monkeypatch, old, new, message
):
    monkeypatch.chdir(ROOT)  # the config names recipes from the repository's root
    path = study_config(tmp_path, STUDY, **{old: new})
    refused(path, tmp_path, capsys, message)  # full size: --quick would set other levels
