"""Clarifying questions as a dialogue: turn logic, reply tokens, scoring, and a real TRL run."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from envs import Task, load_env, task_from_json, task_to_json
from envs.clarify import UNCLEAR, Clarify
from envs.dialogue import dialogues, resolve, turns_from_json, turns_to_json
from rewards import RewardError, clarify, correct, format_reward, length
from selfplay.config import from_dict
from selfplay.decode import until_eos
from selfplay.dialogue import (
    DialogueConfig,
    Dialogues,
    ReplyFormat,
    answering_envs,
    dialogue_prompt,
    make_rollout_func,
    task_of,
)
from selfplay.errors import ConfigError
from selfplay.judges import MajorityJudge, ProgramJudge
from selfplay.organism.tokenizer import build_tokenizer

TOKENIZER = build_tokenizer()
EOS = TOKENIZER.eos_token_id
ENVS = {"clarify": Clarify(unspecified_rate=1.0), "arithmetic": load_env("arithmetic")}
ON = DialogueConfig(enabled=True)
UNDER = [ENVS["clarify"].task(0, i, 1) for i in range(8)]
SPEC = [Clarify(unspecified_rate=0.0).task(0, i, 1) for i in range(8)]
ARITH = ENVS["arithmetic"].task(0, 0, 1)


def missing_fact(task: Task) -> str:
    meta = task.metadata
    return meta["facts"][meta["keywords"].index(meta["missing"])]


def ask_missing(task: Task) -> str:
    return f"<think>{task.metadata['missing']} unknown</think><ask>How many {task.metadata['missing']}?</ask>"


def answer(task: Task) -> str:
    full = Clarify(unspecified_rate=0.0).task(*_coords(task))
    return f"<think>{full.metadata['steps'][-1]}</think><answer>{full.answer}</answer>"


def _coords(task: Task) -> tuple[int, int, int]:
    _, seed, difficulty, index = task.task_id.split("/")
    return int(seed), int(index), int(difficulty)


class Scripted:
    """A fake model: for each prompt a list of turn texts, said in order (EOS after each)."""

    def __init__(self, script: dict[str, list[str]], eos: bool = True):
        self.script, self.eos = script, eos
        self.calls: list[tuple[int, int]] = []  # (sequences, max_new_tokens) per call

    def __call__(self, sequences: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        self.calls.append((len(sequences), max_new_tokens))
        out = []
        for seq in sequences:
            context = TOKENIZER.decode(seq)
            prompt = context.split("<|user|>")[1].split("<|assistant|>")[0]
            turn = context.count("<|assistant|>") - 1
            ids = TOKENIZER(self.script[prompt][turn], add_special_tokens=False)["input_ids"]
            out.append((ids + [EOS] * self.eos)[:max_new_tokens])
        return out


def run(tasks, script, config=ON, budget=200, eos=True):
    runner = Dialogues(ENVS, TOKENIZER, config)
    model = Scripted({t.prompt: turns for t, turns in zip(tasks, script, strict=True)}, eos)
    prompts = [runner.prompt_ids(dialogue_prompt(t)) for t in tasks]
    return runner.run(prompts, tasks, model, budget=budget, eos_ids=[EOS]), model


# -- turn logic ---------------------------------------------------------------------------------


def test_ask_reply_answer():
    task = UNDER[0]
    [r], _ = run([task], [[ask_missing(task), answer(task)]])
    assert r.turns == [
        {"role": "model", "text": ask_missing(task)},
        {"role": "env", "text": missing_fact(task)},
        {"role": "model", "text": answer(task)},
    ]
    # The zeros of env_mask are exactly the inserted reply, rendered as a chat turn.
    inserted = [t for t, m in zip(r.completion_ids, r.env_mask, strict=True) if m == 0]
    model = [t for t, m in zip(r.completion_ids, r.env_mask, strict=True) if m == 1]
    assert TOKENIZER.decode(inserted) == f"<|user|>{missing_fact(task)}<|assistant|>"
    assert TOKENIZER.decode(model) == f"{ask_missing(task)}<|end|>{answer(task)}<|end|>"
    first_zero = r.env_mask.index(0)
    assert r.completion_ids[first_zero - 1] == EOS  # the reply follows the model's EOS
    assert r.env_mask == [1] * first_zero + [0] * len(inserted) + [1] * (len(model) - first_zero)
    assert r.completion_ids[-1] == EOS
    # What TRL decodes for the reward functions: every turn, special tokens dropped.
    assert TOKENIZER.decode(r.completion_ids, skip_special_tokens=True) == "".join(
        t["text"] for t in r.turns
    )
    assert r.final_task.specified and r.final_task.task_id == f"{task.task_id}+resolved"
    assert r.final_task.answer == SPEC[0].answer and r.final_task.prompt == SPEC[0].prompt


def test_no_ask_is_one_turn():
    [r], _ = run([SPEC[0]], [[answer(SPEC[0])]])
    assert [t["role"] for t in r.turns] == ["model"]
    assert r.env_mask == [1] * len(r.completion_ids) and r.final_task == SPEC[0]


def test_ask_on_a_specified_task_is_answered_but_resolves_nothing():
    task = SPEC[1]
    keyword = task.metadata["keywords"][0]
    [r], _ = run([task], [[f"<ask>How many {keyword}?</ask>", answer(task)]])
    assert [t["role"] for t in r.turns] == ["model", "env", "model"]
    assert r.turns[1]["text"] == task.metadata["facts"][0]
    assert r.final_task == task


def test_vague_question_gets_the_fixed_non_answer():
    task = UNDER[1]
    [r], _ = run([task], [["<ask>Can you clarify?</ask>", "<answer>1</answer>"]])
    assert r.turns[1]["text"] == UNCLEAR and r.final_task == task


@pytest.mark.parametrize("max_turns, roles", [(1, 3), (2, 5), (3, 5)])
def test_turn_limit(max_turns, roles):
    task = UNDER[2]
    script = ["<ask>Can you clarify?</ask>", ask_missing(task), answer(task)]
    [r], _ = run([task], [script], DialogueConfig(enabled=True, max_turns=max_turns))
    assert len(r.turns) == roles
    assert r.turns[-1]["role"] == "model"
    assert sum(t["role"] == "env" for t in r.turns) == min(max_turns, 2)


@pytest.mark.parametrize(
    "first",
    ["<answer>3</answer>", "I do not know", "<ask>unclosed", ""],
    ids=["answer", "malformed", "unclosed", "empty"],
)
def test_anything_but_an_ask_ends_the_dialogue(first):
    [r], _ = run([UNDER[3]], [[first, "never said"]])
    assert len(r.turns) == 1 and r.turns[0]["text"] == first


def test_an_ask_without_eos_ends_the_dialogue():
    task = UNDER[3]
    [r], _ = run([task], [[ask_missing(task), answer(task)]], eos=False)
    assert len(r.turns) == 1


def test_environments_that_do_not_answer_get_no_reply():
    [r], _ = run([ARITH], [["<ask>Which numbers?</ask>", "<answer>1</answer>"]])
    assert len(r.turns) == 1
    only_arith = DialogueConfig(enabled=True, envs=["clarify"])
    assert set(answering_envs(ENVS, only_arith)) == {"clarify"}
    assert set(answering_envs(ENVS, ON)) == {"clarify"}  # arithmetic does not implement respond


def test_budget_holds_the_whole_dialogue():
    task = UNDER[4]
    ask_ids = len(TOKENIZER(ask_missing(task), add_special_tokens=False)["input_ids"]) + 1
    reply_ids = len(ReplyFormat(TOKENIZER).ids(missing_fact(task), task))
    # Room for the ask and the reply but not one token more: no reply is inserted.
    [r], _ = run([task], [[ask_missing(task), answer(task)]], budget=ask_ids + reply_ids)
    assert len(r.turns) == 1 and len(r.completion_ids) == ask_ids
    # Room for 5 answer tokens: the answer is cut, the completion fills the budget exactly.
    budget = ask_ids + reply_ids + 5
    [r], model = run([task], [[ask_missing(task), answer(task)]], budget=budget)
    assert len(r.turns) == 3 and len(r.completion_ids) == budget
    assert r.env_mask[-5:] == [1] * 5 and r.completion_ids[-1] != EOS
    assert model.calls == [(1, budget), (1, 5)]
    # A first turn cut by the budget.
    [r], _ = run([task], [[ask_missing(task)]], budget=7)
    assert len(r.completion_ids) == 7 and len(r.turns) == 1


def test_turns_are_batched_and_finished_dialogues_drop_out():
    tasks = UNDER[:3]
    script = [
        [ask_missing(tasks[0]), answer(tasks[0])],
        ["<answer>5</answer>"],
        [ask_missing(tasks[2]), answer(tasks[2])],
    ]
    rollouts, model = run(tasks, script, budget=120)
    assert [len(r.turns) for r in rollouts] == [3, 1, 3]
    assert [n for n, _ in model.calls] == [3, 2]
    for r in rollouts:
        assert len(r.completion_ids) == len(r.env_mask) <= 120


def test_rollout_func_output_for_trl():
    tasks = [UNDER[0], UNDER[0], SPEC[2], SPEC[2]]  # TRL repeats each prompt num_generations times
    script = {
        UNDER[0].prompt: [ask_missing(UNDER[0]), answer(UNDER[0])],
        SPEC[2].prompt: ["<answer>0</answer>"],
    }
    trainer = SimpleNamespace(use_vllm=False, max_completion_length=100, eos_token_ids=[EOS])
    rollout = make_rollout_func(ENVS, TOKENIZER, ON, generator=lambda trainer: Scripted(script))
    out = rollout([dialogue_prompt(t) for t in tasks], trainer)
    assert set(out) == {
        "prompt_ids",
        "completion_ids",
        "logprobs",
        "env_mask",
        "turns",
        "final_task",
        "model_tokens",
    }
    assert out["model_tokens"] == [sum(m) for m in out["env_mask"]]
    assert out["model_tokens"][0] < len(out["completion_ids"][0])
    assert out["logprobs"] is None
    for key in ("prompt_ids", "completion_ids", "env_mask", "turns", "final_task"):
        assert len(out[key]) == len(tasks), key
    assert [len(turns_from_json(t)) for t in out["turns"]] == [3, 3, 1, 1]
    assert json.loads(out["turns"][0])[1] == {"role": "env", "text": missing_fact(UNDER[0])}
    assert task_from_json(out["final_task"][0]).specified
    assert task_from_json(out["final_task"][2]) == SPEC[2]
    assert (
        out["prompt_ids"][0]
        == TOKENIZER(f"<bos><|user|>{UNDER[0].prompt}<|assistant|>", add_special_tokens=False)[
            "input_ids"
        ]
    )
    with pytest.raises(ValueError, match="use_vllm"):
        rollout([dialogue_prompt(SPEC[2])], replace_ns(trainer, use_vllm=True))


def replace_ns(ns: SimpleNamespace, **changes) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(ns), **changes})


def test_prompt_carries_its_task():
    prompt = dialogue_prompt(UNDER[5])
    assert task_of(prompt) == UNDER[5]
    rendered = TOKENIZER.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    assert rendered == f"<bos><|user|>{UNDER[5].prompt}<|assistant|>"  # the extra key is ignored
    with pytest.raises(ValueError, match="carries no task.*dialogue_prompt"):
        task_of([{"role": "user", "content": UNDER[5].prompt}])
    with pytest.raises(ValueError, match="carries no task"):
        task_of(UNDER[5].prompt)


def test_until_eos():
    assert until_eos([5, 6, 2, 0, 0], [2]) == [5, 6, 2]
    assert until_eos([5, 6], [2]) == [5, 6]


# -- rendering the reply ---------------------------------------------------------------------


def test_replies_encode_losslessly():
    fmt = ReplyFormat(TOKENIZER)
    assert fmt.kind == "chat" and (fmt.before, fmt.after) == ("<|user|>", "<|assistant|>")
    env = Clarify(unspecified_rate=0.5)
    replies = {UNCLEAR}
    for level in env.levels:
        for i in range(100):
            task = env.task(1, i, level)
            replies.update(task.metadata["facts"])
    for reply in replies:
        ids = fmt.ids(reply, UNDER[0])
        assert TOKENIZER.decode(ids, skip_special_tokens=True) == reply
        assert TOKENIZER.decode(ids) == fmt.text(reply)


def test_unencodable_reply_raises():
    with pytest.raises(ValueError, match="cannot encode the reply 'caf\u00e9'"):
        ReplyFormat(TOKENIZER).ids("caf\u00e9", UNDER[0])


def _with_template(template: str | None):
    tokenizer = build_tokenizer()
    tokenizer.chat_template = template
    return tokenizer


def test_reply_format_follows_the_template():
    # A ChatML-like template with a newline after each turn's EOS: the reply starts after EOS.
    chatml = (
        "{% for m in messages %}<|user|>{{ m['role'] }}\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    fmt = ReplyFormat(_with_template(chatml))
    assert fmt.kind == "chat" and (fmt.before, fmt.after) == (
        "\n<|user|>user\n",
        "<|end|>\n<|assistant|>",
    )
    # No template, or one that refuses a second user turn: plain text.
    strict = "{% if messages|length > 2 %}{{ raise_exception('no') }}{% endif %}x"
    for template in (None, strict):
        fmt = ReplyFormat(_with_template(template))
        assert fmt.kind == "plain" and fmt.text("R") == "\nUser: R\nAssistant: "


# -- config --------------------------------------------------------------------------------------


def test_config_defaults_and_yaml():
    assert DialogueConfig() == DialogueConfig(enabled=False, max_turns=1, envs=None)
    config = from_dict(DialogueConfig, {"enabled": True, "max_turns": 2, "envs": ["clarify"]})
    assert config.max_turns == 2 and config.envs == ["clarify"]
    with pytest.raises(ConfigError, match="dialogue.max_turns must be at least 1"):
        from_dict(DialogueConfig, {"max_turns": 0})
    with pytest.raises(ConfigError, match="key 'dialogue.max_turns': expected int"):
        from_dict(DialogueConfig, {"max_turns": "2"}, key="dialogue")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"enabled": "yes"}, "dialogue.enabled must be true or false"),
        ({"max_turns": True}, "dialogue.max_turns must be an integer"),
        ({"max_turns": 0}, "at least 1"),
        ({"envs": []}, "at least one environment"),
        ({"envs": ["clarify", "clarify"]}, "twice"),
        ({"envs": [""]}, "environment names"),
    ],
)
def test_config_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DialogueConfig(**kwargs)


def test_unknown_or_mute_env_is_an_error():
    with pytest.raises(ValueError, match="'countdown' is not in the run's environments"):
        answering_envs(ENVS, DialogueConfig(enabled=True, envs=["countdown"]))
    with pytest.raises(ValueError, match="'arithmetic' does not answer questions"):
        answering_envs(ENVS, DialogueConfig(enabled=True, envs=["arithmetic"]))
    with pytest.raises(ValueError, match="enabled is false"):
        make_rollout_func(ENVS, TOKENIZER, DialogueConfig())
    with pytest.raises(ValueError, match=r"none of the environments \(arithmetic\) answers"):
        make_rollout_func({"arithmetic": ENVS["arithmetic"]}, TOKENIZER, ON)


# -- resolving the task ----------------------------------------------------------------------


def test_resolve_gives_the_specified_task():
    env = ENVS["clarify"]
    for level in env.levels:
        for i in range(100):
            task = env.task(2, i, level)
            full = Clarify(unspecified_rate=0.0).task(2, i, level)
            resolved = env.resolve(task, missing_fact(task))
            assert resolved == replace(full, task_id=f"{task.task_id}+resolved")
            assert env.resolve(task, UNCLEAR) == task
            assert env.resolve(full, missing_fact(task)) == full
    turns = [
        {"role": "model", "text": "<ask>?</ask>"},
        {"role": "env", "text": UNCLEAR},
        {"role": "model", "text": "<ask>?</ask>"},
        {"role": "env", "text": missing_fact(UNDER[0])},
        {"role": "model", "text": "<answer>1</answer>"},
    ]
    assert resolve(env, UNDER[0], turns).specified
    assert resolve(env, UNDER[0], turns[:3]) == UNDER[0]
    assert ENVS["arithmetic"].resolve(ARITH, "anything") == ARITH


@pytest.mark.parametrize(
    "turns",
    [
        [],
        [{"role": "env", "text": "x"}],
        [{"role": "model", "text": "a"}, {"role": "env", "text": "b"}],
        [{"role": "model", "text": 3}],
        [{"role": "model", "text": "a", "extra": 1}],
    ],
)
def test_malformed_turns_are_rejected(turns):
    with pytest.raises(ValueError):
        turns_from_json(json.dumps(turns))


# -- scoring ------------------------------------------------------------------------------------


def dialogue_columns(tasks: list[Task], texts: list[list[str]]) -> dict:
    """The columns TRL passes in dialogue mode for model turns ``texts`` (replies from the env)."""
    turns_col, finals = [], []
    for task, model_turns in zip(tasks, texts, strict=True):
        env = ENVS[task.env]
        turns = []
        for k, text in enumerate(model_turns):
            turns.append({"role": "model", "text": text})
            if k < len(model_turns) - 1:
                question = text.split("<ask>")[1].split("</ask>")[0]
                turns.append({"role": "env", "text": env.respond(task, question)})
        turns_col.append(turns_to_json(turns))
        finals.append(task_to_json(resolve(env, task, turns)))
    return {
        "task": [task_to_json(t) for t in tasks],
        "task_id": [t.task_id for t in tasks],
        "turns": turns_col,
        "final_task": finals,
        "trainer_state": object(),
        "completion_ids": [[1] for _ in tasks],
    }


def score(tasks, texts, judge=None):
    judge = judge or ProgramJudge(ENVS)
    cols = dialogue_columns(tasks, texts)
    completions = ["".join(t) for t in texts]  # what TRL decodes: ignored in dialogue mode
    prompts = [t.prompt for t in tasks]
    return {
        f.__name__: f(prompts=prompts, completions=completions, **cols)
        for f in (correct(judge), clarify(judge), format_reward, length(20))
    }


U, S = UNDER[0], SPEC[1]
WRONG_KEYWORD = next(k for k in U.metadata["keywords"] if k != U.metadata["missing"])
# task, model turns, correct, clarify, format
SCORING = [
    (U, [ask_missing(U), answer(U)], 1.0, 1.0, 1.0),  # asked what was missing, then right
    (U, [ask_missing(U), "<answer>999</answer>"], 0.0, 1.0, 1.0),
    (U, [answer(U)], 0.0, 0.0, 1.0),  # answered without asking: nothing can be right
    (U, ["I do not know"], 0.0, 0.0, 0.0),
    (
        U,
        [f"<ask>How many {WRONG_KEYWORD}?</ask>", answer(U)],
        0.0,
        0.0,
        1.0,
    ),  # still underspecified
    (U, ["<ask>Can you clarify?</ask>", answer(U)], 0.0, 0.0, 1.0),
    (U, [ask_missing(U), ask_missing(U)], 0.0, 1.0, 1.0),  # turn limit: no final answer
    (U, [ask_missing(U) + " thanks", answer(U)], 1.0, 1.0, 0.0),  # a sloppy first turn
    (S, [answer(S)], 1.0, 1.0, 1.0),
    (
        S,
        [f"<ask>How many {S.metadata['keywords'][0]}?</ask>", answer(S)],
        1.0,
        0.0,
        1.0,
    ),  # needless
    (ARITH, [f"<answer>{ARITH.answer}</answer>"], 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("row", SCORING, ids=[f"{r[0].task_id}:{r[1][0][:30]}" for r in SCORING])
def test_dialogue_scoring(row):
    task, texts, want_correct, want_clarify, want_format = row
    got = score([task], [texts])
    assert (got["correct"], got["clarify"], got["format"]) == (
        [want_correct],
        [want_clarify],
        [want_format],
    )


def test_dialogue_scoring_as_one_batch_and_with_majority():
    tasks, texts = [r[0] for r in SCORING], [r[1] for r in SCORING]
    got = score(tasks, texts)
    assert got["correct"] == [r[2] for r in SCORING]
    assert got["clarify"] == [r[3] for r in SCORING]
    # Majority voting sees the resolved tasks as their own groups (their ids differ).
    group = [U] * 4
    turns = [
        [ask_missing(U), answer(U)],
        [ask_missing(U), answer(U)],
        [ask_missing(U), "<answer>1</answer>"],
        [answer(U)],
    ]
    got = score(group, turns, MajorityJudge(ENVS))
    assert got["correct"] == [1.0, 1.0, 0.0, 0.0] and got["clarify"] == [1.0, 1.0, 1.0, 0.0]


def test_length_counts_the_longest_turn():
    short, long_ = (
        "<think>ab</think><ask>x?</ask>",
        "<think>" + "x" * 30 + "</think><answer>1</answer>",
    )
    assert score([U], [[short, long_]])["length"] == [-0.5]
    assert score([U], [[short, "<answer>1</answer>"]])["length"] == [0.0]


def test_without_turns_nothing_changes():
    cols = dialogue_columns([U], [[ask_missing(U)]])
    del cols["turns"], cols["final_task"]
    judge = ProgramJudge(ENVS)
    assert correct(judge)(prompts=[""], completions=[ask_missing(U)], **cols) == [None]
    assert clarify(judge)(prompts=[""], completions=[ask_missing(U)], **cols) == [1.0]


def test_broken_dialogue_columns_raise():
    cols = dialogue_columns([U], [[ask_missing(U), answer(U)]])
    judge = ProgramJudge(ENVS)
    with pytest.raises(RewardError, match="reward correct: dialogue column 'final_task': none"):
        correct(judge)(prompts=[""], completions=[""], **{**cols, "final_task": None})
    with pytest.raises(
        RewardError, match=r"reward clarify: item 0, task clarify/0/1/0: unreadable"
    ):
        clarify(judge)(prompts=[""], completions=[""], **{**cols, "turns": ['[{"role": "env"}]']})
    assert dialogues({"turns": None}, [U]) is None


# -- a real GRPO run ----------------------------------------------------------------------------


def test_grpo_trainer_runs_dialogues(tiny, tmp_path, monkeypatch):
    """TRL's GRPOTrainer with our rollout_func on the tiny organism; the first turn is forced to ask
    (the organism was never taught to), the rest is the model's own sampling."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rewards import build_rewards
    from selfplay.decode import trainer_generator
    from selfplay.models import load_model
    from selfplay.recorder import task_row

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    model, tokenizer = load_model(tiny[1])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tasks = [t for t in (ENVS["clarify"].task(5, i, 1) for i in range(40)) if len(t.prompt) <= 64][
        :4
    ]
    by_prompt = {t.prompt: t for t in tasks}
    rows = [{**task_row(t), "prompt": dialogue_prompt(t)} for t in tasks]

    def forced(trainer):
        sample = trainer_generator(trainer)
        eos = tokenizer.eos_token_id

        def generate(sequences, max_new_tokens):
            contexts = [tokenizer.decode(s) for s in sequences]
            if all(c.count("<|assistant|>") == 1 for c in contexts):  # first turns: ask
                prompts = [c.split("<|user|>")[1].split("<|assistant|>")[0] for c in contexts]
                asks = [f"<ask>{by_prompt[p].metadata['missing']}?</ask>" for p in prompts]
                return [tokenizer(a, add_special_tokens=False)["input_ids"] + [eos] for a in asks]
            return sample(sequences, max_new_tokens)

        return generate

    rollout = make_rollout_func(ENVS, tokenizer, ON, generator=forced)
    seen: dict[str, list] = {"prompts": [], "masks": [], "turns": []}

    def spy(prompts, trainer):
        out = rollout(prompts, trainer)
        seen["prompts"].append(len(prompts))
        seen["masks"] += out["env_mask"]
        return out

    judge = ProgramJudge(ENVS)
    funcs, weights = build_rewards(
        {"correct": 1.0, "clarify": 1.0, "format": 0.5, "length": 1.0}, judge, length_limit=4
    )

    def watch(func):
        def reward(prompts, completions, **kwargs):
            seen["turns"] += kwargs["turns"]
            values = func(prompts=prompts, completions=completions, **kwargs)
            seen[func.__name__] = seen.get(func.__name__, []) + values
            return values

        reward.__name__ = func.__name__
        return reward

    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        num_generations=2,
        per_device_train_batch_size=4,
        max_completion_length=40,
        learning_rate=1e-3,
        reward_weights=weights,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[watch(f) for f in funcs],
        args=args,
        train_dataset=Dataset.from_list(rows),
        rollout_func=spy,
    )
    trainer.train()

    # Prompts arrive already repeated num_generations times: one completion per prompt.
    assert seen["prompts"] == [4, 4]
    assert all(0 in mask for mask in seen["masks"])  # every dialogue had a reply inserted
    turns = [turns_from_json(t) for t in seen["turns"]]
    assert len(turns) == 4 * 2 * len(funcs)
    assert all(t[1]["role"] == "env" and t[1]["text"] for t in turns)
    assert seen["clarify"] == [1.0] * 8  # each forced question named the missing quantity
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), (
        "GRPO must move the parameters"
    )


