"""Ray actors: RayJudge against the in-process judges, killed and hanging actors, a scorer's
error through an actor, and the sandbox in actors; all on a real local Ray instance."""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from envs import Environment, Task, Verdict, load_env, make_task
from selfplay.actors import (
    ActorDied,
    ActorPool,
    ActorTimeout,
    JudgeActor,
    JudgeFactory,
    RayExecutor,
    RayJudge,
    split,
    start_judges,
)
from selfplay.judges import JudgeError, make_judge
from selfplay.resources import ResourcesConfig
from selfplay.sandbox import Sandbox, equip

ENV_SPECS = {"arithmetic": {}, "countdown": {}, "programs_abduction": {}}
RESOURCES = ResourcesConfig(judge_actors=2, judge_cpus=0.25, actor_timeout=60.0, max_restarts=2)


# -- split: no Ray needed -------------------------------------------------------------------

# n, parts, keys, pieces
SPLITS = [
    (10, 2, None, [(0, 5), (5, 10)]),
    (10, 3, None, [(0, 3), (3, 7), (7, 10)]),
    (2, 4, None, [(0, 1), (1, 2)]),  # never an empty piece
    (0, 3, None, []),
    (6, 2, "aaabbb", [(0, 3), (3, 6)]),
    (6, 2, "aaaabb", [(0, 4), (4, 6)]),  # the cut moves forward to the change of key
    (6, 3, "aaaaab", [(0, 5), (5, 6)]),
    (6, 2, "aaaaaa", [(0, 6)]),  # one group is never cut
]


@pytest.mark.parametrize(("n", "parts", "keys", "pieces"), SPLITS)
def test_split(n, parts, keys, pieces):
    got = split(n, parts, list(keys) if keys else None)
    assert [(r.start, r.stop) for r in got] == pieces


def test_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least 1"):
        split(3, 0)
    with pytest.raises(ValueError, match="3 items but 2 keys"):
        split(3, 2, ["a", "b"])


def test_imports_without_ray():
    code = "import sys, selfplay.actors; assert 'ray' not in sys.modules, 'ray was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- a local Ray instance (the tests below are skipped without the ray extra) ---------------


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance with 2 CPUs; this module's test classes pickle by value."""
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live here
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def judges(cluster):
    """Two judge actors over arithmetic, countdown and abduction programs."""
    pool = start_judges(ENV_SPECS, RESOURCES, name="test-judges")
    yield pool
    pool.close()


def _batch(seed: int, groups: int = 12, size: int = 4) -> tuple[list[Task], list[str]]:
    """``groups`` tasks of the three environments, ``size`` completions each (right, wrong,
    repeated, malformed), shuffled so that a task's completions are not adjacent."""
    rng = random.Random(seed)
    envs = {name: load_env(name) for name in ENV_SPECS}
    items = []
    for g in range(groups):
        env = envs[list(ENV_SPECS)[g % len(ENV_SPECS)]]
        task = env.task(seed, g, env.levels[g % len(env.levels)])
        choices = [env.target(task), "<answer>12345</answer>", "<think>no idea</think>"]
        choices.append("<answer>7</answer>")
        items.extend((task, rng.choice(choices)) for _ in range(size))
    rng.shuffle(items)
    return [t for t, _ in items], [c for _, c in items]


def _in_process(judge: str, batches: list) -> tuple[list[list[Verdict]], dict]:
    scorer = make_judge(judge, {name: equip(load_env(name)) for name in ENV_SPECS})
    verdicts = [scorer(tasks, completions) for tasks, completions in batches]
    return verdicts, scorer.stats()


def _pids(pool: ActorPool) -> list[int]:
    return [pool.where(i)[0] for i in range(pool.size)]


@pytest.mark.parametrize("judge", ["program", "majority"])
def test_ray_judge_matches_the_in_process_judge(judges, judge):
    batches = [_batch(1), _batch(2, groups=5, size=3)]
    expected, expected_stats = _in_process(judge, batches)
    ray_judge = RayJudge(judges, judge)
    got = [ray_judge(tasks, completions) for tasks, completions in batches]
    assert got == expected
    assert ray_judge.stats() == expected_stats
    assert expected_stats["judge/n"] == 48 + 15
    assert 0 < sum(v.score for v in got[0]) < len(got[0])  # right and wrong answers both
    assert ray_judge.stats() == _in_process(judge, [])[1]  # reset by the previous call
    assert ray_judge([], []) == []


def test_ray_judge_uses_every_actor_and_keeps_groups_whole(judges):
    tasks, completions = _batch(3)
    seen = {}

    class Spy(ActorPool):  # records the calls RayJudge makes, then makes them
        def run(self, method, calls, whats):
            seen["calls"] = calls
            return super().run(method, calls, whats)

    spy = Spy(judges.name)
    RayJudge(spy, "majority")(tasks, completions)
    ids = [{t.task_id for t in call[1]} for call in seen["calls"]]
    assert len(ids) == 2 and not ids[0] & ids[1]
    assert sum(len(call[1]) for call in seen["calls"]) == len(tasks)


