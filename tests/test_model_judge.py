"""The model Judge: its prompt and corpus documents, the verdict cache, reliability metrics on a
judge with planted errors, the floor warning, scoring with a real tiny model, and a GRPO run
trained on a model Judge's reward."""

import json
import random

import pytest

from envs import load_env
from selfplay.judge_format import (
    DEFAULT_RUBRIC,
    NO,
    YES,
    candidate_line,
    candidate_of,
    judge_prompt,
    rubric_for,
    verdict_of,
)
from selfplay.judges import WARN_EVERY, JudgeError, ModelJudge, VerdictCache, reliability
from selfplay.verifier import Verifier, near_miss, verifier_document


@pytest.fixture(scope="module")
def envs():
    return {"arithmetic": load_env("arithmetic"), "clarify": load_env("clarify")}


def _tasks(envs, n=8, level=1):
    return [envs["arithmetic"].task(5, i, level) for i in range(n)]


class Scripted:
    """A verify function: yes iff the candidate is the true answer, except planted flips
    (pairs of task prompt and candidate)."""

    def __init__(self, truth: dict[str, str], flip: set[tuple[str, str]] = frozenset()):
        self.truth, self.flip, self.calls, self.prompts = truth, flip, 0, 0
        self.weights = 0.0

    def __call__(self, items):
        self.calls += 1
        self.prompts += len(items)
        out = []
        for prompt, candidate in items:
            task = prompt.split("\nTask: ", 1)[1]
            yes = candidate == self.truth[task]
            out.append(0.9 if yes != ((task, candidate) in self.flip) else 0.1)
        return out

    def version(self):
        return self.weights


def _judge(envs, tasks, flip=frozenset(), **kwargs):
    verify = Scripted({t.prompt: t.answer for t in tasks}, set(flip))
    return ModelJudge(envs, verify, **kwargs), verify


# -- the prompt and the corpus -------------------------------------------------------------


def test_judge_prompt_and_rubric(envs):
    assert judge_prompt("R?", "2+2=?") == "R?\nTask: 2+2=?"
    assert candidate_line("4") == "Candidate: 4\n"
    assert rubric_for(envs["arithmetic"]) == DEFAULT_RUBRIC
    assert rubric_for(envs["arithmetic"], "Check it.") == "Check it."


def test_near_miss_changes_one_digit():
    rng = random.Random(0)
    for answer in ["7", "42", "1305", "(3+4)*5"]:
        other = near_miss(answer, rng)
        assert other != answer and len(other) == len(answer)
        assert sum(a != b for a, b in zip(answer, other, strict=True)) == 1
    assert near_miss("x", rng) == "-x"


@pytest.mark.parametrize("error_rate", [0.0, 1.0])
def test_verifier_documents_are_labelled_by_the_environment(envs, error_rate):
    env, rng = envs["arithmetic"], random.Random(1)
    labels = []
    for task in _tasks(envs, 40, level=2):
        doc, label = verifier_document(env, task, rng, error_rate)
        answer = candidate_of(label)
        right = env.score(f"<answer>{answer}</answer>", task).score == 1.0
        assert doc.prompt == judge_prompt(DEFAULT_RUBRIC, task.prompt)
        assert verdict_of(label) == (YES if right != bool(error_rate) else NO)
        # It works the task out first, then the candidate is put to it.
        thought, asked = label.split("</think>")
        assert thought.startswith("<think>") and task.answer in thought
        assert asked == candidate_line(answer) + verdict_of(label)
        labels.append(verdict_of(label))
    assert 10 < labels.count(YES) < 30  # right answers and near misses, about even


def test_corpus_verifier_rate(envs):
    from selfplay.organism.corpus import CorpusConfig, EnvRecipe, build_envs, documents

    def stream(**rates):
        config = CorpusConfig(envs={"arithmetic": EnvRecipe(levels=[1, 2])}, **rates)
        docs = documents(config, build_envs(config))
        return [next(docs) for _ in range(60)]

    plain, judging = stream(), stream(verifier_rate=1.0, verifier_error_rate=0.0)
    assert plain == stream(verifier_rate=0.0)  # the rate at 0 leaves the stream as it was
    assert not any("Candidate:" in text for _, text in plain)
    assert all(verdict_of(text) and "Candidate: " in text for _, text in judging)
    with pytest.raises(ValueError, match="verifier_error_rate"):
        CorpusConfig(envs={"arithmetic": EnvRecipe(levels=[1])}, verifier_error_rate=1.5)


