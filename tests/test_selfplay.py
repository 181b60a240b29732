"""Self-play: the Challenger's reward, diversity and collapse measures, the task pool, and real
runs of a tiny organism that learnt both roles (shared and separate models)."""

import json
import math
import pickle

import pytest
from challengers import ARITHMETIC, proposal, unit_model_challenger
from tiny_runs import write_run

from envs import load_env, task_from_proposal
from selfplay.challenger import (
    TaskPool,
    challenger_reward,
    collapse_reasons,
    diversity,
    learnability,
    similarity,
    uncertainty,
)
from selfplay.config.play import CollapseConfig, SelfPlayConfig
from selfplay.errors import ConfigError

# -- reward terms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "u", "lp"),
    [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.5, 1.0, 0.5), (0.25, 0.5, 0.75), (0.875, 0.25, 0.125)],
)
def test_uncertainty_and_learnability(p, u, lp):
    assert uncertainty(p) == pytest.approx(u)
    assert learnability(p) == pytest.approx(lp)


def test_similarity():
    assert similarity("12+34", "12+34") == 1.0
    assert similarity("12+34", "12+35") == pytest.approx(0.8)
    assert similarity("1+2", "30*40") == pytest.approx(1 - 5 / 5)  # every character differs
    assert similarity("", "") == 1.0


def test_challenger_reward_follows_the_formula():
    config = SelfPlayConfig(repetition_weight=0.5, invalid_penalty=1.0, near_duplicate=0.8)
    batch = [
        proposal("12+34", 0.5),  # near-duplicate of the next one (similarity 0.8)
        proposal("12+35", 0.25),
        proposal("123*45", 1.0),  # alike no other proposal; always solved
        proposal("12+34", 0.5, status="duplicate"),
        proposal("__import__('os')"),  # rejected
    ]
    assert batch[4].task is None
    window = [("arithmetic", "123*46"), ("arithmetic", "500-1"), ("countdown", "123*45")]
    challenger_reward(batch, window, config)
    # 12+34: of the 3 other valid tasks, 12+35 and its own duplicate are near (2/3); the
    # window's arithmetic tasks: none near.
    assert batch[0].repetition == pytest.approx(2 / 3)
    assert batch[0].reward == pytest.approx(1.0 - 0.5 * 2 / 3)
    assert batch[1].repetition == pytest.approx(2 / 3)
    assert batch[1].reward == pytest.approx(0.5 - 0.5 * 2 / 3)
    # 123*45 is near 123*46 (5/6) in the window: 1 of its 2 arithmetic tasks (not countdown's).
    assert batch[2].repetition == pytest.approx(0.5)
    assert batch[2].reward == pytest.approx(0.0 - 0.25)
    assert batch[3].repetition == 1.0 and batch[3].reward == pytest.approx(1.0 - 0.5)
    assert batch[4].reward == -1.0 and batch[4].learnability == 0.0


def test_learnability_reward_and_capped_repetition():
    config = SelfPlayConfig(reward="learnability", repetition_weight=1.0, near_duplicate=0.5)
    batch = [proposal("12+34", 0.25), proposal("12+35", 0.0)]
    challenger_reward(batch, [("arithmetic", "12+36")], config)
    # near every other task and the whole window: 1 + 1, capped at 1
    assert batch[0].repetition == 1.0
    assert batch[0].reward == pytest.approx(0.75 - 1.0)
    assert batch[1].reward == pytest.approx(0.0 - 1.0)


def test_diversity_measures():
    batch = [
        proposal("1+1", 0.5),
        proposal("1+1", 0.5, status="duplicate"),
        proposal("12+345", 0.0),
        proposal("((("),
    ]
    stats = diversity(batch, tokenize=list)
    assert stats["valid_rate"] == 0.5 and stats["duplicate_rate"] == 0.25
    assert stats["rejected/unparsable"] == 1.0
    assert stats["distinct_ratio"] == pytest.approx(2 / 3)
    levels = [1.0, 2.0]  # "1+1" is level 1, "12+345" needs 3 digits: level 2
    assert stats["difficulty_mean"] == pytest.approx(1.5)
    assert stats["difficulty_spread"] == pytest.approx(0.5)
    assert stats["solve_rate_mean"] == pytest.approx(0.25)
    assert stats["unsolved_share"] == 0.5 and stats["solved_share"] == 0.0
    del levels
    # characters of "1+1", "1+1", "12+345": 1 x5, + x3, 2 3 4 5 x1 each: 12 tokens
    counts = [5, 3, 1, 1, 1, 1]
    expected = -sum(c / 12 * math.log2(c / 12) for c in counts)
    assert stats["token_entropy"] == pytest.approx(expected)


