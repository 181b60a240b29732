"""Calibration analysis: ECE, the reliability table, and the summary block, on planted data."""

import numpy as np
import pandas as pd
import pytest

from selfplay.analysis.calibration import (
    bin_of,
    calibration_summary,
    ece,
    ece_estimate,
    of_eval,
    over_training,
    reliability,
)
from selfplay.transcripts import TranscriptWriter


def test_ece_of_calibrated_data_is_zero():
    # In each bin, exactly the stated share of answers is right.
    p, y = [], []
    for stated in (0.05, 0.25, 0.5, 0.7, 0.95):
        p += [stated] * 100
        y += [1] * round(100 * stated) + [0] * (100 - round(100 * stated))
    assert ece(p, y) == pytest.approx(0.0, abs=1e-12)
    # Drawn: right with probability p, p uniform; only sampling noise is left.
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    assert ece(p, rng.uniform(size=p.size) < p) < 0.01


def test_ece_of_an_overconfident_set_by_hand():
    # 10 answers say 0.9 and 5 are right; 10 say 0.6 and 3 are right:
    # ECE = 10/20 * |0.5 - 0.9| + 10/20 * |0.3 - 0.6| = 0.2 + 0.15
    p = [0.9] * 10 + [0.6] * 10
    y = [1] * 5 + [0] * 5 + [1] * 3 + [0] * 7
    assert ece(p, y) == pytest.approx(0.35)
    assert ece([0.9] * 4, [1, 0, 1, 0]) == pytest.approx(0.4)  # always 0.9, right half the time
    # Within a bin, errors of opposite sign cancel (ECE compares bin means): 0.8 and 1.0 in
    # bin 8 and 9 do not share a bin, 0.8 and 0.85 do.
    assert ece([0.8, 0.85], [1, 0]) == pytest.approx(abs(0.5 - 0.825))
    assert ece([], []) is None


def test_reliability_bins():
    p = [0.0, 0.05, 0.1, 0.3, 0.7, 0.7, 0.95, 1.0]
    y = [0, 0, 1, 1, 1, 0, 1, 1]
    assert list(bin_of(p)) == [0, 0, 1, 3, 7, 7, 9, 9]  # an edge opens its bin; 1.0 is last
    table = reliability(p, y)
    assert len(table) == 10
    assert [b["count"] for b in table] == [2, 1, 0, 1, 0, 0, 0, 2, 0, 2]
    assert table[0] == {"low": 0.0, "high": 0.1, "count": 2, "confidence": 0.025, "accuracy": 0.0}
    assert table[7]["confidence"] == pytest.approx(0.7) and table[7]["accuracy"] == 0.5
    assert table[9]["confidence"] == pytest.approx(0.975) and table[9]["accuracy"] == 1.0
    assert table[2] == {"low": 0.2, "high": 0.3, "count": 0, "confidence": None, "accuracy": None}
    # ECE is the count-weighted gap of the table
    gap = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in table if b["count"])
    assert ece(p, y) == pytest.approx(gap / len(p))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        bin_of([0.5, 1.2])


def test_ece_interval_resamples_tasks():
    rng = np.random.default_rng(1)
    tasks = np.repeat([f"t{i}" for i in range(40)], 8)
    p = np.full(tasks.size, 0.9)
    y = rng.uniform(size=tasks.size) < 0.6
    estimate = ece_estimate(p, y, tasks)
    assert estimate.value == pytest.approx(ece(p, y))
    assert estimate.low < estimate.value < estimate.high
    assert estimate == ece_estimate(p, y, tasks)  # seeded
    one = ece_estimate([0.9, 0.9], [1, 0], ["t", "t"])  # one task: nothing to resample
    assert one.low == one.value == one.high == pytest.approx(0.4)


def solver_rows(steps: int = 20, per_step: int = 10) -> pd.DataFrame:
    """Rows that state 0.9 throughout; right 30% of the time at first and 90% at the end."""
    rows = []
    for step in range(1, steps + 1):
        share = 0.3 if step <= steps // 2 else 0.9
        for i in range(per_step):
            rows.append(
                {
                    "step": step,
                    "role": "solver",
                    "group": i,
                    "task_id": f"arithmetic/0/1/{step * per_step + i}",
                    "verdict_kind": "ask" if i == per_step - 1 else "answer",
                    "verdict_score": float(i < share * per_step),
                    "confidence": None if i == per_step - 2 else 0.9,
                }
            )
    return pd.DataFrame(rows)


def test_over_training_windows():
    out = over_training(solver_rows(), windows=4)
    assert [w["steps"] for w in out["windows"]] == [[1, 5], [6, 10], [11, 15], [16, 20]]
    first, last = out["windows"][0], out["windows"][-1]
    assert first["answers"] == 45 and first["stated"] == 40  # one ask, one silent a step
    assert first["stated_share"] == pytest.approx(40 / 45)
    assert first["accuracy"] == pytest.approx(0.375) and first["ece"] == pytest.approx(0.525)
    assert last["accuracy"] == pytest.approx(1.0) and last["ece"] == pytest.approx(0.1)
    assert first["brier"] == pytest.approx(0.375 * 0.01 + 0.625 * 0.81)
    assert out["first"]["steps"] == [1, 5] and out["last"]["steps"] == [16, 20]
    assert out["last"]["reliability"][9]["count"] == 40
    assert out["all"]["answers"] == 180
    assert len(over_training(solver_rows(steps=3), windows=10)["windows"]) == 3


def test_of_eval_uses_sampled_rows_and_gives_an_interval():
    rows = solver_rows(steps=4).assign(temperature=1.0)
    greedy = rows.assign(temperature=0.0, confidence=0.1)
    out = of_eval(pd.concat([rows, greedy]))
    assert out["answers"] == 36 and out["mean_confidence"] == pytest.approx(0.9)
    assert out["ece_ci"]["value"] == pytest.approx(out["ece"])
    assert out["ece_ci"]["low"] <= out["ece"] <= out["ece_ci"]["high"]


def write_run(run_dir, frame: pd.DataFrame) -> None:
    writer = TranscriptWriter(run_dir / "transcripts")
    for step, rows in frame.groupby("step"):
        writer.write(int(step), rows.to_dict("records"))


def test_summary_block_only_when_a_confidence_is_stated(tmp_path):
    rows = solver_rows(steps=6)
    rows.loc[rows["step"] == 1, "confidence"] = None  # a step where nobody states one
    write_run(tmp_path / "sure", rows)
    block = calibration_summary(tmp_path / "sure")
    assert block["bins"] == 10 and "evals" not in block
    assert block["training"]["windows"][0]["stated"] == 0
    assert block["training"]["windows"][0]["ece"] is None
    assert block["training"]["all"]["stated"] == 40
    # pandas reads the whole folder: the silent step's column has the same type
    assert pd.read_parquet(tmp_path / "sure" / "transcripts")["confidence"].dtype == float

    silent = solver_rows(steps=3).assign(confidence=None)
    write_run(tmp_path / "silent", silent)
    assert calibration_summary(tmp_path / "silent") is None
    write_run(tmp_path / "old", solver_rows(steps=3).drop(columns="confidence"))
    assert calibration_summary(tmp_path / "old") is None
    # an eval that states one brings the block, and both evals are in it
    base = silent.assign(temperature=1.0)
    trained = solver_rows(steps=3).assign(temperature=1.0)
    block = calibration_summary(tmp_path / "silent", {"base": base, "trained": trained})
    assert "training" not in block
    assert block["evals"]["base"]["stated"] == 0 and block["evals"]["base"]["ece"] is None
    assert block["evals"]["trained"]["stated"] == 24