class DyingJudge(JudgeActor):
    """Exits its process at the start of a judge call, once: whoever removes the marker."""

    def __init__(self, envs: dict, sandbox_workers: int, marker: str):
        super().__init__(envs, sandbox_workers)
        self.marker = marker

    def judge(self, judge, tasks, completions):
        try:
            os.remove(self.marker)
        except FileNotFoundError:
            return super().judge(judge, tasks, completions)
        os._exit(1)


def test_killed_judge_actor_is_restarted_and_its_items_retried(cluster, tmp_path):
    marker = tmp_path / "die"
    pool = ActorPool.start(
        DyingJudge,
        (ENV_SPECS, 1, str(marker)),
        name="dying",
        size=2,
        cpus=0.25,
        timeout=60,
        max_restarts=1,
    )
    try:
        before = _pids(pool)
        tasks, completions = _batch(4)
        expected, expected_stats = _in_process("majority", [(tasks, completions)])
        marker.touch()
        judge = RayJudge(pool, "majority")
        assert judge(tasks, completions) == expected[0]  # one verdict per item, none lost
        assert not marker.exists()  # an actor did die
        assert judge.stats() == expected_stats  # the retried chunk counted once
        after = _pids(pool)
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 1  # one was restarted
    finally:
        pool.close()


def test_actor_with_no_restarts_left_raises_naming_it(cluster, tmp_path):
    marker = tmp_path / "die"
    args = (ENV_SPECS, 1, str(marker))
    pool = ActorPool.start(
        DyingJudge, args, name="mortal", size=1, cpus=0.25, timeout=60, max_restarts=0
    )
    try:
        marker.touch()
        tasks, completions = _batch(5, groups=2)
        with pytest.raises(ActorDied, match=r"actor mortal-0 died judging 8 completions .*step 3"):
            RayJudge(pool)(tasks, completions, what="step 3")
    finally:
        pool.close()


class Slow:
    """Doubles numbers, slowly, and says which process did it; leaves a file in ``started``
    as each call begins."""

    def __init__(self, started: str):
        self.started = started

    def double(self, numbers: list[int]) -> list[tuple[int, int]]:
        open(os.path.join(self.started, str(os.getpid())), "w").close()
        time.sleep(1.0)
        return [(2 * n, os.getpid()) for n in numbers]


def test_ray_kill_mid_batch_retries_the_chunk(cluster, tmp_path):
    import ray

    pool = ActorPool.start(
        Slow, (str(tmp_path),), name="slow", size=2, cpus=0.25, timeout=60, max_restarts=1
    )
    try:
        before = _pids(pool)
        with ThreadPoolExecutor(1) as thread:
            batch = thread.submit(pool.map, "double", range(9), "doubling")
            deadline = time.monotonic() + 20
            while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(list(tmp_path.iterdir())) == 2  # both calls are under way
            ray.kill(ray.get_actor("slow-0", namespace=pool.namespace), no_restart=False)
            out = batch.result(timeout=30)
        assert [value for value, _ in out] == [2 * n for n in range(9)]
        pids = [pid for _, pid in out]
        first = split(9, 2)[0].stop  # the items of actor 0, which was killed
        assert len(set(pids[:first])) == 1 and before[0] not in pids[:first]
        assert set(pids[first:]) == {before[1]}
        assert len(list(tmp_path.iterdir())) == 3  # actor 0's chunk began again, once
    finally:
        pool.close()


class HangingJudge(JudgeActor):
    """Hangs in a judge call, once: whoever removes the marker."""

    def __init__(self, envs: dict, sandbox_workers: int, marker: str):
        super().__init__(envs, sandbox_workers)
        self.marker = marker

    def judge(self, judge, tasks, completions):
        try:
            os.remove(self.marker)
            time.sleep(120)
        except FileNotFoundError:
            pass
        return super().judge(judge, tasks, completions)


def test_hanging_actor_times_out_naming_it_and_its_work(cluster, tmp_path):
    marker = tmp_path / "hang"
    args = (ENV_SPECS, 1, str(marker))
    pool = ActorPool.start(
        HangingJudge, args, name="hanging", size=2, cpus=0.25, timeout=2, max_restarts=1
    )
    try:
        tasks, completions = _batch(6)
        marker.touch()
        started = time.monotonic()
        with pytest.raises(ActorTimeout) as caught:
            RayJudge(pool, "program")(tasks, completions, what="step 7")
        assert time.monotonic() - started < 30  # 2 s, and a few to ask where the actor is
        message = str(caught.value)
        pattern = r"actor hanging-[01] \(pid (\d+) on [\d.]+\) took more than 2s judging \d+ comp"
        assert re.search(pattern, message) and message.count("step 7") == 1
        # The late actor was restarted, its call cancelled: the pool judges the next batch
        # (the hung process would have held it another two minutes), in a new process.
        expected, _ = _in_process("program", [(tasks, completions)])
        assert RayJudge(pool, "program")(tasks, completions) == expected[0]
        assert int(re.search(pattern, message).group(1)) not in _pids(pool)
    finally:
        pool.close()