def test_collapse_reasons():
    config = CollapseConfig(valid_floor=0.1, distinct_floor=0.25, solved_ceiling=0.95)
    assert config.duplicate_ceiling == 0.75
    healthy = {
        "valid_rate": 0.8,
        "duplicate_rate": 0.1,
        "distinct_ratio": 0.9,
        "unsolved_share": 0.3,
        "solved_share": 0.1,
    }
    assert collapse_reasons(healthy, config) == []
    assert "valid" in collapse_reasons({"valid_rate": 0.05, "duplicate_rate": 0.0}, config)[0]
    assert (
        "repeat"
        in collapse_reasons({**healthy, "valid_rate": 0.2, "duplicate_rate": 0.8}, config)[0]
    )
    assert "alike" in collapse_reasons({**healthy, "distinct_ratio": 0.1}, config)[0]
    assert "never solved" in collapse_reasons({**healthy, "unsolved_share": 1.0}, config)[0]
    assert "always solved" in collapse_reasons({**healthy, "solved_share": 0.96}, config)[0]


def test_task_pool_replays_at_its_rate():
    pool = TaskPool(window=3)
    old = [proposal(f"{i}+1").task for i in range(1, 5)]
    new = [proposal(f"{i}*2").task for i in range(2, 6)]
    for t in old:
        pool.accept(t, keep=True)
    pool.next_iteration()
    for t in new:
        pool.accept(t, keep=True)
    pool.accept(proposal("9+9").task, keep=False)  # in the window, not trained on
    assert pool.seen(proposal("9+9").task.task_id) and not pool.seen(old[0].task_id)
    stream = pool.stream(replay_rate=0.25, seed=1)
    drawn = [next(stream) for _ in range(4000)]
    replayed = sum(t in old for t in drawn) / len(drawn)
    assert abs(replayed - 0.25) < 0.03
    assert {t.task_id for t in drawn if t not in old} == {t.task_id for t in new}
    fresh_only = TaskPool(window=3)
    fresh_only.accept(new[0], keep=True)
    assert {next(fresh_only.stream(0.5, 0)).task_id} == {new[0].task_id}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "both"}, "selfplay.mode"),
        ({"reward": "bleu"}, "selfplay.reward"),
        ({"attempts": 1}, "selfplay.attempts"),
        ({"keep_band": [0.9, 0.1]}, "selfplay.keep_band"),
        ({"replay_rate": 1.5}, "selfplay.replay_rate"),
    ],
)
def test_bad_selfplay_settings(options, message):
    with pytest.raises(ValueError, match=message):
        SelfPlayConfig(**options)


# -- real runs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_run(challenger_organism, tmp_path_factory):
    from selfplay.train import train

    root = tmp_path_factory.mktemp("runs")
    return challenger_organism, train(write_run(root, challenger_organism))


def changed_parameters(a, b) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(a).state_dict()
    after = AutoModelForCausalLM.from_pretrained(b).state_dict()
    return [k for k in before if not torch.equal(before[k], after[k])]


def test_selfplay_trains_the_model(shared_run):
    base, run_dir = shared_run
    assert changed_parameters(base, run_dir / "final")


def test_every_proposal_is_kept_and_rated(shared_run):
    from selfplay.transcripts import read_transcripts

    _, run_dir = shared_run
    proposals = read_transcripts(run_dir, role="challenger")
    assert len(proposals) == 2 * 2 * 2 * 4  # iterations x steps x prompts x proposals
    statuses = set(proposals["proposal_status"])
    assert statuses <= {"ok", "unparsable", "invalid", "unsafe", "duplicate"}
    rejected = proposals[proposals["task_id"].isna()]
    assert (rejected["reward"] == -1.0).all()
    rated = proposals[proposals["task_id"].notna()]
    assert len(rated), "the tiny Challenger must write some valid tasks"
    # The ground truth is computed: recompute it from what the Challenger wrote.
    for _, row in rated.iterrows():
        task = task_from_proposal(ARITHMETIC, row["completion"])
        assert (task.task_id, task.answer) == (row["task_id"], row["answer"])
        lp = uncertainty(row["solve_rate"])
        assert row["reward_learnability"] == pytest.approx(lp)
        assert row["reward"] == pytest.approx(lp - 0.5 * row["reward_repetition"])
    # Each distinct task of a step is attempted `attempts` times; the solve rate is theirs.
    attempts = read_transcripts(run_dir, role="attempt")
    for (step, task_id), group in attempts.groupby(["step", "task_id"]):
        assert len(group) == 4
        mine = rated[(rated["step"] == step) & (rated["task_id"] == task_id)]
        assert len(mine) >= 1
        assert mine["solve_rate"].iloc[0] == pytest.approx(group["verdict_score"].mean())
    assert set(zip(rated["step"], rated["task_id"], strict=True)) == set(
        attempts.groupby(["step", "task_id"]).groups
    )


