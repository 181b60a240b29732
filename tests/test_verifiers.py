"""verifiers both ways, offline: selfplay's environments exported as verifiers environments
(``selfplay.interop.verifiers``) and verifiers environments imported as selfplay's
(``envs.verifiers``, ``load_env("verifiers", module=...)``).

The import runs the environment contract (tests/test_env_contract.py) here on the one-level
variant of ``vf_quiz`` (tests/plugins/vf_quiz, a module written as a Hub author writes one);
the contract file runs every check on its two-level variant. On the one-level variant every
check applies except ``test_levels_differ``: a dataset without a ``difficulty`` column gives
one level, so there are no two levels to compare. (Two checks hold by construction rather than
by the rubric: an empty or tagless completion scores 0 because selfplay's format check stops
it before the rubric, and ``<ask>`` scores 0 because verifiers environments have no
clarifying questions.)
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

vf = pytest.importorskip("verifiers")

from envs import load_env, task_from_json, task_to_json  # noqa: E402
from envs.errors import UserError  # noqa: E402
from envs.verifiers import NoModule, rollout_state, rubric_reward  # noqa: E402
from selfplay.interop.verifiers import load_environment  # noqa: E402
from selfplay.recorder import task_row  # noqa: E402

QUIZ = Path(__file__).resolve().parent / "plugins" / "vf_quiz"
MODULE_HEAD = """\
import verifiers as vf
from datasets import Dataset

DATA = Dataset.from_list(
    [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 9)]
)
PARSER = vf.XMLParser(["answer"])


def correct(completion, answer, parser) -> float:
    return float(parser.parse_answer(completion) == answer)
