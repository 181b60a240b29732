"""One scored batch per step: parsed once, judged once, read by every component, the taggers
and the recorder; and the recorder's advantages equal the ones TRL's trainer computed."""

import pytest

from envs import load_env, task_to_json
from rewards import build_rewards
from selfplay.behaviours import TAGGERS
from selfplay.judges import ProgramJudge
from selfplay.scoring import Scorer, group_advantages, primary_verdicts, totals

ENVS = {"arithmetic": load_env("arithmetic"), "clarify": load_env("clarify")}


class Counting(ProgramJudge):
    """The program judge, counting its calls and the completions in them."""

    def __init__(self, envs):
        super().__init__(envs)
        self.calls = []

    def __call__(self, tasks, completions):
        self.calls.append(len(tasks))
        return super().__call__(tasks, completions)


def batch(n: int = 4):
    tasks = [ENVS["arithmetic"].task(0, i // 2, 1) for i in range(n)]
    completions = [
        "<think>wait, no</think>" + ENVS["arithmetic"].target(t) if i % 2 else "<answer>0</answer>"
        for i, t in enumerate(tasks)
    ]
    columns = {"task": [task_to_json(t) for t in tasks], "task_id": [t.task_id for t in tasks]}
    return [t.prompt for t in tasks], completions, columns


def test_each_batch_is_judged_once_and_recorded_once():
    judge = Counting(ENVS)
    weights = {"correct": 1.0, "clarify": 1.0, "calibration": 0.5, "self_correction_lexical": 1.0}
    funcs, _ = build_rewards(weights, judge, 400, TAGGERS)
    recorded = []
    scorer = Scorer(funcs, judge, on_batch=lambda b, columns: recorded.append(b))
    prompts, completions, columns = batch()
    values = [f(prompts=prompts, completions=completions, **columns) for f in scorer.reward_funcs()]
    assert judge.calls == [4]  # four components read verdicts: one judge call
    assert len(recorded) == 1
    scored = recorded[0]
    assert scored.judge_stats == {"judge/n": 4.0}
    assert [scored.rewards[f.__name__] for f in funcs] == values
    assert values[0] == [0.0, 1.0, 0.0, 1.0]  # correct
    assert [t["self_correction_lexical"] for t in scored.tags] == [False, True, False, True]
    # A new batch (a new list, as TRL passes) is scored afresh.
    prompts, completions, columns = batch()
    scorer.reward_funcs()[0](prompts=prompts, completions=completions, **columns)
    assert judge.calls == [4, 4] and len(recorded) == 2


def test_truths_beside_a_judge_that_is_not_the_ground_truth():
    judge = ProgramJudge(ENVS)
    funcs, _ = build_rewards({"correct": 1.0}, judge, 400)
    scorer = Scorer(funcs, judge, truth=ENVS)
    prompts, completions, columns = batch()
    scored = scorer.scored(prompts, completions, columns)
    assert scored.truths == [v.score for v in primary_verdicts(scored)]


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_by_hand(scale):
    values = [1.0, 0.0, 0.5, 0.5]
    out = group_advantages(values, 2, scale)
    assert out[2] == out[3] == pytest.approx(0.0)
    assert out[0] == pytest.approx(-out[1]) and out[0] > 0


def test_totals_count_not_applicable_as_zero():
    judge = ProgramJudge(ENVS)
    funcs, weights = build_rewards({"correct": 1.0, "clarify": 0.5}, judge, 400)
    scorer = Scorer(funcs, judge)
    tasks = [ENVS["clarify"].task(0, i, 1) for i in range(6)]
    tasks = [t for t in tasks if not t.specified][:1] + [t for t in tasks if t.specified][:1]
    completions = ["<ask>Which one?</ask>", "<answer>1</answer>"]
    columns = {"task": [task_to_json(t) for t in tasks]}
    scored = scorer.scored([t.prompt for t in tasks], completions, columns)
    assert scored.rewards["correct"][0] is None  # underspecified: not applicable
    names = dict(zip([f.__name__ for f in funcs], weights, strict=True))
    expected = [0.5 * scored.rewards["clarify"][0], scored.rewards["correct"][1] + 0.5]
    assert totals(scored, names) == pytest.approx(expected)


def test_recorded_advantages_are_the_ones_trl_computed(tiny, tmp_path, monkeypatch):
    """TRL computes the advantages after the rewards; the recorder computes them the same way
    from the same rewards. Capture TRL's and compare with the transcripts' column."""
    import trl

    from selfplay.train import train
    from selfplay.transcripts import read_transcripts

    computed = []
    original = trl.GRPOTrainer._generate_and_score_completions

    def capture(self, inputs):
        out = original(self, inputs)
        computed.append(out["advantages"].tolist())
        return out

    monkeypatch.setattr(trl.GRPOTrainer, "_generate_and_score_completions", capture)
    path = tmp_path / "adv.yaml"
    path.write_text(
        f"""
name: adv
model: {tiny[1]}
runs_dir: {tmp_path}
envs: {{arithmetic: {{levels: [1, 2]}}, modular: {{levels: [1]}}}}
rewards: {{weights: {{correct: 1.0, format: 0.5, length: 1.0}}, length_limit: 4}}
probe: {{every: 0, tasks_per_level: 1, max_new_tokens: 8}}
grpo: {{max_steps: 3, num_generations: 4, per_device_train_batch_size: 8,
        max_completion_length: 24, scale_rewards: batch}}
"""
    )
    rows = read_transcripts(train(path))
    assert len(computed) == 3
    for step, advantages in enumerate(computed):
        recorded = rows[rows["step"] == step]["advantage"].tolist()
        assert recorded == pytest.approx(advantages, abs=1e-5), step
    assert any(abs(a) > 1e-3 for a in computed[0] + computed[1] + computed[2])
