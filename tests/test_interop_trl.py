"""Our environments in a plain TRL script: the dataset, reward functions and the clarify
environment, each checked on literal tables and in a real ``trl.GRPOTrainer`` step."""

import inspect
import json

import pytest

from envs import task_from_json
from envs.arithmetic import Arithmetic
from envs.clarify import UNCLEAR, Clarify
from rewards import RewardError
from selfplay.interop import trl as interop
from selfplay.interop.trl import (
    ClarifyEnvironment,
    dataset,
    environment_reward,
    reward_function,
)

ARITH = Arithmetic().task(0, 0, 1)  # the true answer is ARITH.answer
UNDER = Clarify(unspecified_rate=1.0).task(0, 0, 1)  # lacks one quantity: asking is right
SPEC = Clarify(unspecified_rate=0.0).task(0, 0, 1)


def row(task):
    """The columns TRL passes a reward function for one completion of ``task``."""
    from selfplay.recorder import task_row

    return {k: v for k, v in task_row(task).items() if k != "prompt"}


def call(reward, tasks, completions, **extra):
    """``reward`` called as TRL calls it: prompts, completions and one column list per row."""
    rows = [row(t) for t in tasks]
    columns = {key: [r[key] for r in rows] for key in rows[0]}
    return reward(
        prompts=[[{"role": "user", "content": t.prompt}] for t in tasks],
        completions=completions,
        **columns,
        **extra,
    )


def recording(reward, calls):
    """``reward`` that also keeps the keyword columns of each call (the rows TRL passed)."""

    def wrapped(prompts, completions, **columns):
        calls.append(columns)
        return reward(prompts, completions, **columns)

    wrapped.__name__ = reward.__name__
    return wrapped


# -- the dataset ---------------------------------------------------------------------------


def test_dataset_rows_cycle_over_environments_and_levels():
    rows = dataset(["arithmetic", "clarify"], levels={"arithmetic": [1, 2]}, n=10, seed=3)
    assert len(rows) == 10
    assert set(rows.column_names) == {"prompt", "task", "task_id", "env", "difficulty", "specified"}
    pairs = [("arithmetic", 1), ("arithmetic", 2), ("clarify", 1), ("clarify", 2), ("clarify", 3)]
    assert [(r["env"], r["difficulty"]) for r in rows] == pairs * 2
    assert rows["task_id"][:6] == [
        "arithmetic/3/1/0",
        "arithmetic/3/2/0",
        "clarify/3/1/0",
        "clarify/3/2/0",
        "clarify/3/3/0",
        "arithmetic/3/1/1",
    ]
    first = rows[0]
    assert task_from_json(first["task"]) == Arithmetic().task(3, 0, 1)
    assert first["prompt"] == [{"role": "user", "content": Arithmetic().task(3, 0, 1).prompt}]
    assert (
        dataset(["arithmetic", "clarify"], levels={"arithmetic": [1, 2]}, n=10, seed=3)["task"]
        == rows["task"]
    )


def test_dataset_takes_environment_instances_and_a_system_prompt():
    rows = dataset({"clarify": Clarify(unspecified_rate=1.0)}, n=3, system="Think first.")
    assert rows["specified"] == [False, False, False]
    assert rows[0]["prompt"][0] == {"role": "system", "content": "Think first."}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"envs": ["arithmetic"], "n": 0}, "n must be a positive integer"),
        ({"envs": ["arithmetic"], "levels": {"clarify": [1]}}, "levels names 'clarify'"),
        ({"envs": ["arithmetic"], "levels": {"arithmetic": [9]}}, "difficulty 9"),
        ({"envs": ["arithmetic"], "levels": {"arithmetic": []}}, "levels of 'arithmetic' is empty"),
        ({"envs": "arithmetic"}, "list of environment names"),
        ({"envs": []}, "envs is empty"),
        ({"envs": {"maths": Arithmetic()}}, "key it by its name"),
        ({"envs": {"arithmetic": "Arithmetic"}}, "must be an envs.Environment"),
    ],
)
def test_dataset_refuses_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dataset(**kwargs)