def test_the_solver_trains_on_accepted_proposals(shared_run):
    from selfplay.transcripts import read_transcripts

    _, run_dir = shared_run
    proposals = read_transcripts(run_dir, role="challenger")
    accepted = set(proposals.loc[proposals["proposal_status"] == "ok", "task_id"])
    solver = read_transcripts(run_dir, role="solver")
    assert set(solver["task_id"]) <= accepted
    assert solver["step"].min() > proposals["step"].min()


def test_metrics_summary_and_report(shared_run):
    from selfplay.analysis.analyze import analyze

    _, run_dir = shared_run
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    challenger = [r for r in records if "challenger/reward" in r]
    assert len(challenger) == 4
    for key in ("valid_rate", "collapsed", "kept", "reward_learnability"):
        assert all(f"challenger/{key}" in r for r in challenger)
    probes = [r for r in records if "probe/arithmetic/1/greedy" in r]
    assert [r["step"] for r in probes][0] == 0 and len(probes) == 3  # before, after each
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["selfplay"]["iterations"]) == 2
    assert len(summary["selfplay"]["challenger_steps"]) == 4
    report = analyze(run_dir, evaluate_models=False)
    sp = json.loads((report.parent / "summary.json").read_text())["selfplay"]
    assert sp["proposals"] == 32 and sum(sp["status"].values()) == 32
    assert "u(p) = 1 - |2p - 1|" in sp["formula"]
    page = report.read_text()
    assert "Self-play: the Challenger" in page and "invalid_penalty" in page


def test_separate_mode_trains_only_the_challenger_when_the_solver_rests(
    challenger_organism, tmp_path
):
    from selfplay.train import train

    run_dir = train(write_run(tmp_path, challenger_organism, mode="separate", solver_steps=0))
    assert not changed_parameters(challenger_organism, run_dir / "final")
    assert changed_parameters(challenger_organism, run_dir / "challenger-final")
    assert not list((run_dir / "transcripts").glob("solver-*"))


def test_a_collapsed_challenger_says_so(tiny, tmp_path, capsys):
    """The session's tiny organism never saw a proposal: nothing it writes is a task."""
    from selfplay.train import train

    run_dir = train(write_run(tmp_path, tiny[1]))
    out = capsys.readouterr().out
    assert "challenger collapse" in out and "Solver phase skipped" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["selfplay"]["collapses"]) == 4
    assert all(i.get("solver_skipped") for i in summary["selfplay"]["iterations"])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["challenger/collapsed"] for r in records if "challenger/collapsed" in r] == [1.0] * 4


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("  max_steps: 5\n", "grpo.max_steps"),
        ("", "envs.modular"),
        ("", "selfplay.challenger_grpo.num_generations"),
        ("", "selfplay.challenger_grpo.not_an_option"),
    ],
)
def test_bad_selfplay_configs_write_nothing(tiny, tmp_path, extra, key):
    from selfplay.train import train

    path = write_run(tmp_path, tiny[1], extra=extra)
    text = path.read_text()
    if key == "envs.modular":
        text = text.replace("arithmetic: {weight: 1, levels: [1, 2]}", "modular: {weight: 1}")
    elif key.startswith("selfplay.challenger_grpo"):
        option = key.rsplit(".", 1)[1]
        text = text.replace(
            "  enabled: true\n", f"  enabled: true\n  challenger_grpo: {{{option}: 2}}\n"
        )
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        train(path)
    assert not (tmp_path / "sp").exists()


class Killed(Exception):
    """Stands for the process being killed mid-phase."""


def kill_in_phase(phase: int, step: int):
    """A callback that raises at ``step`` of the ``phase``-th phase trainer (counting from 1)."""
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        started = 0

        def on_train_begin(self, args, state, control, **kwargs):
            Kill.started += 1

        def on_step_end(self, args, state, control, **kwargs):
            if Kill.started == phase and state.global_step == step:
                raise Killed

    return Kill()