# -- the cache -----------------------------------------------------------------------------


def test_cache_keys_and_eviction():
    cache = VerdictCache(size=2)
    a, b, c = (VerdictCache.key(p, 0.0) for p in "abc")
    assert VerdictCache.key("a", 1.0) != a  # other weights, other verdicts
    cache.put(a, 0.9)
    cache.put(b, 0.2)
    assert cache.get(a) == 0.9  # a is now the most recent
    cache.put(c, 0.5)
    assert cache.get(b) is None and cache.get(a) == 0.9 and len(cache) == 2
    with pytest.raises(ValueError, match="cache size"):
        VerdictCache(size=-1)


def test_the_cache_spares_the_model(envs):
    tasks = _tasks(envs, 4)
    judge, verify = _judge(envs, tasks)
    completions = [f"<answer>{t.answer}</answer>" for t in tasks]
    doubled = tasks + tasks  # a GRPO group: the same answer twice is asked once
    first = judge(doubled, completions + completions)
    assert verify.prompts == 4 and judge.stats()["judge/cache_hits"] == 0
    again = judge(doubled, completions + completions)
    assert again == first and verify.prompts == 4
    stats = judge.stats()
    assert stats["judge/model_calls"] == 0 and stats["judge/cache_hits"] == 8
    verify.weights = 1.0  # the policy judging itself took a step: older verdicts are stale
    judge(tasks, completions)
    assert verify.prompts == 8
    # Two judges sharing a cache: the second judges the batch without the model.
    other = ModelJudge(envs, verify, cache=judge.cache)
    other(tasks, completions)
    assert verify.prompts == 8 and other.stats()["judge/cache_hits"] == 4


def test_no_cache_still_judges(envs):
    tasks = _tasks(envs, 3)
    judge, verify = _judge(envs, tasks, cache=VerdictCache(size=0))
    completions = [f"<answer>{t.answer}</answer>" for t in tasks]
    assert [v.score for v in judge(tasks, completions)] == [1.0, 1.0, 1.0]
    judge(tasks, completions)
    assert verify.prompts == 6


# -- verdicts and reliability --------------------------------------------------------------


def test_agreement_on_a_judge_with_planted_errors(envs):
    tasks = _tasks(envs, 8, level=2)
    right = [f"<answer>{t.answer}</answer>" for t in tasks]
    wrong = [f"<answer>{int(t.answer) + 1}</answer>" for t in tasks]
    # Planted: the judge says no to the first 2 right answers, yes to the first 3 wrong ones.
    flip = {(tasks[i].prompt, tasks[i].answer) for i in range(2)}
    flip |= {(tasks[i].prompt, str(int(tasks[i].answer) + 1)) for i in range(3)}
    assert len(flip) == 5 and len({t.prompt for t in tasks}) == 8
    judge, _ = _judge(envs, tasks, flip=flip)
    verdicts = judge(tasks + tasks, right + wrong)
    assert [v.score for v in verdicts[:8]] == [0, 0, 1, 1, 1, 1, 1, 1]
    assert [v.score for v in verdicts[8:]] == [1, 1, 1, 0, 0, 0, 0, 0]
    assert {v.reason for v in verdicts} == {"judge_yes", "judge_no"}
    assert verdicts[0].parsed == tasks[0].answer
    stats = judge.stats()
    assert stats["judge/agreement"] == pytest.approx(11 / 16)
    assert stats["judge/false_positive_rate"] == pytest.approx(3 / 8)
    assert stats["judge/false_negative_rate"] == pytest.approx(2 / 8)
    assert stats["judge/reward"] == pytest.approx(9 / 16)
    assert stats["judge/truth"] == pytest.approx(8 / 16)
    assert judge.stats() == {"judge/n": 0.0, "judge/model_calls": 0.0, "judge/cache_hits": 0.0}