def test_an_unknown_environment_is_named():
    with pytest.raises(KeyError, match="unknown environment 'nope'"):
        dataset(["nope"])


# -- reward_function: literal tables ---------------------------------------------------------

A, WRONG = ARITH.answer, str(int(ARITH.answer) + 1)

CORRECT = [
    (f"<answer>{A}</answer>", 1.0),
    (f"<think>so it is {A}</think><answer>{A}</answer>", 1.0),
    (f"<answer>{WRONG}</answer>", 0.0),
    (f"<think>it is {A}</think>", 0.0),  # buried in the reasoning, no answer tag
    (f"<answer>{A}</answer> no, <answer>{WRONG}</answer>", 0.0),  # the last tag counts
    (f"<answer>{WRONG}</answer> no, <answer>{A}</answer>", 1.0),
    (f"<answer>{A}", 0.0),  # unclosed
    ("", 0.0),
    ([{"role": "assistant", "content": f"<answer>{A}</answer>"}], 1.0),  # conversational
    ([{"role": "assistant", "content": f"<answer>{WRONG}</answer>"}], 0.0),
]


@pytest.mark.parametrize("completion, expected", CORRECT)
def test_correct_table(completion, expected):
    assert call(reward_function(["arithmetic"]), [ARITH], [completion]) == [expected]


FORMAT = [
    (f"<think>add</think><answer>{A}</answer>", 1.0),
    (f"<answer>{A}</answer>", 1.0),
    (f"<answer>{A}</answer> and more", 0.0),  # trailing text
    (f"<think>add<answer>{A}</answer>", 0.0),  # think never closed
    ("no tags", 0.0),
]


@pytest.mark.parametrize("completion, expected", FORMAT)
def test_format_table(completion, expected):
    assert call(reward_function(["arithmetic"], "format"), [ARITH], [completion]) == [expected]


def test_rows_of_other_environments_are_not_applicable():
    reward = reward_function(["arithmetic"])
    completions = [f"<answer>{A}</answer>", "<answer>3</answer>", f"<answer>{WRONG}</answer>"]
    assert reward.__name__ == "correct"
    assert call(reward, [ARITH, SPEC, ARITH], completions) == [1.0, None, 0.0]
    assert call(reward, [SPEC], ["<answer>3</answer>"]) == [None]


def test_other_columns_are_sliced_with_the_rows():
    """A column with one value per completion (TRL's completion_ids, say) follows the rows."""
    reward = reward_function(["arithmetic"])
    completions = ["<answer>3</answer>", f"<answer>{A}</answer>", f"<answer>{WRONG}</answer>"]
    out = call(reward, [SPEC, ARITH, ARITH], completions, completion_ids=[[1], [2], [3]])
    assert out == [None, 1.0, 0.0]


def test_clarify_component_on_plain_completions():
    reward = reward_function(["clarify", "arithmetic"], "clarify")
    missing = UNDER.metadata["missing"]
    completions = [
        f"<ask>How many {missing} are there?</ask>",
        "<answer>4</answer>",
        "<ask>How many?</ask>",
        f"<answer>{A}</answer>",
    ]
    assert call(reward, [UNDER, UNDER, SPEC, ARITH], completions) == [1.0, 0.0, 0.0, 1.0]
    # The correct component leaves underspecified tasks to clarify: not applicable there.
    assert call(reward_function(["clarify"]), [UNDER], ["<answer>4</answer>"]) == [None]


class Broken(Arithmetic):
    """An arithmetic scorer with a bug."""

    def check(self, answer, task):
        raise ZeroDivisionError("scorer bug")


