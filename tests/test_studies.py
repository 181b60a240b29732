"""`selfplay study`: the statistics, the decision rule on constructed inputs (one per outcome),
the grokking measures on constructed curves, config errors, and real quick studies: in this
process, killed and resumed, on a real local Ray instance, and the page in headless Chromium."""

import json
import math
import sys
import time
from pathlib import Path

import pytest
from browser import page_body
from study_configs import ROOT, refused, study_config

from selfplay.analysis.stats import seed_summary, t_cdf, t_quantile
from selfplay.cli import main
from selfplay.studies import conclusion
from selfplay.studies.conclusion import Condition, decide, outcome
from selfplay.studies.kinds import KINDS, grokking

# -- statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [  # Student's t table (two-sided 95% and one-sided 80% columns)
        (0.975, 2, 4.302653),
        (0.975, 4, 2.776445),
        (0.975, 9, 2.262157),
        (0.975, 29, 2.045230),
        (0.8, 2, 1.060660),
        (0.8, 4, 0.940965),
        (0.999, 3, 10.214532),
    ],
)
def test_t_quantile_matches_the_table(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995])
def test_t_quantile_has_the_closed_forms_of_one_and_two_degrees(p):
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(1 - p, 7) == pytest.approx(-t_quantile(p, 7))
    assert t_cdf(t_quantile(p, 7), 7) == pytest.approx(p, abs=1e-12)
    assert t_quantile(p, 1e7) == pytest.approx(
        {0.6: 0.253347, 0.9: 1.281552, 0.975: 1.959964, 0.995: 2.575829}[p], abs=1e-5
    )