"""


@pytest.fixture(autouse=True)
def quiz_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(QUIZ))


@pytest.fixture(scope="module")
def quiz():
    """vf_quiz without its difficulty column: one level."""
    sys.path.insert(0, str(QUIZ))
    try:
        return load_env("verifiers", module="vf_quiz", with_difficulty=False, num_examples=40)
    finally:
        sys.path.remove(str(QUIZ))


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> str:
    """A verifiers module ``name`` in ``tmp_path`` (on sys.path): MODULE_HEAD, then ``body``."""
    (tmp_path / f"{name}.py").write_text(MODULE_HEAD + textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def fake_openai(answer_for):
    """A verifiers client on an in-process OpenAI-compatible endpoint: the reply to a prompt
    is ``answer_for(last user message)``. The real OpenAI SDK, no network."""
    import httpx
    import openai

    def reply(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        text = answer_for(body["messages"][-1]["content"])
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [choice],
                "usage": usage,
            },
        )

    transport = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    client = openai.AsyncOpenAI(
        base_url="http://fake.invalid/v1", api_key="-", http_client=transport
    )
    return vf.OpenAIChatCompletionsClient(client)


# -- export: selfplay -> verifiers ------------------------------------------------------------


def test_export_round_trip_through_verifiers_own_evaluation():
    exported = load_environment("arithmetic", levels=[1, 2], n=4, seed=3)
    rows = exported.get_dataset()
    assert len(rows) == 8
    answers = {r["prompt"][-1]["content"]: r["answer"] for r in rows}
    replies = {
        "right": lambda prompt: f"<think>so</think><answer>{answers[prompt]}</answer>",
        "wrong": lambda prompt: f"<think>so</think><answer>{answers[prompt]}9</answer>",
        "no tags": lambda prompt: answers[prompt],
    }
    expected = {"right": 1.0, "wrong": 0.0, "no tags": 0.0}
    for kind, answer_for in replies.items():
        results = exported.evaluate_sync(client=fake_openai(answer_for), model="fake")
        outputs = results["outputs"]
        assert len(outputs) == 8
        assert [o["reward"] for o in outputs] == [expected[kind]] * 8, kind
        assert [o["metrics"]["selfplay_score"] for o in outputs] == [expected[kind]] * 8


def test_export_rows_are_selfplay_rows():
    env = load_env("countdown")
    exported = load_environment("countdown", levels=2, n=3, seed=5, system_prompt="Be brief.")
    rows = exported.get_dataset()
    assert [r["difficulty"] for r in rows] == [2, 2, 2]
    for index, row in enumerate(rows):
        task = env.task(5, index, 2)
        assert row["prompt"] == task_row(task, system="Be brief.")["prompt"]
        assert row["prompt"][0] == {"role": "system", "content": "Be brief."}
        assert row["info"]["selfplay_task"] == task_to_json(task)
        assert task_from_json(row["info"]["selfplay_task"]) == task
        assert (row["answer"], row["task_id"]) == (task.answer, task.task_id)
    # the project's default system prompt (RunConfig.system_prompt) is none
    default = load_environment("countdown", levels=2, n=1, seed=5).get_dataset()[0]
    assert [m["role"] for m in default["prompt"]] == ["user"]


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"env": "no_such_env"}, "no_such_env"),
        ({"levels": [1, 99]}, "99"),
        ({"levels": []}, "levels is empty"),
        ({"n": 0}, "0"),
        ({"n": "3"}, "'3'"),
        ({"seed": 1.5}, "1.5"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_export_refuses_bad_arguments(kwargs, named):
    with pytest.raises(ValueError, match=named):
        load_environment(**kwargs)


def test_export_then_import_gives_back_the_environment():
    arithmetic = load_env("arithmetic")
    back = load_env("verifiers", module="selfplay.interop.verifiers", env="arithmetic", n=6)
    assert back.levels == arithmetic.levels
    for level in arithmetic.levels:
        prompts = {arithmetic.task(0, i, level).prompt for i in range(6)}
        for index in range(6):
            task = back.task(1, index, level)
            assert task.prompt in prompts
            original = task_from_json(task.metadata["row"]["info"]["selfplay_task"])
            for completion in (back.target(task), "<answer>-1</answer>", "<ask>?</ask>", "x"):
                ours, native = back.score(completion, task), arithmetic.score(completion, original)
                assert (ours.score, ours.kind) == (native.score, native.kind), completion


# -- import: verifiers -> selfplay: the contract checks that apply ------------------------------


def test_same_seed_same_task(quiz):
    assert quiz.levels == (1,)
    assert quiz.task(7, 3, 1) == quiz.task(7, 3, 1)
    assert len({quiz.task(7, i, 1).prompt for i in range(40)}) > 1
    task = quiz.task(1, 2, 1)
    assert (task.env, task.difficulty, task.task_id) == ("verifiers", 1, "verifiers/1/1/2")
    assert task.prompt.startswith("What is ") and task.answer and task.specified
    # the task read back from its JSON (a transcript) scores the same
    assert quiz.score(quiz.target(task), task_from_json(task_to_json(task))).score == 1.0


def test_true_answer_scores_one_wrong_and_empty_zero(quiz):
    for index in range(40):
        task = quiz.task(0, index, 1)
        assert quiz.score("<think>working</think>" + quiz.target(task), task).score == 1.0
        for completion in ("", "<answer></answer>", "no tags at all", "<answer>zzz</answer>"):
            verdict = quiz.score(completion, task)
            assert verdict.score == 0.0, (task.task_id, completion, verdict)
        assert quiz.score(task.answer or "", task).kind == "malformed"


def test_scores_stay_in_unit_interval(quiz):
    junk = ["<answer>-1</answer>", "<answer>1e9</answer>", "<ask>?</ask>", "<answer>((</answer>"]
    for index in range(10):
        task = quiz.task(3, index, 1)
        for completion in junk:
            assert 0.0 <= quiz.score(completion, task).score <= 1.0


def test_unknown_level_is_rejected(quiz):
    with pytest.raises(ValueError, match="verifiers.*difficulty 2 not in levels"):
        quiz.task(0, 0, 2)


def test_levels_come_from_the_difficulty_column():
    quiz = load_env("verifiers", module="vf_quiz", num_examples=60)
    assert quiz.levels == (1, 2)
    easy = [quiz.task(0, i, 1).metadata["row"] for i in range(20)]
    hard = [quiz.task(0, i, 2).metadata["row"] for i in range(20)]
    assert {r["difficulty"] for r in easy} == {1} and {r["difficulty"] for r in hard} == {2}
    assert max(len(r["answer"]) for r in easy) < max(len(r["answer"]) for r in hard)


# -- import: scoring is the rubric's, and fails loud ------------------------------------------


def test_the_reward_is_the_rubrics_weighted_sum(tmp_path, monkeypatch):
    name = write_module(
        tmp_path,
        monkeypatch,
        "vf_halves",
        """
        def load_environment():
            rubric = vf.Rubric(funcs=[correct, PARSER.get_format_reward_func()],
                               weights=[0.5, 0.5], parser=PARSER)
            return vf.SingleTurnEnv(dataset=DATA, parser=PARSER, rubric=rubric)
    """,
    )
    env = load_env("verifiers", module=name)
    task = env.task(0, 0, 1)
    made = vf.load_environment(name)
    for reply in (f"<answer>{task.answer}</answer>", "<answer>0</answer>", "<answer>x", ""):
        state = rollout_state(task.metadata["row"], reply)
        ours = asyncio.run(rubric_reward(made.rubric, state, "here"))
        asyncio.run(made.rubric.score_rollout(state))  # verifiers' own scoring
        assert ours == pytest.approx(state["reward"]), reply
    assert env.score(env.target(task), task).score == pytest.approx(0.5 + 0.5)
    assert env.score("<answer>0</answer>", task).reason == "partial"


def test_a_raising_reward_function_raises_with_the_task_id(tmp_path, monkeypatch):
    name = write_module(
        tmp_path,
        monkeypatch,
        "vf_buggy",
        """
        def load_environment():
            def buggy(completion, answer) -> float:
                return 1.0 / 0
            rubric = vf.Rubric(funcs=[correct, buggy], weights=[1.0, 0.0], parser=PARSER)
            rubric.weights[1] = 0.5  # a weight of 0 is a metric, never called
            return vf.SingleTurnEnv(dataset=DATA, parser=PARSER, rubric=rubric)
    """,
    )
    env = load_env("verifiers", module=name)
    task = env.task(0, 4, 1)
    with pytest.raises(
        RuntimeError, match=r"vf_buggy.*verifiers/0/1/4.*'buggy' raised ZeroDivision"
    ):
        env.score(env.target(task), task)
    # verifiers' own scoring would have counted it as a wrong answer
    state = rollout_state(task.metadata["row"], env.target(task))
    asyncio.run(vf.load_environment(name).rubric.score_rollout(state))
    assert state["metrics"]["buggy"] == 0.0


def test_a_reward_outside_the_unit_interval_raises():
    env = load_env("verifiers", module="vf_quiz", format_weight=0.5)
    task = env.task(0, 0, 1)
    with pytest.raises(ValueError, match=r"vf_quiz.*verifiers/0/1/0.*outside \[0, 1\]"):
        env.score("<think>a</think>" + env.target(task), task)


def test_answer_format_feeds_rubrics_that_read_boxed_answers(tmp_path, monkeypatch):
    name = write_module(
        tmp_path,
        monkeypatch,
        "vf_boxed",
        """
        def load_environment():
            parser = vf.Parser(extract_fn=vf.extract_boxed_answer)
            rubric = vf.Rubric(funcs=[correct], parser=parser)
            return vf.SingleTurnEnv(dataset=DATA, parser=parser, rubric=rubric)
    """,
    )
    plain = load_env("verifiers", module=name)
    boxed = load_env("verifiers", module=name, answer_format="\\boxed{{answer}}")
    task = boxed.task(0, 0, 1)
    assert plain.score(plain.target(task), task).score == 0.0
    assert boxed.score(boxed.target(task), task).score == 1.0
    assert boxed.score("<answer>0</answer>", task).score == 0.0
    with pytest.raises(ValueError, match="no '{answer}'"):
        load_env("verifiers", module=name, answer_format="\\boxed{}")


REFUSED = {
    "multi-turn": """
        class Chat(vf.MultiTurnEnv):
            async def env_response(self, messages, state, **kwargs):
                return [{"role": "user", "content": "again"}]

        def load_environment():
            return Chat(dataset=DATA, rubric=vf.Rubric(funcs=[correct], parser=PARSER))
    """,
    "tools": """
        def add(a: int, b: int) -> int:
            \"\"\"Add two numbers.\"\"\"
            return a + b

        def load_environment():
            return vf.ToolEnv(dataset=DATA, tools=[add], rubric=vf.Rubric(funcs=[correct]))
    """,
    "single-turn tools": """
        ADD = {"name": "add", "description": "Add two numbers.", "parameters": {
            "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}

        def load_environment():
            rubric = vf.Rubric(funcs=[correct], parser=PARSER)
            return vf.SingleTurnEnv(dataset=DATA, tool_defs=[ADD], parser=PARSER, rubric=rubric)
    """,
    "group reward": """
        def best_of_group(completions, answers) -> list[float]:
            return [1.0 for _ in completions]

        def load_environment():
            return vf.SingleTurnEnv(dataset=DATA, rubric=vf.Rubric(funcs=[best_of_group]))
    """,
    "not an environment": """
        def load_environment():
            return DATA
    """,
}


@pytest.mark.parametrize("kind", REFUSED)
def test_environments_that_are_not_single_replies_are_refused(kind, tmp_path, monkeypatch):
    name = write_module(
        tmp_path, monkeypatch, f"vf_{kind.replace(' ', '_').replace('-', '_')}", REFUSED[kind]
    )
    message = {
        "multi-turn": "Chat is a multi-turn environment",
        "tools": "ToolEnv is a multi-turn environment",
        "single-turn tools": "gives the model tools \\(add\\)",
        "group reward": "group reward functions",
        "not an environment": "returned a Dataset",
    }[kind]
    with pytest.raises(ValueError, match=f"{name}.*{message}"):
        load_env("verifiers", module=name)


def test_bad_modules_and_options_name_what_is_wrong(tmp_path, monkeypatch):
    with pytest.raises(NoModule, match="module='vf_quiz'") as caught:
        load_env("verifiers")
    # an ImportError too, so `selfplay envs` lists it as unavailable instead of failing
    assert isinstance(caught.value, ImportError) and isinstance(caught.value, UserError)
    with pytest.raises(ValueError, match="'vf_not_installed_anywhere' .*not installed"):
        load_env("verifiers", module="vf_not_installed_anywhere")
    with pytest.raises(ValueError, match="vf_quiz.*bad env args.*wings"):
        load_env("verifiers", module="vf_quiz", wings=2)
    empty = write_module(tmp_path, monkeypatch, "vf_no_loader", "\n")
    with pytest.raises(ValueError, match="vf_no_loader.*no load_environment"):
        load_env("verifiers", module=empty)
    needs = write_module(tmp_path, monkeypatch, "vf_needs_more", "import no_such_dependency_x\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_x"):
        load_env("verifiers", module=needs)
    other = load_env("verifiers", module="vf_quiz").task(0, 0, 1)
    with pytest.raises(ValueError, match="from module 'vf_quiz'"):
        load_env("verifiers", module="selfplay.interop.verifiers", n=1).check("1", other)


def test_a_pickled_copy_loads_again_and_scores_alike(quiz):
    task = quiz.task(2, 5, 1)
    copy = pickle.loads(pickle.dumps(quiz))
    assert copy.levels == quiz.levels and copy.task(2, 5, 1) == task
    assert copy.score(copy.target(task), task).score == 1.0


def test_loading_keeps_the_processs_signal_handlers():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    load_env("verifiers", module="vf_quiz", num_examples=4)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_envs_imports_no_verifiers():
    code = "import sys, envs, envs.verifiers; print('verifiers' in sys.modules, 'datasets' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False False", done.stderr


# -- the user's command: vf-eval on the exported environment ----------------------------------


@pytest.mark.slow
def test_vf_eval_scores_the_exported_environment(tmp_path):
    """``vf-eval`` itself, against an OpenAI-compatible stand-in on localhost (no network)."""
    rows = load_environment("arithmetic", levels=[1], n=3).get_dataset()
    answers = {r["prompt"][-1]["content"]: r["answer"] for r in rows}

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = f"<answer>{answers[body['messages'][-1]['content']]}</answer>"
            message = {"role": "assistant", "content": text}
            out = json.dumps(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    vf_eval = Path(sys.executable).parent / "vf-eval"
    args = '{"env": "arithmetic", "levels": [1], "n": 3}'
    command = [str(vf_eval), "selfplay.interop.verifiers", "-a", args, "-m", "fake", "-n", "3"]
    command += ["-b", f"http://127.0.0.1:{server.server_port}/v1", "-k", "FAKE_KEY"]
    command += ["--disable-tui", "--disable-env-server"]
    env = {**os.environ, "FAKE_KEY": "-"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "reward: avg - 1.000" in done.stdout, done.stdout[-3000:]