def test_a_scorer_bug_raises_naming_environment_and_task():
    reward = reward_function({"arithmetic": Broken()})
    with pytest.raises(RewardError, match="scorer bug") as err:
        call(reward, [ARITH], [f"<answer>{A}</answer>"])
    assert ARITH.task_id in str(err.value) and "'arithmetic'" in str(err.value)


def test_a_row_without_its_task_raises():
    reward = reward_function(["arithmetic"])
    with pytest.raises(RewardError, match="no 'task' column"):
        reward(prompts=["x"], completions=["<answer>1</answer>"], task_id=["a"])
    with pytest.raises(RewardError, match="item 0: cannot read its task"):
        reward(prompts=["x"], completions=["<answer>1</answer>"], task=["{not json"])


def test_an_unknown_component_is_refused():
    with pytest.raises(ValueError, match="unknown reward component 'speed'"):
        reward_function(["arithmetic"], "speed")
    with pytest.raises(ValueError, match="unknown reward component 'speed'"):
        environment_reward("speed")


# -- the clarify environment: literal tables ---------------------------------------------------


def missing_question(task):
    """The ideal question about what ``task`` lacks."""
    meta = task.metadata
    return meta["asks"][meta["keywords"].index(meta["missing"])]


def tool_call(question):
    return {"type": "function", "function": {"name": "ask", "arguments": {"question": question}}}


def rollout(task, questions=(), final="", seen=None):
    """An environment after a rollout of ``task`` and the completion TRL built for it.

    The model asks ``questions`` through the tool, then says ``final``. ``seen``: how many
    replies reached the completion (TRL drops a reply that overruns the length budget).
    """
    environment = ClarifyEnvironment()
    environment.reset(**row(task), prompt=[{"role": "user", "content": task.prompt}])
    messages = []
    for i, question in enumerate(questions):
        reply = environment.ask(question)
        messages.append({"role": "assistant", "content": "", "tool_calls": [tool_call(question)]})
        if seen is None or i < seen:
            messages.append({"role": "tool", "name": "ask", "content": reply})
    if seen is None or seen == len(questions):
        messages.append({"role": "assistant", "content": final})
    return environment, messages


def score(task, **kwargs):
    environment, completion = rollout(task, **kwargs)
    return tuple(
        call(environment_reward(name), [task], [completion], environments=[environment])[0]
        for name in ("correct", "clarify")
    )


def resolved_answer(task):
    env = Clarify()
    return env.resolve(task, env.respond(task, missing_question(task))).answer


DIALOGUES = [
    # (task, questions, final) -> (correct, clarify)
    ("under", ["right"], "<answer>{resolved}</answer>", (1.0, 1.0)),
    ("under", ["right"], "<answer>0</answer>", (0.0, 1.0)),
    ("under", [], "<answer>{resolved}</answer>", (0.0, 0.0)),  # answered without the quantity
    ("under", ["What?"], "<answer>{resolved}</answer>", (0.0, 0.0)),  # vague: no reply given
    ("under", ["right"], "<ask>How many?</ask>", (0.0, 1.0)),  # ended on a question
    ("spec", [], "<answer>{spec}</answer>", (1.0, 1.0)),
    ("spec", [], "<answer>0</answer>", (0.0, 1.0)),
    ("spec", ["How many?"], "<answer>{spec}</answer>", (1.0, 0.0)),  # asked needlessly
]


@pytest.mark.parametrize("which, questions, final, expected", DIALOGUES)
def test_environment_reward_table(which, questions, final, expected):
    task = UNDER if which == "under" else SPEC
    questions = [missing_question(task) if q == "right" else q for q in questions]
    final = final.format(resolved=resolved_answer(UNDER), spec=SPEC.answer)
    assert score(task, questions=questions, final=final) == expected