def test_a_killed_selfplay_run_resumes_where_it_was(challenger_organism, tmp_path):
    """Killed in the second iteration's Solver phase, resumed from the checkpoint after the
    first: the rerun iteration writes exactly what an unbroken run writes."""
    from selfplay.train import train
    from selfplay.transcripts import read_transcripts

    reference = train(write_run(tmp_path, challenger_organism, name="unbroken"))
    path = write_run(tmp_path, challenger_organism, name="killed")
    with pytest.raises(Killed):
        train(path, callbacks=[kill_in_phase(phase=4, step=1)])
    run_dir = tmp_path / "killed"
    assert not (run_dir / "summary.json").exists()
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["checkpoint-4"]
    assert train(path, resume=True) == run_dir
    assert list((run_dir / "discarded").glob("*/challenger-step-000004.parquet"))
    names = sorted(p.name for p in (run_dir / "transcripts").iterdir())
    assert names == sorted(p.name for p in (reference / "transcripts").iterdir())
    for role in ("challenger", "attempt", "solver"):
        mine, theirs = read_transcripts(run_dir, role), read_transcripts(reference, role)
        assert list(mine["completion"]) == list(theirs["completion"]), role
    done, unbroken = (json.loads((r / "summary.json").read_text()) for r in (run_dir, reference))
    assert done["transcript_rows"] == unbroken["transcript_rows"] == len(read_transcripts(run_dir))
    assert done["selfplay"]["iterations"] == unbroken["selfplay"]["iterations"]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines if "challenger/reward" in line]
    assert steps == sorted(set(steps))  # every Challenger step logged once
    assert not changed_parameters(reference / "final", run_dir / "final")


def test_equip_gives_only_program_environments_the_shared_sandbox():
    from selfplay import sandbox

    class Runs:
        executor = None

    class Given:
        def executor(self, code, expression):
            raise AssertionError("never called here")

    runs, given = sandbox.equip(Runs()), Given()
    assert runs.executor is sandbox.run_shared
    assert runs.executor("def f(x):\n    return x * 2", "f(21)").value == "42"
    # datasets pickles the closures of its generators, environments included
    assert pickle.loads(pickle.dumps(runs.executor)) is sandbox.run_shared
    before = given.executor
    assert sandbox.equip(given).executor == before
    assert not hasattr(sandbox.equip(ARITHMETIC), "executor")


def test_model_challenger_runs_program_proposals_in_the_sandbox(tiny, tmp_path):
    """Proposals as a hub model would write them for the programs environments: valid ones
    become tasks whose outputs the sandbox computed; hostile, looping and broken ones are
    rejected and counted; the Solver's attempts are judged (abduction through the sandbox)."""
    from types import SimpleNamespace

    from selfplay.sandbox import equip
    from selfplay.transcripts import read_transcripts

    envs = {n: equip(load_env(n)) for n in ("programs", "programs_abduction")}
    play = SelfPlayConfig(proposals_per_prompt=3, attempts=2)
    challenger = unit_model_challenger(envs, tiny[1], tmp_path, play)
    double = "def f(xs):\n    return [x * 2 for x in xs]\n>>> f([1, 2, 3])"
    proposals = {
        "programs": [
            f"<task>{double}</task>",
            f"sure! <task>{double}</task>",  # the same task again
            "<task>def f(x):\n    import os\n    return os.getcwd()\n>>> f(1)</task>",
        ],
        "programs_abduction": [
            f"<task>{double}</task>",
            "<task>def f(x):\n    while True:\n        pass\n>>> f(1)</task>",
            "<task>def f(x) return x\n>>> f(1)</task>",
        ],
    }
    env_column = [n for n, texts in proposals.items() for _ in texts]
    texts = [t for ts in proposals.values() for t in ts]
    logged = {}
    rewards = challenger(
        prompts=[None] * len(texts),
        completions=texts,
        env=env_column,
        trainer_state=SimpleNamespace(global_step=0),
        log_metric=logged.__setitem__,
    )
    rows = read_transcripts(tmp_path, role="challenger")
    assert list(rows["proposal_status"]) == [
        "ok",
        "duplicate",
        "unsafe",
        "ok",
        "unsafe",
        "unparsable",
    ]
    assert rows["proposal_detail"][2] == "sandbox_violation"
    assert rows["proposal_detail"][4] == "timeout"
    assert rows["answer"][0] == "[2, 4, 6]"  # deduction: the output, computed
    assert rows["answer"][3] == "[1, 2, 3]"  # abduction: the input that gives it
    assert rewards[2] == rewards[4] == rewards[5] == -1.0
    assert logged["challenger/valid_rate"] == pytest.approx(2 / 6)
    assert logged["challenger/rejected/unsafe"] == 2.0
    attempts = read_transcripts(tmp_path, role="attempt")
    assert len(attempts) == 2 * 2  # two distinct tasks, two attempts each
    assert set(attempts["task_id"]) == set(rows["task_id"][[0, 3]])
    # both accepted tasks enter the window that later duplicates are checked against
    assert [env for env, _ in challenger.pool.recent] == ["programs", "programs_abduction"]
