"""`selfplay launch` on a real local Ray instance: two training workers, one process group.

The equivalence test scripts the completions (TRL's ``rollout_func``), so the two runs see
the same data: sampling draws from each process's own generator, and two workers cannot
draw what one process draws. Everything else is the real path: Ray Train's TorchTrainer,
TRL's GRPOTrainer under Accelerate with gloo, the gathered transcripts and curriculum.
"""

import json
import sys

import pytest

ray = pytest.importorskip("ray")

from selfplay import launch  # noqa: E402
from selfplay.errors import ConfigError  # noqa: E402

STEPS, GENERATIONS = 4, 4

RUN = """
name: {name}
model: {model}
envs:
  arithmetic: {{weight: 1, levels: [1, 2]}}
  modular: {{weight: 1, levels: [1]}}
curriculum: {{window: 4}}
rewards:
  weights: {{correct: 1.0, format: 0.5, clarify: 0.0, length: 1.0}}
  length_limit: 4
probe: {{every: 0, tasks_per_level: 2, max_new_tokens: 16}}
checkpoint: {{every: {every}}}
runs_dir: {runs}
grpo:
  max_steps: {steps}
  num_generations: {generations}
  per_device_train_batch_size: {batch}
  max_completion_length: 24
  learning_rate: 0.01
resources: {{workers: {workers}, cpus_per_worker: 0.5, judge_actors: {judges}, judge_cpus: 0.25}}
"""


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A real Ray instance of 2 CPUs for this module (its files in a short temp path)."""
    import tempfile

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        runtime_env={"env_vars": launch.WORKER_ENV},
    )
    # The workers cannot import this test module: send its functions (the scripted
    # rollout) by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def write_config(root, model, name, *, workers, batch, judges=0, every=0, steps=STEPS):
    path = root / f"{name}.yaml"
    path.write_text(
        RUN.format(
            name=name,
            model=model,
            runs=root,
            steps=steps,
            generations=GENERATIONS,
            batch=batch,
            workers=workers,
            judges=judges,
            every=every,
        )
    )
    return path


def scripted(prompts, trainer):
    """Completion j of each group: j characters of reasoning, then the answer j.

    A function of the prompt and the completion's place in its group only, so a batch split
    over two workers gets the same completions as one process."""
    tokenizer = trainer.processing_class
    g = trainer.num_generations
    prompt_ids, completion_ids = [], []
    for i, prompt in enumerate(prompts):
        j = i % g
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        prompt_ids.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
        text = f"<think>{'1' * (2 * j)}</think><answer>{j + 1}</answer>"
        completion_ids.append(
            tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        )
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


PROMPTS = 4


@pytest.fixture(scope="module")
def one_process(tiny, tmp_path_factory):
    """The reference: one process (no Ray), the whole batch, scripted completions."""

    root = tmp_path_factory.mktemp("one")
    return launch.launch(
        write_config(root, tiny[1], "one", workers=1, batch=PROMPTS * GENERATIONS),
        rollout_func=scripted,
    )


def assert_same_run(a_dir, b_dir, base):
    """The same transcripts (in order) and, within float tolerance, the same weights."""
    from selfplay.transcripts import read_transcripts

    a, b = read_transcripts(a_dir), read_transcripts(b_dir)
    assert len(a) == len(b) == STEPS * PROMPTS * GENERATIONS
    columns = ["step", "group", "task_id", "difficulty", "completion", "reward", "verdict_score"]
    assert a[columns].equals(b[columns])
    assert (a["advantage"] - b["advantage"]).abs().max() < 1e-5
    before, after_a, after_b = weights(base), weights(a_dir / "final"), weights(b_dir / "final")
    moved = max((after_a[k] - before[k]).abs().max().item() for k in before)
    gap = max((after_a[k] - after_b[k]).abs().max().item() for k in before)
    print(f"largest weight change {moved:.3g}; largest difference between the runs {gap:.3g}")
    assert moved > 1e-3, "training must move the weights"
    assert gap < 1e-4 * max(1.0, moved), (gap, moved)
    summary = json.loads((b_dir / "summary.json").read_text())
    assert summary["steps"] == STEPS and summary["transcript_rows"] == len(b)


def test_two_workers_match_one_process(tiny, tmp_path, local_ray, one_process):
    """Two workers with half the batch each = one process with the whole batch: the same
    tasks, completions, rewards and advantages in the same order, and the same weights."""

    import os

    # A model folder relative to the launcher's working folder: the workers run elsewhere.
    model = os.path.relpath(tiny[1])
    two = launch.launch(
        write_config(tmp_path, model, "two", workers=2, batch=PROMPTS * GENERATIONS // 2),
        "local",
        rollout_func=scripted,
    )
    assert_same_run(one_process, two, tiny[1])


def test_killed_worker_group_resumes_from_its_checkpoint(tiny, tmp_path, local_ray, one_process):
    """A training worker dies at step 3; Ray Train restarts the group, which resumes from
    the checkpoint of step 2, setting aside the transcript of step 2 that the killed
    attempt wrote: no row lost or written twice, and the same result as one process."""
    import os

    marker = tmp_path / "worker-killed"

    def dies_once(prompts, trainer):
        if trainer.state.global_step == 3 and trainer.accelerator.process_index == 1:
            if not marker.exists():
                marker.touch()
                os._exit(1)
        return scripted(prompts, trainer)

    path = write_config(
        tmp_path, tiny[1], "killed", workers=2, batch=PROMPTS * GENERATIONS // 2, every=2
    )
    path.write_text(
        path.read_text().replace("judge_cpus: 0.25}", "judge_cpus: 0.25, max_failures: 1}")
    )
    run = launch.launch(path, "local", rollout_func=dies_once)
    assert marker.exists(), "the worker was never killed: the test tested nothing"
    discarded = list((run / "discarded").rglob("*.parquet"))
    print(f"set aside after the kill: {[p.name for p in discarded]}")
    assert [p.name for p in discarded] == ["solver-step-000002.parquet"]
    assert_same_run(one_process, run, tiny[1])


def test_judge_actor_killed_mid_run_is_restarted(tiny, tmp_path, local_ray, one_process):
    """Judging runs in a judge actor; at step 2 the actor is killed. Ray restarts it and the
    judging call is retried: every row is there once, with the verdicts one process gave."""
    from selfplay.actors import JUDGE_POOL, NAMESPACE

    path = write_config(
        tmp_path, tiny[1], "judged", workers=2, batch=PROMPTS * GENERATIONS // 2, judges=1
    )
    actor = f"{JUDGE_POOL}-judged-0"
    killed = []

    def kills_the_judge(prompts, trainer):
        if trainer.state.global_step == 2 and trainer.accelerator.process_index == 0:
            if not killed:
                import ray

                ray.kill(ray.get_actor(actor, namespace=NAMESPACE), no_restart=False)
                killed.append(trainer.state.global_step)
        return scripted(prompts, trainer)

    run = launch.launch(path, "local", rollout_func=kills_the_judge)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    judged = [m["judge/n"] for m in metrics if "judge/n" in m]
    # The recorder's own judge ran in the actor: it counted each step's batch once.
    assert judged == [PROMPTS * GENERATIONS] * STEPS, judged
    assert_same_run(one_process, run, tiny[1])
    with pytest.raises(ValueError):  # the run's actors are gone with it
        ray.get_actor(actor, namespace=NAMESPACE)


def test_eval_in_ray_actors_equals_eval_in_one_process(tiny, tmp_path, local_ray):
    """`selfplay eval --ray-address`: two eval actors, a level at a time; the same rows."""
    from selfplay.config.load import load_envs, load_run_config
    from selfplay.evaluate import EvalSettings, evaluate
    from selfplay.transcripts import read_transcripts

    path = write_config(tmp_path, tiny[1], "evalled", workers=1, batch=GENERATIONS)
    path.write_text(
        path.read_text().replace(
            "judge_actors: 0", "eval_actors: 2, eval_cpus: 0.5, judge_actors: 0"
        )
    )
    config = load_run_config(path)
    envs = load_envs(config, str(path))
    settings = EvalSettings(samples=3, tasks_per_level=2, max_new_tokens=16)
    here = evaluate(tiny[1], config, envs, settings, tmp_path / "here")
    there = evaluate(tiny[1], config, envs, settings, tmp_path / "there", ray_address="local")
    a, b = read_transcripts(tmp_path / "here"), read_transcripts(tmp_path / "there")
    assert len(a) == here["tasks"] * 4 and here["tasks"] == 3 * 2  # 3 levels; greedy + 3
    columns = ["group", "sample", "task_id", "completion", "verdict_score", "reward"]
    assert a[columns].equals(b[columns])
    # Continuous measures are batched per environment in one process and per level in the
    # actors: equal up to float rounding.
    near, far = here["summary"].pop("continuous"), there["summary"].pop("continuous")
    assert here["summary"] == there["summary"]
    assert len(near) == len(far)
    for x, y in zip(near, far, strict=True):
        assert x.keys() == y.keys()
        for key, value in x.items():
            assert value == (
                y[key] if isinstance(value, str) else pytest.approx(y[key], rel=1e-6, nan_ok=True)
            ), key


def test_hung_worker_fails_the_run_naming_it(tiny, tmp_path, local_ray):
    """A training worker that hangs (here: sleeps in generation) is not waited on forever:
    the others' collective times out after resources.worker_timeout and the launch fails
    with an error naming the workers and the operation."""
    import time

    from selfplay.launch import LaunchError

    path = write_config(tmp_path, tiny[1], "hung", workers=2, batch=PROMPTS * GENERATIONS // 2)
    path.write_text(
        path.read_text().replace("judge_cpus: 0.25}", "judge_cpus: 0.25, worker_timeout: 10}")
    )

    def hangs(prompts, trainer):
        if trainer.state.global_step == 1 and trainer.accelerator.process_index == 1:
            time.sleep(600)
        return scripted(prompts, trainer)

    start = time.monotonic()
    with pytest.raises(LaunchError) as err:
        launch.launch(path, "local", rollout_func=hangs)
    seconds = time.monotonic() - start
    message = str(err.value)
    print(f"failed after {seconds:.0f}s: {message[:1500]}")
    assert seconds < 300
    assert "hung.yaml" in message and "stopped waiting for the other workers" in message
    assert "worker 1 (pid" in message and "step 1: generating, scoring and updating" in message


def test_launch_checks_before_it_writes(tiny, tmp_path, local_ray):
    from selfplay.launch import LaunchError

    path = write_config(tmp_path, tiny[1], "big", workers=8, batch=8)
    with pytest.raises(LaunchError, match=r"resources ask for 4 CPUs .* Ray cluster has 2"):
        launch.launch(path, "local")
    path.write_text(
        f"model: {tiny[1]}\nruns_dir: {tmp_path}\nname: play\nenvs: {{arithmetic: {{}}}}\n"
        "selfplay: {enabled: true}\nresources: {workers: 2, cpus_per_worker: 0.5}\n"
    )
    with pytest.raises(ConfigError, match="key 'selfplay': launched runs do not support selfplay"):
        launch.launch(path, "local")
    assert not (tmp_path / "big").exists() and not (tmp_path / "play").exists()