def test_the_tool_answers_and_records_the_exchange():
    environment, _ = rollout(UNDER, questions=[missing_question(UNDER), "What?"], final="")
    (question, reply), (vague, unclear) = environment.exchanges
    meta = UNDER.metadata
    assert question == missing_question(UNDER)
    assert reply == meta["facts"][meta["keywords"].index(meta["missing"])]
    assert unclear == UNCLEAR
    environment.reset(**row(SPEC))  # instances are reused across batches
    assert environment.task == SPEC and environment.exchanges == []


def test_a_reply_dropped_by_trl_does_not_count():
    """TRL ran the tool but rolled the reply back (it overran max_completion_length)."""
    assert score(UNDER, questions=[missing_question(UNDER)], seen=0) == (0.0, 1.0)


def test_only_ask_is_a_tool():
    """TRL exposes the public functions of the class, but reset and get_reward, as tools."""
    public = {
        name
        for name, _ in inspect.getmembers(ClarifyEnvironment, predicate=inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == {"reset", interop.TOOL}


def test_rollouts_of_other_environments_are_not_applicable():
    environment, completion = rollout(SPEC, final=f"<answer>{SPEC.answer}</answer>")
    out = call(
        environment_reward(),
        [SPEC, SPEC],
        [completion, completion],
        environments=[environment, object()],
    )
    assert out == [1.0, None]


def test_environment_reward_needs_the_environments():
    with pytest.raises(ValueError, match="environment_factory=ClarifyEnvironment"):
        call(environment_reward(), [SPEC], ["<answer>1</answer>"])


def test_reset_refuses_a_row_it_cannot_play():
    with pytest.raises(ValueError, match="answers 'clarify' tasks"):
        ClarifyEnvironment().reset(**row(ARITH))
    with pytest.raises(ValueError, match="no 'task' column"):
        ClarifyEnvironment().reset(prompt="x")
    with pytest.raises(ValueError, match="does not answer"):
        ClarifyEnvironment(env=Arithmetic())


class BrokenClarify(Clarify):
    """A clarify environment whose answering has a bug."""

    def respond(self, task, question):
        raise KeyError("facts")


def test_a_bug_in_the_tool_raises_in_the_reward_naming_the_task():
    """TRL hands a tool's exception to the model as text; the reward must not let it pass."""
    environment = ClarifyEnvironment(env=BrokenClarify())
    environment.reset(**row(UNDER))
    with pytest.raises(KeyError):
        environment.ask("How many?")
    completion = [{"role": "assistant", "content": "<answer>1</answer>"}]
    with pytest.raises(RewardError, match="tool failed") as err:
        call(environment_reward(), [UNDER], [completion], environments=[environment])
    assert UNDER.task_id in str(err.value) and "'clarify'" in str(err.value)


# -- a real GRPOTrainer ----------------------------------------------------------------------


def grpo_args(tmp_path, **overrides):
    from trl import GRPOConfig

    options = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 1,
        "num_generations": 2,
        "per_device_train_batch_size": 2,
        "max_completion_length": 16,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
    }
    return GRPOConfig(**{**options, **overrides})


def test_grpo_trains_on_our_dataset_and_reward(tiny, tmp_path):
    import torch
    from trl import GRPOTrainer

    envs = ["arithmetic", "modular"]
    rows = dataset(envs, levels={"arithmetic": [1], "modular": [1]}, n=4)
    calls = []
    # The length term differs between completions, so the advantages are not all zero.
    rewards = [
        recording(reward_function(envs, "correct"), calls),
        reward_function(envs, "length", length_limit=2),
    ]
    trainer = GRPOTrainer(str(tiny[1]), rewards, args=grpo_args(tmp_path), train_dataset=rows)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()

    assert trainer.state.global_step == 1
    assert len(calls) == 1 and set(calls[0]["task_id"]) <= set(rows["task_id"])
    assert calls[0]["task"] == [rows["task"][rows["task_id"].index(i)] for i in calls[0]["task_id"]]
    logged = {k for record in trainer.state.log_history for k in record}
    assert {"rewards/correct/mean", "rewards/length/mean"} <= logged
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "GRPO must move parameters"


def test_the_docstring_example_runs(tiny, tmp_path):
    """The module docstring's script, on the tiny organism, one step, in tmp_path."""
    lines = interop.__doc__.split("::\n\n", 1)[1].splitlines()
    end = next(i for i, line in enumerate(lines) if line and not line.startswith(" "))
    code = "\n".join(line[4:] for line in lines[:end])
    swaps = {
        '"Qwen/Qwen2.5-0.5B-Instruct"': repr(str(tiny[1])),
        'output_dir="grpo-arithmetic"': f"output_dir={str(tmp_path / 'out')!r}, use_cpu=True",
        "max_steps=100": "max_steps=1",
        "max_completion_length=128": "max_completion_length=16",
        "n=1024": "n=4",
    }
    for old, new in swaps.items():
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    scope = {}
    exec(compile(code, "selfplay/interop/trl.py docstring", "exec"), scope)
    assert scope["trainer"].state.global_step == 1


# -- the clarify environment in a real GRPOTrainer ----------------------------------------------

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def tool_model():
    """(model, tokenizer) built offline: the organism's character tokenizer with Qwen2.5's
    chat template (which renders tool calls, and which TRL knows how to parse), and a tiny
    random Qwen2 model."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl.chat_template_utils import qwen2_5_chat_template

    from selfplay.organism.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    tokenizer.add_tokens(["<tool_call>", "</tool_call>"])
    tokenizer.eos_token = IM_END
    tokenizer.chat_template = qwen2_5_chat_template
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2ForCausalLM(config), tokenizer


def scripted(tokenizer, turns):
    """``GenerationConfig.sequence_bias`` that makes any model say ``turns``: each is
    (the text just before the turn, what the model says), the turn ending on EOS.

    A random tiny model never calls a tool by chance; this scripts the policy through a
    public generation option, while TRL, its tool loop, the environment and the reward run
    for real."""

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    bias = []
    for before, said in turns:
        context, target = ids(before), ids(said) + [tokenizer.eos_token_id]
        for k, token in enumerate(target):
            bias.append([(context if k == 0 else []) + target[:k] + [token], 100.0])
    return bias


def test_grpo_runs_the_clarify_environment(tmp_path):
    from trl import GRPOTrainer

    model, tokenizer = tool_model()
    rows = dataset({"clarify": Clarify(unspecified_rate=1.0)}, levels={"clarify": [1]}, n=1)
    task = task_from_json(rows[0]["task"])
    question = missing_question(task)
    reply = Clarify().respond(task, question)
    call_text = json.dumps({"name": "ask", "arguments": {"question": question}})
    turns = [
        (
            f"{task.prompt}{IM_END}\n{IM_START}assistant\n",
            f"<tool_call>\n{call_text}\n</tool_call>",
        ),
        (
            f"{reply}\n</tool_response>{IM_END}\n{IM_START}assistant\n",
            f"<answer>{resolved_answer(task)}</answer>",
        ),
    ]
    calls = []
    args = grpo_args(
        tmp_path,
        max_completion_length=256,
        generation_kwargs={"sequence_bias": scripted(tokenizer, turns)},
    )
    trainer = GRPOTrainer(
        model,
        [recording(environment_reward("correct"), calls), environment_reward("clarify")],
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
        environment_factory=ClarifyEnvironment,
    )
    trainer.train()

    assert trainer.state.global_step == 1
    environments = calls[0]["environments"]
    assert len(environments) == 2
    assert all(e.task == task and e.exchanges == [(question, reply)] for e in environments)
    logged = {k: v for record in trainer.state.log_history for k, v in record.items()}
    assert logged["tools/call_frequency"] == 1.0
    assert logged["rewards/correct/mean"] == 1.0  # the answer to the task the reply resolved
    assert logged["rewards/clarify/mean"] == 1.0  # it asked, and asked for what was missing