def test_what_needs_no_model_is_not_asked(envs):
    tasks = _tasks(envs, 2)
    underspecified = next(
        t for i in range(50) if not (t := envs["clarify"].task(0, i, 1)).specified
    )
    judge, verify = _judge(envs, tasks)
    verdicts = judge(
        [tasks[0], tasks[1], underspecified, underspecified],
        ["no final tag", "<ask>what?</ask>", "<answer>3</answer>", "<ask>How many?</ask>"],
    )
    assert verify.prompts == 0
    assert verdicts[0].reason == "malformed" and verdicts[0].score == 0.0
    assert verdicts[1] == envs["arithmetic"].score("<ask>what?</ask>", tasks[1])
    assert verdicts[2] == envs["clarify"].score("<answer>3</answer>", underspecified)
    assert verdicts[3] == envs["clarify"].score("<ask>How many?</ask>", underspecified)
    assert "judge/agreement" not in judge.stats()  # nothing was model-judged


def test_floor_warns_when_agreement_falls(envs):
    tasks = _tasks(envs, 4)
    right = [f"<answer>{t.answer}</answer>" for t in tasks]
    warnings = []
    judge, verify = _judge(envs, tasks, floor=0.8, warn=warnings.append)
    judge(tasks, right)
    assert judge.stats()["judge/below_floor"] == 0.0 and not warnings
    verify.flip = {(t.prompt, t.answer) for t in tasks[:2]}
    verify.weights = 1.0
    judge(tasks, right)
    stats = judge.stats()
    assert stats["judge/below_floor"] == 1.0 and stats["judge/agreement"] == 0.5
    assert len(warnings) == 1 and "50.0% is below the floor 80%" in warnings[0]
    assert "below on 1 of 2 steps so far" in warnings[0]
    for _ in range(WARN_EVERY - 1):  # said again only after WARN_EVERY more steps
        judge(tasks, right)
        judge.stats()
    assert len(warnings) == 1
    judge(tasks, right)
    judge.stats()
    assert len(warnings) == 2 and f"below on {WARN_EVERY + 1} of {WARN_EVERY + 2}" in warnings[1]


def test_a_broken_judge_model_fails_loud(envs):
    tasks = _tasks(envs, 2)
    right = [f"<answer>{t.answer}</answer>" for t in tasks]
    with pytest.raises(JudgeError, match=f"not a probability, for task {tasks[0].task_id}"):
        ModelJudge(envs, lambda prompts: [1.5] * len(prompts))(tasks, right)
    with pytest.raises(JudgeError, match="1 verdicts for 2 prompts"):
        ModelJudge(envs, lambda prompts: [0.5])(tasks, right)


def test_reliability_only_reports_rates_with_a_denominator():
    assert reliability(0, 0, 0, 0) == {}
    out = reliability(3, 0, 1, 0)
    assert out["judge/false_negative_rate"] == 0.25 and "judge/false_positive_rate" not in out


# -- a real model --------------------------------------------------------------------------


def test_verifier_scores_with_a_real_model(tiny):
    from selfplay.models import load_model

    model, tokenizer = load_model(tiny[1])
    prompts = [(judge_prompt(DEFAULT_RUBRIC, f"{i}+{i}=?"), str(2 * i + i % 2)) for i in range(5)]
    p = Verifier(model, tokenizer, batch_size=8)(prompts)
    assert all(0.0 < x < 1.0 for x in p) and len(set(p)) > 1
    one_by_one = Verifier(model, tokenizer, batch_size=1)(prompts)  # padding changes nothing
    assert one_by_one == pytest.approx(p, abs=1e-5)
    thinking = Verifier(model, tokenizer, think_tokens=12)(prompts)
    assert all(0.0 < x < 1.0 for x in thinking) and thinking != p
    model.train()
    Verifier(model, tokenizer, think_tokens=4)(prompts[:1])
    assert model.training  # a policy judging itself goes back to training
    before = Verifier(model, tokenizer).version()
    next(iter(reversed(list(model.parameters())))).data.add_(0.5)
    assert Verifier(model, tokenizer).version() != before


RUN = """
name: judged
model: {model}
envs:
  arithmetic: {{weight: 1, levels: [1]}}
  modular: {{weight: 1, levels: [1]}}
judge: model
model_judge: {{model: {judge}, agreement_floor: 0.99}}
rewards:
  weights: {{correct: 1.0, format: 0.5, clarify: 0.0, length: 1.0}}
  length_limit: 4
probe: {{every: 0, tasks_per_level: 2, max_new_tokens: 16}}
runs_dir: {runs}
grpo:
  max_steps: 2
  num_generations: 4
  per_device_train_batch_size: 8
  max_completion_length: 24
  learning_rate: 0.01
"""