def test_transcript_fields_and_metrics():
    from selfplay.dialogue import dialogue_metrics, transcript_fields

    texts = [[ask_missing(U), answer(U)], [answer(U)], [answer(S)]]
    tasks = [U, U, S]
    talks = dialogues(dialogue_columns(tasks, texts), tasks)
    fields = transcript_fields(talks[0])
    assert turns_from_json(fields["turns"]) == talks[0].turns
    assert fields["replies"] == 1 and fields["final_task_id"] == f"{U.task_id}+resolved"
    assert fields["final_answer"] == SPEC[0].answer
    assert transcript_fields(talks[1])["final_answer"] is None
    assert dialogue_metrics(talks) == {
        "dialogue/replies_mean": pytest.approx(1 / 3),
        "dialogue/resolved_rate": 0.5,
    }
    assert dialogue_metrics(talks[2:]) == {"dialogue/replies_mean": 0.0}
    assert dialogue_metrics([]) == {}


def test_selfplay_train_runs_dialogues_end_to_end(tiny, tmp_path, monkeypatch):
    """`selfplay train` with `dialogue: {enabled: true}`: every turn reaches the transcripts.

    The organism never learned to ask, so its first turn on a clarify task is forced: a
    question naming every plural noun of the prompt (so it names the missing one, and the
    environment reveals it). Everything after the reply is the model's own sampling.
    """
    import re

    import selfplay.decode as decode
    from selfplay.train import train
    from selfplay.transcripts import read_transcripts

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    sample = decode.trainer_generator

    def forced(trainer, fast):
        tokenizer = trainer.processing_class
        own = sample(trainer, fast)

        def generate(sequences, max_new_tokens):
            contexts = [tokenizer.decode(s) for s in sequences]
            out = own(sequences, max_new_tokens)
            for k, context in enumerate(contexts):
                if context.count("<|assistant|>") == 1 and "How many" in context:
                    nouns = " ".join(re.findall(r"[a-z]+s\b", context.split("<|user|>")[-1]))
                    ask = f"<ask>{nouns}?</ask>"
                    out[k] = tokenizer(ask, add_special_tokens=False)["input_ids"] + [
                        tokenizer.eos_token_id
                    ]
            return out

        return generate

    monkeypatch.setattr(decode, "trainer_generator", forced)
    path = tmp_path / "talk.yaml"
    path.write_text(
        f"""
name: talk
model: {tiny[1]}
envs:
  clarify: {{levels: [1], options: {{unspecified_rate: 1.0}}}}
  arithmetic: {{levels: [1]}}
dialogue: {{enabled: true}}
probe: {{every: 0, tasks_per_level: 1, max_new_tokens: 8}}
checkpoint: {{every: 0}}
runs_dir: {tmp_path / "runs"}
grpo: {{max_steps: 2, num_generations: 2, per_device_train_batch_size: 8,
        max_completion_length: 64, learning_rate: 0.001}}
"""
    )
    run_dir = train(path)
    rows = read_transcripts(run_dir)
    assert {"turns", "replies", "final_task_id", "final_answer"} <= set(rows.columns)
    talk = rows[rows["env"] == "clarify"]
    assert len(talk) and talk["asked"].all()
    assert (talk["replies"] == 1).all()
    # Where the question named the missing noun the reply revealed it (not every template
    # names its quantities by plural nouns, so not everywhere).
    resolved = talk["final_task_id"].str.endswith("+resolved")
    assert resolved.any()
    assert talk[resolved]["final_answer"].notna().all()
    assert talk[~resolved]["final_answer"].isna().all()
    for turns, completion in zip(talk["turns"], talk["completion"], strict=True):
        parsed = turns_from_json(turns)
        assert [t["role"] for t in parsed] == ["model", "env", "model"]
        assert parsed[0]["text"].startswith("<ask>")
        assert parsed[1]["text"].endswith(".")  # a fact, or the fixed non-answer
        assert completion == "\n".join(t["text"] for t in parsed if t["role"] == "model")
    plain = rows[rows["env"] == "arithmetic"]
    assert (plain["replies"] == 0).all()
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("dialogue/replies_mean" in r for r in records)
