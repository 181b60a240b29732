"""Conclusion rules, pass@k tables and metric-artefact findings on constructed cases."""

import math

import numpy as np
import pandas as pd
import pytest

from selfplay.analysis.artefacts import artefacts
from selfplay.analysis.conclusions import (
    Thresholds,
    behaviour_conclusions,
    conclusion_counts,
    decide,
    skill_conclusions,
    solvable_only_after,
)
from selfplay.analysis.evals import behaviour_rates, pass_at_k_table
from selfplay.analysis.stats import Estimate, pass_at_k


def E(value, low, high):
    return Estimate(value, low, high)


@pytest.mark.parametrize(
    ("reach", "trained", "gain", "expected"),
    [
        # base never reaches; trained does
        (E(0, 0, 0.03), E(0.4, 0.3, 0.5), E(0.4, 0.3, 0.5), "newly acquired"),
        # base never reaches; neither does trained
        (E(0, 0, 0.03), E(0, 0, 0.02), E(0, 0, 0), "not learned"),
        # base never reaches; trained straddles the floor
        (E(0, 0, 0.03), E(0.04, 0.01, 0.1), E(0.04, 0.0, 0.1), "inconclusive"),
        # base reaches; training raised pass@1
        (E(0.5, 0.3, 0.7), E(0.9, 0.8, 1.0), E(0.2, 0.1, 0.3), "elicited"),
        # base reaches; no gain, tightly
        (E(0.5, 0.3, 0.7), E(0.5, 0.3, 0.7), E(0.0, -0.02, 0.02), "not learned"),
        # base reaches; gain unclear
        (E(0.5, 0.3, 0.7), E(0.6, 0.4, 0.8), E(0.05, -0.05, 0.15), "inconclusive"),
        # base reach straddles the floor
        (E(0.03, 0.01, 0.09), E(0.6, 0.4, 0.8), E(0.5, 0.4, 0.6), "inconclusive"),
    ],
)
def test_decide_covers_every_outcome(reach, trained, gain, expected):
    outcome, reason = decide(reach, trained, gain, floor=0.05, min_gain=0.05)
    assert outcome == expected
    assert reason  # every conclusion says why


def eval_rows(
    hits: dict[tuple[str, int], list[int]], n: int, tags: dict | None = None, specified=True
):
    """Eval rows: for each (env, level) a list of per-task correct counts out of n samples
    (plus one greedy row, correct when the task has any hit). ``tags``: (env, level) -> list of
    per-task counts of rows with self_correction_verified true."""
    rows = []
    for (env, level), counts in hits.items():
        marks = (tags or {}).get((env, level), [0] * len(counts))
        for t, (c, m) in enumerate(zip(counts, marks, strict=True)):
            task_id = f"{env}/1/{level}/{t}"
            for j in range(-1, n):
                sampled = j >= 0
                rows.append(
                    {
                        "env": env,
                        "difficulty": level,
                        "task_id": task_id,
                        "sample": j,
                        "temperature": 1.0 if sampled else 0.0,
                        "specified": specified,
                        "verdict_score": float((j < c) if sampled else c > 0),
                        "self_correction_verified": bool(sampled and j < m),
                        "self_correction_lexical": bool(sampled and j < m),
                        "verification": False,
                        "asked": False,
                    }
                )
    return pd.DataFrame(rows)


def test_pass_at_k_table_matches_the_estimator():
    counts = [0, 1, 3, 8]
    table = pass_at_k_table(eval_rows({("arithmetic", 2): counts}, n=8))
    (row,) = table
    assert row["tasks"] == 4 and row["samples"] == 8 and row["greedy"] == 0.75
    assert list(row["pass_at_k"]) == ["1", "2", "4", "8"]
    for k in (1, 2, 4, 8):
        expected = np.mean([pass_at_k(8, c, k) for c in counts])
        est = row["pass_at_k"][str(k)]
        assert est["value"] == pytest.approx(expected)
        assert est["low"] <= est["value"] <= est["high"]


def test_pass_at_k_table_refuses_unequal_samples():
    rows = eval_rows({("arithmetic", 1): [1, 2]}, n=4)
    rows = rows.drop(rows.index[-1])
    with pytest.raises(ValueError, match="arithmetic.*level 1"):
        pass_at_k_table(rows)


TASKS = 60


def test_skill_conclusions_on_constructed_cases():
    key = ("arithmetic", 1)
    cases = {
        # the base model solves every task now and then; training makes it reliable
        "elicited": ([2] * TASKS, [14] * TASKS),
        # the base model never solves one; the trained model solves most
        "newly acquired": ([0] * TASKS, [10] * TASKS),
        # neither ever solves one
        "not learned": ([0] * TASKS, [0] * TASKS),
        # three tasks are too few to tell anything
        "inconclusive": ([0, 0, 1], [0, 1, 1]),
    }
    for expected, (base, trained) in cases.items():
        (v,) = skill_conclusions(eval_rows({key: base}, 16), eval_rows({key: trained}, 16))
        assert v["conclusion"] == expected, (expected, v["reason"])
        assert v["env"] == "arithmetic" and v["level"] == 1 and v["samples"] == 16