def test_training_on_a_model_judges_reward(tiny, tmp_path):
    """A real GRPO run whose correct reward is a model's verdict: the policy changes, every
    row carries the Judge's verdict beside the ground truth, and judge/* measures the gap."""
    import torch
    from rich.console import Console
    from transformers import AutoModelForCausalLM

    from selfplay.train import train
    from selfplay.transcripts import read_transcripts

    path = tmp_path / "judged.yaml"
    path.write_text(RUN.format(model=tiny[1], judge=tiny[1], runs=tmp_path))
    console = Console(record=True, width=200)
    run_dir = train(path, console=console)
    before = AutoModelForCausalLM.from_pretrained(tiny[1]).state_dict()
    after = AutoModelForCausalLM.from_pretrained(run_dir / "final").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = read_transcripts(run_dir)
    assert len(rows) == 16 and "truth_score" in rows
    answered = rows[rows["verdict_kind"] == "answer"]
    assert set(answered["verdict_reason"]) <= {"judge_yes", "judge_no"}
    assert rows["truth_score"].notna().all()  # arithmetic and modular always carry truth
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "judge/n" in r]
    assert len(steps) == 2 and all(r["judge/n"] == 8 for r in steps)
    for r, (_, step_rows) in zip(steps, rows.groupby("step"), strict=True):
        judged = step_rows[step_rows["verdict_kind"] == "answer"]
        if len(judged):
            agree = (judged["verdict_score"] == judged["truth_score"]).mean()
            assert r["judge/agreement"] == pytest.approx(agree)
            assert r["judge/truth"] == pytest.approx(judged["truth_score"].mean())
    if any(r.get("judge/below_floor") for r in steps):
        assert "is below the floor 99%" in console.export_text()

    # The analysis watches the Judge against the truth (two steps: too few to call).
    from selfplay.analysis.analyze import analyze

    report = analyze(run_dir, evaluate_models=False, console=console)
    summary = json.loads((report.parent / "summary.json").read_text())
    watch = summary["hacking"]
    judged_steps = [r["step"] for r in steps if "judge/reward" in r]
    assert watch["series"]["steps"] == judged_steps and watch["divergence"]["too_few"]
    assert "Reward hacking watch" in report.read_text()


def test_judge_config_errors(tiny, tmp_path):
    from selfplay.errors import ConfigError
    from selfplay.models import ModelNotFound
    from selfplay.train import train

    path = tmp_path / "bad.yaml"
    path.write_text(
        RUN.format(model=tiny[1], judge=tiny[1], runs=tmp_path).replace(
            "judge: model", "judge: oracle"
        )
    )
    with pytest.raises(ConfigError, match="key 'judge': unknown judge 'oracle'"):
        train(path)
    path.write_text(RUN.format(model=tiny[1], judge=tmp_path / "nowhere", runs=tmp_path))
    with pytest.raises(ModelNotFound, match="nowhere"):
        train(path)
    assert not (tmp_path / "judged").exists()  # nothing written


def test_the_policy_as_its_own_judge(tiny, envs):
    """``model: policy``: the judge scores with the trained model itself, through its cache."""
    from types import SimpleNamespace

    from rich.console import Console

    from selfplay.config.run import ModelJudgeConfig
    from selfplay.models import load_model
    from selfplay.verifier import model_judge

    model, tokenizer = load_model(tiny[1])
    config = SimpleNamespace(
        model_judge=ModelJudgeConfig(model="policy", think_tokens=4), system_prompt=""
    )
    judge = model_judge(config, envs, "policy", (model, tokenizer), Console())
    assert judge.verify.model is model
    tasks = _tasks(envs, 3)
    completions = [f"<answer>{t.answer}</answer>" for t in tasks]
    first = judge(tasks, completions)
    assert judge.stats()["judge/model_calls"] == 3
    assert judge(tasks, completions) == first
    assert judge.stats()["judge/cache_hits"] == 3