def test_actor_that_cannot_be_placed_times_out_saying_why(cluster):
    started = time.monotonic()
    with pytest.raises(ActorTimeout, match=r"greedy-0 \(not answering; Ray has [\d.]+ of 2 CPUs"):
        ActorPool.start(
            Slow, ("/",), name="greedy", size=1, cpus=3, timeout=60, max_restarts=0, start_timeout=1
        )
    assert time.monotonic() - started < 30
    with pytest.raises(LookupError, match="no actor pool 'nobody' in Ray namespace 'selfplay'"):
        ActorPool("nobody").call("where", what="asking")


def test_actor_that_fails_to_start_says_why(cluster):
    bad = {"arithmetic": {"nope": 1}}
    with pytest.raises(ValueError, match="environment 'arithmetic': bad options"):
        start_judges(bad, RESOURCES, name="refused")  # checked before any actor starts
    with pytest.raises(
        ActorDied,
        match=r"actor unborn-0 failed starting .* constructor raised "
        r"ValueError: environment 'arithmetic': bad options",
    ):
        ActorPool.start(
            JudgeActor, (bad,), name="unborn", size=1, cpus=0.25, timeout=60, max_restarts=2
        )


class Broken(Environment):
    """An environment whose scorer has a bug."""

    name = "broken"

    def generate(self, rng, difficulty: int) -> Task:
        return make_task("Say 1.", "1")

    def check(self, answer: str, task: Task) -> Verdict:
        raise RuntimeError("scorer bug")


class BrokenJudge(JudgeActor):
    """A judge actor that also has the broken environment."""

    def __init__(self, envs: dict, sandbox_workers: int):
        super().__init__(envs, sandbox_workers)
        self.envs["broken"] = Broken()


def test_judge_error_in_an_actor_reaches_the_caller(cluster):
    pool = start_judges(ENV_SPECS, RESOURCES, name="broken", actor=BrokenJudge)
    try:
        tasks, completions = _batch(7, groups=3)
        bad = Broken().task(0, 3, 1)
        started = time.monotonic()
        with pytest.raises(
            JudgeError, match=r"environment 'broken', task broken/0/1/3: scorer bug"
        ) as caught:
            RayJudge(pool)([*tasks, bad], [*completions, "<answer>1</answer>"], what="step 9")
        assert time.monotonic() - started < 30  # raised at once, not retried
        if sys.version_info >= (3, 11):  # which actor, doing what: a note on the exception
            notes = " ".join(caught.value.__notes__)
            assert re.search(r"in actor broken-[01], judging \d+ completions .*step 9", notes)
        # The actors live on: the next batch is judged.
        expected, _ = _in_process("program", [(tasks, completions)])
        assert RayJudge(pool)(tasks, completions) == expected[0]
    finally:
        pool.close()


PROGRAMS = [
    ("def f(x):\n    return 2 * x", "f(21)"),
    ("def f(x):\n    return 1 / x", "f(0)"),
    ("import os", None),
    ("while True:\n    pass", None),
]


def test_ray_executor_runs_programs_like_the_local_sandbox(judges):
    executor = pickle.loads(pickle.dumps(RayExecutor(judges)))  # by name: no actor handles
    assert len(pickle.dumps(executor)) < 300
    with Sandbox(workers=1) as local:
        expected = [local.run(code, expression) for code, expression in PROGRAMS]
    got = [executor(code, expression) for code, expression in PROGRAMS]

    def essentials(r):
        return r.status, r.value, r.error, r.violation

    assert [essentials(r) for r in got] == [essentials(r) for r in expected]
    assert [r.status for r in got] == ["ok", "error", "error", "timeout"]
    assert got[0].value == "42" and got[2].violation


def _elsewhere(executor: RayExecutor, factory: JudgeFactory, task: Task) -> tuple:
    """In another process: run a program and judge a completion, the pool found by name."""
    judge = factory("program", {"arithmetic": None})
    verdict = judge([task], [f"<answer>{task.answer}</answer>"])[0]
    return executor("x = 6 * 7", "x").value, verdict.score, os.getpid()


def test_other_processes_find_the_pool_by_name(judges):
    import ray

    task = load_env("arithmetic").task(0, 0, 1)
    factory = JudgeFactory(judges, list(ENV_SPECS))
    elsewhere = ray.remote(num_cpus=0.25)(_elsewhere)  # a task: a process of its own
    ref = elsewhere.remote(RayExecutor(judges), factory, task)
    value, score, pid = ray.get(ref, timeout=60)
    assert (value, score) == ("42", 1.0) and pid != os.getpid()
    with pytest.raises(ValueError, match=r"no environments \['clarify'\]"):
        factory("program", {"clarify": None})


def test_executor_serves_a_programs_environment(judges):
    env = RayExecutor(judges).equip(load_env("programs_abduction"))
    task = env.task(0, 2, 1)
    assert env.score(env.target(task), task).score == 1.0
    assert env.score("<answer>'not it'</answer>", task).score == 0.0