def test_behaviour_conclusions_use_the_behaviour_floor():
    key = ("arithmetic", 1)
    solved = {key: [8] * TASKS}
    # base: verified corrections in 1 of 16 samples on every task (6%); trained: 8 of 16
    base = eval_rows(solved, 16, tags={key: [1] * TASKS})
    trained = eval_rows(solved, 16, tags={key: [8] * TASKS})
    found = {v["what"]: v for v in behaviour_conclusions(base, trained)}
    assert found["self_correction"]["conclusion"] == "elicited"
    assert found["verification"]["conclusion"] == "not learned"  # never seen on either side
    assert "self_correction_lexical" not in found  # reported beside, no conclusion of its own
    absent = eval_rows(solved, 16)
    found = {v["what"]: v for v in behaviour_conclusions(absent, trained)}
    assert found["self_correction"]["conclusion"] == "newly acquired"
    # a stricter floor turns the same evidence into "not learned" for the trained side too
    strict = Thresholds(behaviour_floor=0.9)
    found = {v["what"]: v for v in behaviour_conclusions(absent, trained, strict)}
    assert found["self_correction"]["conclusion"] == "not learned"


def test_clarifying_question_is_measured_on_underspecified_tasks_only():
    key = ("clarify", 1)
    specified = eval_rows({key: [0] * TASKS}, 4, specified=True)
    assert not [
        v for v in behaviour_conclusions(specified, specified) if v["what"] == "clarifying_question"
    ]
    rates = behaviour_rates(eval_rows({key: [0] * TASKS}, 4, specified=False))
    assert {r["behaviour"] for r in rates} >= {"clarifying_question", "self_correction"}


def test_solvable_only_after_and_counts():
    key = ("countdown", 2)
    base = eval_rows({key: [0, 0, 3]}, 4)
    trained = eval_rows({key: [2, 0, 4]}, 4)
    only = solvable_only_after(base, trained)
    assert [o["task_id"] for o in only] == ["countdown/1/2/0"]
    assert only[0]["trained_solved"] == 3 and only[0]["of"] == 5  # greedy + 2 samples
    conclusions = skill_conclusions(base, trained)
    counts = conclusion_counts(conclusions)
    assert sum(counts["solve"].values()) == len(conclusions) == 1


def test_evals_on_different_tasks_are_refused():
    base = eval_rows({("arithmetic", 1): [1, 2]}, 4)
    trained = eval_rows({("arithmetic", 1): [1, 2]}, 4).assign(task_id=lambda f: f.task_id + "x")
    with pytest.raises(ValueError, match="share no task"):
        skill_conclusions(base, trained)


def probe(steps, greedy, gold=None, edit=None):
    out = {"steps": steps, "greedy": greedy}
    if gold is not None:
        out["gold_logprob"] = gold
    if edit is not None:
        out["edit_distance"] = edit
    return out


def test_artefact_findings():
    steps = [0, 50, 100, 150, 200]
    found = {
        (a["env"], a["level"]): a
        for a in artefacts(
            {
                # exact match jumps at 100-150; its continuous counterparts climb steadily
                ("arithmetic", 1): probe(
                    steps,
                    [0.0, 0.0, 0.02, 0.6, 0.62],
                    gold=[-3.0, -2.5, -2.0, -1.5, -1.0],
                    edit=[0.8, 0.6, 0.4, 0.2, 0.0],
                ),
                # both jump at the same interval
                ("arithmetic", 2): probe(
                    steps,
                    [0.0, 0.0, 0.02, 0.6, 0.62],
                    gold=[-3.0, -3.0, -2.9, -1.1, -1.0],
                    edit=[0.8, 0.8, 0.79, 0.1, 0.1],
                ),
                # exact match climbs steadily: no jump
                ("arithmetic", 3): probe(steps, [0.1, 0.2, 0.3, 0.4, 0.5], gold=[-1] * 5),
                # a jump and nothing continuous to compare it with
                ("countdown", 1): probe(steps, [0.0, 0.0, 0.5, 0.5, 0.5]),
                ("countdown", 2): probe([0, 50], [0.0, 0.5]),
            }
        )
    }
    assert found[("arithmetic", 1)]["finding"] == "likely metric artefact"
    assert found[("arithmetic", 1)]["interval"] == [100, 150]
    assert found[("arithmetic", 2)]["finding"] == "genuine transition"
    assert found[("arithmetic", 3)]["finding"] == "no jump in exact match"
    assert found[("countdown", 1)]["finding"] == "jump (no continuous measure recorded)"
    assert found[("countdown", 2)]["finding"] == "too few probes"
    assert math.isclose(found[("arithmetic", 1)]["continuous_share"]["gold_logprob"], 0.25)