def test_seed_summary_is_the_t_interval_and_its_power():
    s = seed_summary([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)
    assert (s.value, s.n, s.sd) == (2.0, 3, 1.0)
    assert s.low == pytest.approx(2 - half, abs=1e-6) and s.high == pytest.approx(
        2 + half, abs=1e-6
    )
    assert s.min_detectable == pytest.approx((4.302653 + 1.060660) / math.sqrt(3), abs=1e-6)
    one = seed_summary([0.7])
    assert (one.value, one.low, one.high, one.min_detectable) == (0.7, None, None, None)
    with pytest.raises(ValueError, match="finite"):
        seed_summary([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one"):
        seed_summary([])


# -- the decision rule, one constructed input per outcome -----------------------------------


def seeds(arm_values: dict[str, list[float | None]], measure: str = "m"):
    return {arm: {i: {measure: v} for i, v in enumerate(vs)} for arm, vs in arm_values.items()}


ABOVE = Condition("m", "a", "above", 3.0)


def test_every_interval_on_the_claims_side_is_replicated():
    result = decide([ABOVE], seeds({"a": [5.0, 5.5, 6.0]}))
    assert result["conclusion"] == "replicated"
    assert result["conditions"][0]["status"] == "holds"


def test_an_interval_wholly_on_the_other_side_is_not_replicated():
    result = decide(
        [ABOVE, Condition("m", "b", "above", 0.0)],
        seeds({"a": [1.0, 1.2, 0.9], "b": [1.0, 1.1, 1.2]}),
    )
    assert [c["status"] for c in result["conditions"]] == ["fails", "holds"]
    assert result["conclusion"] == "not replicated"


def test_a_straddling_interval_or_one_seed_is_inconclusive():
    straddle = decide([ABOVE], seeds({"a": [1.0, 5.0, 4.0]}))
    assert straddle["conditions"][0]["status"] == "unsure"
    assert straddle["conclusion"] == "inconclusive"
    one = decide([ABOVE], seeds({"a": [9.0]}))
    assert one["conditions"][0]["summary"]["low"] is None
    assert one["conclusion"] == "inconclusive"
    none = decide([ABOVE], seeds({"a": [None, None]}))
    assert none["conditions"][0]["summary"] is None and none["conclusion"] == "inconclusive"


def test_below_and_paired_differences():
    below = Condition("m", "a", "below", 0.5)
    assert decide([below], seeds({"a": [0.1, 0.2, 0.15]}))["conclusion"] == "replicated"
    assert decide([below], seeds({"a": [0.9, 0.8, 0.85]}))["conclusion"] == "not replicated"
    # Paired by seed: b - a is 1 on every seed although the arms' spreads are wide; seed 2
    # has no value in b and is left out.
    paired = Condition("m", "b", "above", 0.5, minus_arm="a")
    data = seeds({"a": [0.0, 10.0, 5.0], "b": [1.0, 11.0, None]})
    judged = decide([paired], data)["conditions"][0]
    assert judged["values"] == [1.0, 1.0] and judged["status"] == "holds"
    assert "paired by seed" in judged["text"]


def test_outcome_refuses_what_it_cannot_judge():
    with pytest.raises(ValueError, match="at least one"):
        outcome([])
    with pytest.raises(ValueError, match="unknown condition status 'maybe'"):
        outcome(["holds", "maybe"])
    assert conclusion.OUTCOMES == ("replicated", "not replicated", "inconclusive")


# -- the grokking measures on constructed curves --------------------------------------------


def curves(generalise_at: int | None, fourier_from: int, steps: int = 2000):
    """Train accuracy 1 from step 100; test accuracy rising linearly over the 400 steps before
    ``generalise_at``; Fourier concentration rising from ``fourier_from``."""
    xs = list(range(0, steps + 1, 50))

    def ramp(start: int, end: int, s: int) -> float:
        return min(1.0, max(0.0, (s - start) / (end - start)))

    end = generalise_at if generalise_at is not None else 10**9
    return {
        "step": xs,
        "train_accuracy": [1.0 if s >= 100 else 0.1 for s in xs],
        "test_accuracy": [0.01 + 0.99 * ramp(end - 400, end, s) for s in xs],
        "train_loss": [0.0 for _ in xs],
        "test_loss": [5.0 - 4.9 * ramp(end - 400, end, s) for s in xs],
        "weight_norm": [40.0 - 20 * ramp(fourier_from, end, s) for s in xs],
        "fourier": [0.2 + 0.7 * ramp(fourier_from, fourier_from + 800, s) for s in xs],
    }


def test_grokking_measures_of_a_delayed_jump_with_a_precursor():
    m = grokking.measures(curves(1000, 300), grokking.Settings(onset=0.1))
    assert (m["steps_to_memorise"], m["steps_to_generalise"]) == (100, 1000)
    assert m["delay_ratio"] == 10.0
    # Test accuracy has covered 10% of its rise at 650 (its ramp runs 600..1000); the
    # concentration at 400 (ramp 300..1100): it leads by 250 of the 900-step plateau.
    assert m["lead_fourier"] == pytest.approx(250 / 900)
    assert m["lead_test_loss"] == pytest.approx(0.0)
    assert m["final_test_accuracy"] == 1.0


def test_grokking_measures_without_generalising_or_memorising():
    never = grokking.measures(curves(None, 300), grokking.Settings())
    assert never["steps_to_generalise"] is None and never["delay_ratio"] == 2000 / 100
    assert never["lead_fourier"] is None
    flat = curves(None, 300)
    flat["train_accuracy"] = [0.5] * len(flat["step"])
    nothing = grokking.measures(flat, grokking.Settings())
    assert nothing["steps_to_memorise"] is None and nothing["delay_ratio"] is None


def test_a_grokking_arm_trains_and_memorises():
    settings = grokking.Settings(
        modulus=11,
        train_fraction=0.5,
        steps=150,
        eval_every=10,
        d_model=32,
        heads=2,
        d_mlp=64,
        fourier_top=2,
    )
    result = grokking.run(settings, 0, Path("."))
    s = result["series"]
    assert s["step"][0] == 0 and s["step"][-1] == 150 and len(s["step"]) == 16
    assert s["train_accuracy"][0] < 0.5 and s["train_accuracy"][-1] == 1.0
    assert s["train_loss"][-1] < s["train_loss"][0] / 10
    assert result["measures"]["steps_to_memorise"] is not None
    again = grokking.run(settings, 0, Path("."))
    assert again["series"] == s  # one seed, one thread: the same numbers
    assert grokking.run(settings, 1, Path("."))["series"] != s


# -- configs: errors name the file and key, and nothing is written --------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("kind: grokking", "kind: grok", "key 'kind': 'grok' is not a study kind"),
        ("measure: delay_ratio", "measure: delay", "key 'rule[1].measure': 'delay' is not a"),
        ("arm: weight_decay, above: 3", "arm: wd, above: 3", "key 'rule[1].arm': 'wd' is not"),
        ("above: 3}", "above: 3, below: 4}", "exactly one of 'above' and 'below'"),
        ("seeds: [0, 1, 2, 3, 4]", "seeds: [0, 0]", "key 'seeds': seeds must be distinct"),
        ("lr: 0.003", "lr: -1", "arm 'weight_decay': key 'lr': must be > 0"),
        ("modulus: 59", "modulus: 2", "key 'modulus': must be between 3 and 1000"),
        ("    steps: 300", "    steps: 0", "key 'steps': must be >= 1"),
        ("    heads: 2", "    heads: 3", "key 'heads': must be a divisor"),
        ("name: grokking", "name: Grok king", "key 'name': 'Grok king' must be"),
        (
            "settings: {weight_decay: 0.0}",
            "settings: {decay: 0.0}",
            "arm 'no_weight_decay': unknown key 'settings.decay'",
        ),
        ("claim: >-", "claim: ''\nx: >-", "unknown key 'x'"),
        ("quick:\n", "quick:\n  arms: {wd: {lr: 1.0}}\n", "key 'quick.arms.wd': not an arm"),
    ],
)
def test_bad_study_configs_are_one_line_before_anything_is_written(
    tmp_path, capsys, old, new, message
):
    path = study_config(tmp_path, **{old: new})
    refused(path, tmp_path, capsys, message, *(["--quick"] if "    " in old else []))


def test_every_study_config_loads_and_names_a_claim_and_its_source():
    from selfplay.studies.config import load_study

    configs = sorted((ROOT / "configs" / "studies").glob("*.yaml"))
    assert configs
    for path in configs:
        for quick in (False, True):
            config, settings = load_study(path, quick)
            assert config.claim and config.source and len(config.seeds) >= 3, path
            assert set(settings) == {a.name for a in config.arms}


def test_quick_settings_of_one_arm_are_laid_over_that_arm_only(tmp_path):
    from selfplay.studies.config import load_study

    path = study_config(tmp_path, **{"quick:\n": "quick:\n  arms: {weight_decay: {lr: 0.01}}\n"})
    _, quick = load_study(path, quick=True)
    assert quick["weight_decay"].lr == 0.01 and quick["no_weight_decay"].lr == 0.003
    assert quick["weight_decay"].modulus == 11  # the quick settings for every arm still hold
    _, full = load_study(path, quick=False)
    assert full["weight_decay"].lr == 0.003 and full["weight_decay"].modulus == 59


# -- real quick studies ---------------------------------------------------------------------


def run_quick(tmp_path, capsys, *extra: str) -> tuple[Path, dict]:
    path = study_config(tmp_path)
    assert main(["study", str(path), "--quick", *extra]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    (folder,) = (tmp_path / "studies").iterdir()
    assert f"study: {folder / 'study.html'}" in out  # on one line, however long
    return folder, json.loads((folder / "study.json").read_text())


def test_a_quick_study_writes_the_claim_measures_rule_and_conclusion(tmp_path, capsys):
    folder, study = run_quick(tmp_path, capsys)
    assert folder.parent == tmp_path / "studies" and folder.name.startswith("grokking-quick-")
    assert study["quick"] is True and study["seeds"] == [0, 1]
    assert study["claim"].startswith("Trained on a fraction") and "Nanda" in study["source"]
    assert [a["name"] for a in study["arms"]] == ["weight_decay", "no_weight_decay"]
    for arm in study["arms"]:
        assert set(arm["measures"]) == set(grokking.MEASURES)
        for seed in (0, 1):
            result = json.loads(
                (folder / "arms" / arm["name"] / f"seed-{seed}" / "result.json").read_text()
            )
            final = arm["measures"]["final_test_accuracy"]
            assert final["per_seed"][str(seed)] == result["measures"]["final_test_accuracy"]
        summary = arm["measures"]["final_train_accuracy"]["summary"]
        assert summary["n"] == 2 and summary["low"] <= summary["value"] <= summary["high"]
    conditions = study["rule"]["conditions"]
    assert [c["measure"] for c in conditions] == [
        "final_test_accuracy",
        "delay_ratio",
        "lead_fourier",
    ]
    assert all(c["status"] in conclusion.STATUSES for c in conditions)
    assert study["conclusion"] == outcome([c["status"] for c in conditions])
    accuracy = conditions[0]["summary"]
    assert accuracy["min_detectable"] is not None and accuracy["min_detectable"] >= 0
    assert "min_detectable" in study["rule"]["statement"]


def test_a_killed_study_resumes_rerunning_only_unfinished_arms(tmp_path, capsys, monkeypatch):
    real = grokking.run
    calls = []

    def dies_on_the_third(settings, seed, folder, console=None, shared=None):
        calls.append(f"{folder.parent.name}/{folder.name}")
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill mid-study, as Ctrl-C gives
        return real(settings, seed, folder, console, shared)

    monkeypatch.setattr(KINDS["grokking"], "run", dies_on_the_third)
    path = study_config(tmp_path)
    assert main(["study", str(path), "--quick"]) == 130
    folder = next((tmp_path / "studies").iterdir())
    said = "".join(capsys.readouterr().out.split())  # rich wraps long paths
    assert f"2of4armrunsarefinishedandkeptin{folder}" in said, said
    assert f"--resume{folder}`runstherest" in said
    done = sorted(
        p.parent.relative_to(folder / "arms").as_posix() for p in folder.rglob("result.json")
    )
    assert done == ["weight_decay/seed-0", "weight_decay/seed-1"]
    assert not (folder / "study.json").exists()
    calls.clear()
    assert main(["study", str(path), "--quick", "--resume"]) == 0
    assert "Reusing 2 finished arm runs" in capsys.readouterr().out
    assert calls == ["no_weight_decay/seed-0", "no_weight_decay/seed-1"]
    assert json.loads((folder / "study.json").read_text())["conclusion"] in conclusion.OUTCOMES
    # A finished study resumed reruns nothing; another config cannot resume it.
    calls.clear()
    assert main(["study", str(path), "--quick", "--resume", str(folder)]) == 0
    assert calls == []
    recorded = json.loads((folder / "study.json").read_text())["calls"]
    assert [c["arm_runs"] for c in recorded] == [2, 0]  # the calls that got to the end
    assert main(["study", str(path), "--resume", str(folder)]) == 2
    assert "another config or --quick setting" in capsys.readouterr().err


def test_a_corrupt_arm_result_names_the_file(tmp_path, capsys):
    folder, _ = run_quick(tmp_path, capsys)
    broken = folder / "arms" / "weight_decay" / "seed-1" / "result.json"
    broken.write_text('{"measures": ')
    assert main(["study", str(study_config(tmp_path)), "--quick", "--resume", str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "delete it to rerun" in err
    broken.write_text('{"measures": [1, 2]}')  # JSON, but not a result
    assert main(["study", str(study_config(tmp_path)), "--quick", "--resume", str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "not an arm run's result" in err


def test_study_page_renders_in_headless_chromium(tmp_path, capsys):
    folder, study = run_quick(tmp_path, capsys)
    body, dom = page_body(folder / "study.html", tmp_path / "profile")
    assert 'data-errors="0"' in body and 'data-rendered="ok"' in body, body
    assert int(body.split('data-images="')[1].split('"')[0]) == 2  # one figure per arm
    assert f"Conclusion: {study['conclusion']}" in dom and "Power et al. 2022" in dom


@pytest.fixture(scope="module")
def local_ray():
    """A real Ray instance of 2 CPUs for this module (its files in a short temp path)."""
    ray = pytest.importorskip("ray")
    import tempfile

    from selfplay import launch

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=tempfile.mkdtemp(prefix="ray-", dir="/tmp"),
        runtime_env={"env_vars": launch.WORKER_ENV},
    )
    yield ray
    ray.shutdown()


def test_a_study_on_ray_gives_the_numbers_of_one_process(tmp_path, capsys, local_ray):
    _, here = run_quick(tmp_path / "here", capsys)
    _, there = run_quick(tmp_path / "there", capsys, "--ray-address", "local")
    for a, b in zip(here["arms"], there["arms"], strict=True):
        assert a["measures"] == b["measures"]
    assert here["rule"] == there["rule"] and here["conclusion"] == there["conclusion"]


def test_a_failed_arm_on_ray_is_named_and_the_others_are_kept(tmp_path, capsys, local_ray):
    path = study_config(
        tmp_path, **{"settings: {weight_decay: 0.0}": "settings: {weight_decay: 0.0, lr: 1.0e+30}"}
    )
    assert main(["study", str(path), "--quick", "--ray-address", "local"]) == 2
    err = capsys.readouterr().err
    assert "arm 'no_weight_decay' seed 0" in err and "non-finite" in err, err
    folder = next((tmp_path / "studies").iterdir())
    kept = sorted(p.parent.name for p in (folder / "arms" / "weight_decay").rglob("result.json"))
    assert kept == ["seed-0", "seed-1"]
    assert not (folder / "arms" / "no_weight_decay" / "seed-0" / "result.json").exists()


def test_ctrl_c_on_ray_stops_the_arm_runs_still_going(tmp_path, capsys, monkeypatch, local_ray):
    # Arms of a million steps: were they left running, both CPUs would stay busy for hours.
    path = study_config(tmp_path, **{"    steps: 300": "    steps: 1000000"})
    started = tmp_path / "studies"

    def ctrl_c_once_both_run(refs, **kwargs):
        deadline = time.monotonic() + 120
        while len(list(started.glob("*/arms/*/seed-*"))) < 2:  # run_unit made their folders
            assert time.monotonic() < deadline, "the arm runs never started"
            time.sleep(0.2)
        raise KeyboardInterrupt

    monkeypatch.setattr(local_ray, "wait", ctrl_c_once_both_run)
    assert main(["study", str(path), "--quick", "--ray-address", "local"]) == 130
    monkeypatch.undo()
    assert "interrupted" in capsys.readouterr().err
    assert not list(started.rglob("result.json"))
    # Both CPUs are free again at once: a task that needs both runs (a lambda: Ray's workers
    # cannot import this test module, so the function travels by value).
    both = local_ray.remote(num_cpus=2)(lambda: 2)
    assert local_ray.get(both.remote(), timeout=60) == 2


# -- the GRPO kind --------------------------------------------------------------------------


def test_grpo_length_measures_on_constructed_rows():
    import pandas as pd

    from selfplay.studies.kinds import grpo

    rows = pd.DataFrame(
        [  # steps 1..10; wrong answers 20 tokens at first, 50 at the end; right ones flat
            {
                "step": s,
                "completion_tokens": (20 if s <= 5 else 50) if not ok else 30,
                "correct": ok,
                "behaviour": ok or (s == 1 and i == 0),  # at the end, only on right answers
            }
            for s in range(1, 11)
            for i, ok in enumerate((False, False, False, s > 8))
        ]
    )
    m = grpo.measures(rows, window=0.2)
    assert m["behaviour_start"] == 1 / 8 and m["behaviour_end"] == 2 / 8
    assert m["behaviour_growth"] == 1 / 8
    assert m["behaviour_lift"] == 1.0 - 0.25  # P(right | behaviour) - P(right)
    assert m["wrong_length_growth"] == 30.0 and m["wrong_length_end"] == 50.0
    assert m["right_length_growth"] is None  # no right answer in the first two steps
    assert m["right_length_end"] == 30.0
    assert m["accuracy_growth"] == pytest.approx(0.25) and m["accuracy_end"] == 0.25
    assert set(m) | set(grpo.challenger_measures([], 0.2)) == set(grpo.MEASURES)


def test_challenger_measures_on_constructed_records():
    from selfplay.studies.kinds import grpo

    # Ten Challenger steps: level 1 for the first five, then 1.5, 2, 2.5, 3, 3.5; step 4
    # had no valid proposal (no difficulty), so it is not a step of the windows.
    levels = [1.0, 1.0, 1.0, None, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    records = [
        {"step": 10 * i, "challenger/solve_rate_mean": 0.5 - 0.05 * i}
        | ({"challenger/difficulty_mean": level} if level is not None else {})
        for i, level in enumerate(levels)
    ]
    m = grpo.challenger_measures([r for r in records if "challenger/difficulty_mean" in r], 0.2)
    assert m["challenger_level_start"] == 1.0 and m["challenger_level_end"] == 3.25
    assert m["challenger_level_growth"] == 2.25
    assert m["challenger_solve_end"] == pytest.approx((0.1 + 0.05) / 2)
    # Without self-play there is no Challenger step: every measure is None, not 0.
    assert grpo.challenger_measures([], 0.2) == dict.fromkeys(m)


LENGTH = ROOT / "configs" / "studies" / "length_loss_type.yaml"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("loss_type: dr_grpo,", "loss_type: drgrpo,", "key 'grpo.loss_type'"),
        ("config: configs/quickstart.yaml", "config: nowhere.yaml", "'nowhere.yaml' not found"),
        ("threads: 1", "threads: 1\n  overrides: {seed: 3}", "key 'overrides.seed': the study"),
        ("probe: {every: 0}", "probe: {every: -1}", "probe.every must be 0 or more"),
        ("threads: 1", "threads: 1\n  behaviour: waiting", "key 'behaviour': 'waiting' is not"),
        (
            "threads: 1",
            "threads: 1\n  organism: {corpus: {self_correction_rate: 2}}",
            "with the arm's organism: corpus.self_correction_rate must be in [0, 1]",
        ),
        (
            "threads: 1",
            "threads: 1\n  organism: {corpus: {rate: 0.1}}",
            "unknown key 'corpus.rate'",
        ),
    ],
)
def test_a_bad_grpo_arm_is_one_line_before_anything_is_written(
    tmp_path, capsys, monkeypatch, old, new, message
):
    monkeypatch.chdir(ROOT)  # the run config's path is relative to where the study runs
    path = study_config(tmp_path, LENGTH, **{old: new})
    refused(path, tmp_path, capsys, message, "--quick")


@pytest.mark.slow
@pytest.mark.parametrize(
    "config", sorted((ROOT / "configs" / "studies").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_study_runs_quick(config, tmp_path, monkeypatch, capsys):
    """Each study config end to end at its quick sizes, from the repository's root (the
    organism a GRPO study needs is pretrained into models/ or reused from there)."""
    monkeypatch.chdir(ROOT)
    path = tmp_path / config.name
    path.write_text(config.read_text() + f"\nstudies_dir: {tmp_path / 'studies'}\n")
    assert main(["study", str(path), "--quick"]) == 0, capsys.readouterr().err
    (folder,) = (tmp_path / "studies").iterdir()
    study = json.loads((folder / "study.json").read_text())
    assert study["quick"] and study["conclusion"] in conclusion.OUTCOMES
    body, _ = page_body(folder / "study.html", tmp_path / "profile")
    assert 'data-rendered="ok"' in body, body
    if study["kind"] in ("grpo", "bands"):
        stored = json.loads((folder / "study_config.json").read_text())["arm_settings"]
        for arm in study["arms"]:
            for seed in study["seeds"]:
                run = folder / "arms" / arm["name"] / f"seed-{seed}" / "run"
                assert (run / "summary.json").exists()
                analysed = (run / "analysis" / "summary.json").exists()
                assert analysed == stored[arm["name"]]["analyze"], run


def test_a_studies_dir_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    path = study_config(
        tmp_path, **{"name: grokking": f"name: grokking\nstudies_dir: {tmp_path / 'a_file' / 's'}"}
    )
    path.write_text(path.read_text().rsplit("\nstudies_dir:", 1)[0] + "\n")  # only the new one
    assert main(["study", str(path), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert "key 'studies_dir'" in err and "a_file" in err and len(err.splitlines()) == 1, err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
