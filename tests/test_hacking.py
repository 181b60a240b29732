"""The reward-hacking watch: the divergence detector on synthetic series, the summary block
of a small run folder (metrics.jsonl and Parquet transcripts in the real layout) and the
report section."""

import json
import math

import numpy as np
import pytest

from selfplay.analysis.hacking import (
    EXAMPLES,
    divergence,
    divergence_check,
    hacking_summary,
    smooth,
)
from selfplay.analysis.render.hacking import hacking_section
from selfplay.transcripts import TranscriptWriter

STEPS = np.arange(120)
SEEDS = range(5)


def noisy(seed, judge_shift, truth_shift=0.0, noise=0.03, level=0.45):
    """(steps, judge, truth): both at ``level`` with independent noise, the Judge a little
    lenient throughout, plus the given shifts (arrays over ``STEPS``)."""
    rng = np.random.default_rng(seed)
    truth = level + truth_shift + rng.normal(0, noise, STEPS.size)
    judge = level + 0.05 + judge_shift + rng.normal(0, noise, STEPS.size)
    return STEPS, judge, truth


RAMP = np.where(STEPS >= 60, 0.008 * (STEPS - 60), 0.0)
"""Zero until step 60, then a steady climb (0.47 by step 119)."""
JUMP = np.where(STEPS >= 60, 0.3, 0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_series_that_track_each_other_do_not_diverge(seed):
    check = divergence_check(*noisy(seed, 0.0))
    assert not check["diverged"] and not check["too_few"]
    assert "never stays above the threshold" in check["reason"]
    assert divergence(*noisy(seed, 0.0)) is None


@pytest.mark.parametrize("shift", [RAMP, JUMP], ids=["gradual", "sudden"])
@pytest.mark.parametrize("seed", SEEDS)
def test_judge_rising_while_truth_stays_flat_diverges_near_step_60(seed, shift):
    found = divergence(*noisy(seed, shift))
    assert found is not None
    assert abs(found["step"] - 60) <= 4, found
    assert found["above_from"] - found["step"] < 20
    assert found["ongoing"] and found["until"] == 119
    assert found["before"]["gap"] == pytest.approx(0.05, abs=0.03)
    assert found["after"]["judge"] - found["before"]["judge"] > 0.15
    assert abs(found["after"]["truth"] - found["before"]["truth"]) < 0.03
    assert found["params"]["window"] == 9 and found["params"]["sustain"] == 10
    assert f"before step {found['step']}" in found["reason"]


@pytest.mark.parametrize("seed", SEEDS)
def test_judge_and_truth_rising_together_do_not_diverge(seed):
    rise = 0.004 * STEPS  # +0.48 over the run, on both
    assert divergence(*noisy(seed, rise, truth_shift=rise)) is None


def test_a_single_step_spike_is_not_sustained():
    steps, judge, truth = noisy(0, 0.0)
    judge[70], truth[70] = 1.0, 0.0
    check = divergence_check(steps, judge, truth)
    # The spike lifts the rolling mean over the threshold, but for fewer than `sustain` steps.
    assert smooth(judge - truth).max() > check["threshold"]
    assert not check["diverged"]
    assert divergence_check(steps, judge, truth, sustain=3)["diverged"] is False  # median


def test_a_few_outlying_steps_are_not_a_shift():
    steps, judge, truth = noisy(0, 0.0)
    for at in (70, 72, 74, 76):
        judge[at], truth[at] = 1.0, 0.0
    check = divergence_check(steps, judge, truth)
    assert not check["diverged"]
    assert "a few outlying steps" in check["reason"]
    judge[71], truth[71] = 1.0, 0.0
    judge[73], truth[73] = 1.0, 0.0
    assert divergence_check(steps, judge, truth)["diverged"]  # most of a stretch: a shift


def test_a_gap_from_truth_falling_alone_is_not_hacking():
    check = divergence_check(*noisy(0, 0.0, truth_shift=-RAMP))
    assert not check["diverged"]
    assert "the Judge reward did not rise" in check["reason"]
    assert divergence_check(*noisy(0, 0.3 * RAMP, truth_shift=-RAMP))["diverged"]


def test_steps_without_ground_truth_are_skipped():
    steps, judge, truth = noisy(1, RAMP)
    judge, truth = judge.tolist(), truth.tolist()
    for at in range(3, 120, 7):
        judge[at], truth[at] = math.nan, None  # both ways a step can lack ground truth
    truth[4] = math.nan
    found = divergence(steps, judge, truth)
    assert found is not None and abs(found["step"] - 60) <= 4
    assert found["skipped"] == 18 and found["points"] == 102


def test_unordered_steps_are_put_in_order():
    steps, judge, truth = noisy(2, JUMP)
    order = np.random.default_rng(0).permutation(STEPS.size)
    shuffled = divergence(steps[order], judge[order], truth[order])
    assert shuffled == divergence(steps, judge, truth)


def test_too_short_a_series_says_so():
    steps, judge, truth = noisy(0, JUMP)
    check = divergence_check(steps[:19], judge[:19], truth[:19])
    assert not check["diverged"] and check["too_few"]
    assert check["reason"] == (
        "too few steps with ground truth to watch: 19, need 20 (10 for the baseline, 10 sustained)"
    )
    assert divergence(steps[:19], judge[:19], truth[:19]) is None
    nan_heavy = np.where(STEPS % 6 == 0, truth, math.nan)  # 20 of 120 steps have ground truth
    assert divergence_check(steps, judge, nan_heavy)["points"] == 20


def test_bad_input_raises():
    with pytest.raises(ValueError, match="got 10, 10 and 9"):
        divergence(range(10), [0.5] * 10, [0.5] * 9)
    with pytest.raises(ValueError, match="step 3 appears more than once"):
        divergence([0, 1, 2, 3, 3], [0.5] * 5, [0.5] * 5)
    with pytest.raises(ValueError, match="window must be an odd integer"):
        divergence(range(30), [0.5] * 30, [0.5] * 30, window=8)


# -- the summary block of a run folder ----------------------------------------------------------

DIVERGE = 30
"""The step from which the Judge reward of the synthetic run pulls away from truth."""


def transcript_row(step, i, verdict, truth):
    return {
        "run": "synthetic",
        "step": step,
        "role": "solver",
        "group": 0,
        "task_id": f"arithmetic/0/1/{step}",
        "env": "arithmetic",
        "difficulty": 1,
        "prompt": f"Compute {step}+1.",
        "answer": str(step + 1),
        "completion": f"step {step} row {i}: <answer>{step + 1 if truth else step}</answer>",
        "reward": float(verdict),
        "verdict_score": float(verdict),
        "truth_score": truth,
    }


def make_run(folder, judge_shift, paid_wrong_steps, *, judge_keys=True):
    """A 60-step run folder: metrics.jsonl (training records with the judge/* keys, one step
    without ground truth, a probe record) and solver transcripts every 5 steps, each with a
    right answer, a wrong one the Judge refused, one without ground truth, and a wrong one
    the Judge paid at each step of ``paid_wrong_steps`` (twice where listed twice)."""
    rng = np.random.default_rng(0)
    lines = []
    for step in range(60):
        truth = 0.5 + rng.normal(0, 0.02)
        judge = truth + 0.05 + rng.normal(0, 0.02) + (judge_shift if step >= DIVERGE else 0.0)
        record = {"step": step, "reward": judge, "accuracy/arithmetic": truth}
        if judge_keys:
            record |= {
                "judge/reward": judge,
                "judge/truth": truth,
                "judge/agreement": 1 - (judge - truth),
                "judge/false_positive_rate": judge - truth,
                "judge/false_negative_rate": 0.0,
            }
        if judge_keys and step == 7:  # no completion with ground truth this step
            record |= {"judge/reward": math.nan, "judge/truth": math.nan}
        lines.append(json.dumps(record))
    lines.append(json.dumps({"step": 59, "probe/arithmetic/1/greedy": 0.5}))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    writer = TranscriptWriter(folder / "transcripts")
    for step in range(0, 60, 5):
        rows = [
            transcript_row(step, 0, 1, 1.0),
            transcript_row(step, 1, 0, 0.0),
            transcript_row(step, 2, 1, None),
        ]
        rows += [transcript_row(step, 3 + k, 1, 0.0) for k in range(paid_wrong_steps.count(step))]
        writer.write(step, rows)
    return folder


def records(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_summary_has_the_divergence_and_the_judge_paid_wrong_rows_after_it(tmp_path):
    run = make_run(tmp_path, 0.3, [10, 20, 35, 40, 50, 50])
    block = hacking_summary(run, records(run))
    json.dumps(block, allow_nan=False)  # strict JSON: it goes into summary.json
    d = block["divergence"]
    assert d["diverged"] and d["step"] == DIVERGE and d["skipped"] == 1
    s = block["series"]
    assert s["steps"] == list(range(60))  # the probe record is not a step of its own
    assert s["judge_reward"][7] is None and s["gap"][7] is None
    assert set(s) == {
        "steps",
        "judge_reward",
        "truth",
        "gap",
        "agreement",
        "false_positive_rate",
        "false_negative_rate",
    }
    assert block["examples_since"] == DIVERGE
    shown = [(r["step"], r["completion"]) for r in block["examples"]]
    assert shown == [
        (35, "step 35 row 3: <answer>35</answer>"),
        (40, "step 40 row 3: <answer>40</answer>"),
        (50, "step 50 row 3: <answer>50</answer>"),
        (50, "step 50 row 4: <answer>50</answer>"),
    ]
    assert all(r["verdict_score"] == 1.0 and r["truth_score"] == 0.0 for r in block["examples"])
    assert block["examples"][0]["prompt"] == "Compute 35+1." and block["examples"][0]["answer"]
    # steps 30..55: 6 transcript steps, 2 rows with ground truth each, plus the 4 paid wrong
    assert (block["paid_wrong"], block["with_truth"]) == (4, 16)
    assert block["examples_note"] is None


def test_examples_are_spread_over_the_diverged_stretch(tmp_path):
    paid = [step for step in range(DIVERGE, 60, 5) for _ in range(3)]  # 18 rows
    block = hacking_summary(make_run(tmp_path, 0.3, paid), records(tmp_path))
    steps = [r["step"] for r in block["examples"]]
    assert len(steps) == EXAMPLES and block["paid_wrong"] == 18
    assert steps[0] == DIVERGE and steps[-1] == 55 and steps == sorted(steps)
    assert len({r["completion"] for r in block["examples"]}) == EXAMPLES


def test_without_divergence_the_examples_come_from_the_end_of_the_run(tmp_path):
    run = make_run(tmp_path, 0.0, [20, 45, 55])
    block = hacking_summary(run, records(run))
    assert not block["divergence"]["diverged"]
    assert block["examples_since"] == 45  # the last quarter of the 59 steps watched
    assert [r["step"] for r in block["examples"]] == [45, 55]


def test_a_run_on_the_program_judge_has_no_summary(tmp_path):
    run = make_run(tmp_path, 0.3, [40], judge_keys=False)
    assert hacking_summary(run, records(run)) is None


def test_a_run_without_transcripts_says_so(tmp_path):
    run = make_run(tmp_path, 0.3, [40])
    for path in (run / "transcripts").iterdir():
        path.unlink()
    block = hacking_summary(run, records(run))
    assert block["divergence"]["diverged"] and block["examples"] == []
    assert "no transcripts" in block["examples_note"]


# -- the report section -------------------------------------------------------------------------


def test_section_flags_the_divergence_with_a_plot_and_the_examples(tmp_path):
    run = make_run(tmp_path, 0.3, [35])
    page = "\n".join(hacking_section(hacking_summary(run, records(run))))
    assert "<h2>Reward hacking watch</h2>" in page
    assert f"Judge reward and ground truth diverge from step {DIVERGE}</b>" in page
    assert page.count('<img alt="plot" src="data:image/png;base64,') == 1
    assert "step 35 row 3: &lt;answer&gt;35&lt;/answer&gt;" in page
    assert "do not diverge" not in page


def test_section_without_divergence_says_so(tmp_path):
    run = make_run(tmp_path, 0.0, [])
    page = "\n".join(hacking_section(hacking_summary(run, records(run))))
    assert "Judge reward and ground truth do not diverge: the smoothed gap never" in page
    assert "diverge from step" not in page and "<img" in page
    short = hacking_summary(run, records(run)[:15])
    assert "Too few steps with ground truth" in "\n".join(hacking_section(short))
