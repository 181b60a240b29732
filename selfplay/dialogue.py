"""Clarifying questions as a dialogue: the environment answers the model's ``<ask>`` in a rollout.

With ``dialogue.enabled``, a completion that ends in an ``<ask>`` on a task whose environment
implements ``respond`` (clarify) gets the environment's reply inserted into the token stream,
and the model continues to a final answer, all within one GRPO completion. The reply tokens
are masked out of the loss. Rewards then score the final answer against the task as the reply
left it (``Environment.resolve``) and score whether asking was needed on the first turn (see
``rewards.components``); transcripts keep every turn (the ``turns`` column).

How this plugs into TRL 1.16 (read from ``trl/trainer/grpo_trainer.py``; ``tools=`` and
``environment_factory=`` are TRL's other multi-turn routes, but both run a tool-call loop that
needs a chat template with tool calls, which the organism lacks, and a clarifying question is
not a tool call):

- ``GRPOTrainer(rollout_func=f)`` calls ``f(prompts, trainer)`` in ``_generate`` once per
  generation batch, in place of its own generation. ``prompts`` are this process's prompts as
  the dataset holds them (deep copies: conversational prompts stay lists of messages, with no
  chat template applied) and nothing else: no other column reaches ``f``. They are already
  repeated: the sampler (``RepeatSampler``, or ``repeat_iterable_dataset`` for a streamed
  dataset) puts each prompt ``num_generations`` times in a row, so ``f`` returns one
  completion per prompt it receives. (TRL's docstring says the slice comes "with no
  duplication"; the 1.16 code passes the repeated slice, and ``tests/test_dialogue.py`` checks
  that.) As no column reaches ``f``, each prompt's user message carries its Task as JSON
  under the key ``task`` (``dialogue_prompt``); chat templates ignore the extra key.
- ``f`` returns a dict with ``prompt_ids``, ``completion_ids`` (one token list per prompt)
  and ``logprobs``. ``logprobs`` may be None: only vLLM's importance-sampling correction reads
  it, and TRL's own HF-generate path sets it to None too. ``env_mask`` (1 for model tokens, 0
  for inserted ones) is popped and used as TRL's ``tool_mask``: the loss mask becomes
  ``completion_mask * env_mask`` and the logged completion lengths count model tokens only.
  Every other key (here ``turns`` and ``final_task``, lists of JSON strings) is added to each
  input row by index and so reaches every reward function as a keyword argument.
- With ``use_vllm`` False TRL generates nothing itself when ``rollout_func`` is given; ``f``
  generates with the trainer's model as TRL's own non-vLLM path does: ``trl``'s
  ``unwrap_model_for_generation`` on ``trainer.model_wrapped``, sampling with the
  temperature, top_p, top_k, min_p, repetition_penalty and EOS ids from ``trainer.args``
  (``selfplay.decode.trainer_generator``: its fast sampler where the run's ``sampler`` allows,
  else HF ``generate`` with ``trainer.generation_config``). With ``use_vllm`` True this module refuses to run: it does
  not drive vLLM and returns no logprobs for the importance-sampling correction.
- The ``completions`` reward functions receive are ``batch_decode(completion_ids,
  skip_special_tokens=True)`` of the whole completion, inserted replies included (the chat
  template's special tokens dropped), wrapped as ``[{"role": "assistant", "content": ...}]``
  for conversational prompts. Rewards therefore read the model's own turns from ``turns``.
- A completion whose last token is not EOS or pad counts as clipped (and is masked out with
  ``mask_truncated_completions``), so a dialogue should end on the model's EOS.

The whole completion, replies included, fits in ``max_completion_length``. A reply is
rendered with the tokenizer's chat template as a user turn followed by the generation prompt
(the token difference between the conversation with and without it, aligned on EOS as TRL
does for tool replies); where that is not well defined, as plain text (``PLAIN_REPLY``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from envs import Environment, Task, parse_completion, task_from_json, task_to_json
from envs.dialogue import ENV, MODEL, Dialogue, Turn, resolve, turns_to_json
from selfplay import decode
from selfplay.transcripts import schema

TASK_KEY = "task"
"""The key under which a prompt's user message carries its Task as JSON."""

PLAIN_REPLY = ("\nUser: ", "\nAssistant: ")
"""Text around a reply when the tokenizer has no usable chat template."""

Generator = Callable[[list[list[int]], int], list[list[int]]]
"""``(token sequences, max new tokens) -> each one's new tokens``, cut after its first EOS."""


@dataclass
class DialogueConfig:
    """Clarifying questions as a dialogue: the environment answers an ``<ask>`` mid-rollout."""

    enabled: bool = False
    """Let environments answer the model's ``<ask>`` and the model go on to a final answer."""
    max_turns: int = 1
    """Environment replies per rollout, at most."""
    envs: list[str] | None = None
    """Environments that answer (default: every one in the mix that implements ``respond``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"dialogue.enabled must be true or false, got {self.enabled!r}")
        if isinstance(self.max_turns, bool) or not isinstance(self.max_turns, int):
            raise ValueError(f"dialogue.max_turns must be an integer, got {self.max_turns!r}")
        if self.max_turns < 1:
            raise ValueError(f"dialogue.max_turns must be at least 1, got {self.max_turns}")
        if self.envs is not None:
            if not self.envs:
                raise ValueError(
                    "dialogue.envs must name at least one environment "
                    "(leave it out for every environment that answers questions)"
                )
            bad = [e for e in self.envs if not isinstance(e, str) or not e]
            if bad:
                raise ValueError(f"dialogue.envs must be environment names, got {bad[0]!r}")
            if len(set(self.envs)) != len(self.envs):
                raise ValueError(f"dialogue.envs names an environment twice: {self.envs}")


def can_respond(env: Environment) -> bool:
    """Whether ``env`` overrides ``Environment.respond``, i.e. answers clarifying questions."""
    return type(env).respond is not Environment.respond


def answering_envs(envs: dict[str, Environment], config: DialogueConfig) -> dict[str, Environment]:
    """The environments that answer: ``config.envs``, or every one that implements ``respond``."""
    if config.envs is None:
        return {name: env for name, env in envs.items() if can_respond(env)}
    for name in config.envs:
        if name not in envs:
            raise ValueError(
                f"dialogue.envs: {name!r} is not in the run's environments ({', '.join(envs)})"
            )
        if not can_respond(envs[name]):
            raise ValueError(f"dialogue.envs: environment {name!r} does not answer questions")
    return {name: envs[name] for name in config.envs}


# -- the task travels with its prompt ---------------------------------------------------


def dialogue_prompt(task: Task) -> list[dict[str, str]]:
    """A task's conversational prompt whose user message also carries the Task (``TASK_KEY``)."""
    return [{"role": "user", "content": task.prompt, TASK_KEY: task_to_json(task)}]


def task_of(prompt: Any) -> Task:
    """The Task a ``dialogue_prompt`` carries; ValueError if the prompt carries none."""
    if isinstance(prompt, list):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get(TASK_KEY):
                return task_from_json(message[TASK_KEY])
    raise ValueError(
        f"dialogue: prompt {prompt!r:.120} carries no task; in dialogue mode the dataset's prompts "
        f"must be built with selfplay.dialogue.dialogue_prompt"
    )


def _messages(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != TASK_KEY} for m in prompt]


# -- how a reply enters the token stream ------------------------------------------------


class ReplyFormat:
    """Renders an environment reply as tokens inserted after the model's EOS.

    ``kind`` is "chat" when the chat template renders a user turn plus generation prompt
    after an assistant turn as a clean suffix, else "plain" (``PLAIN_REPLY``).
    """

    _SLOT, _MODEL_SLOT = "REPLYSLOT", "MODELSLOT"

    def __init__(self, tokenizer, chat_template_kwargs: dict[str, Any] | None = None):
        self.tokenizer = tokenizer
        wrap = self._chat_wrap(chat_template_kwargs or {})
        self.kind = "plain" if wrap is None else "chat"
        self.before, self.after = PLAIN_REPLY if wrap is None else wrap

    def _chat_wrap(self, kwargs: dict[str, Any]) -> tuple[str, str] | None:
        tok = self.tokenizer
        if not getattr(tok, "chat_template", None):
            return None
        head = [
            {"role": "user", "content": "QUESTIONSLOT"},
            {"role": "assistant", "content": self._MODEL_SLOT},
        ]
        reply = [{"role": "user", "content": self._SLOT}]
        try:
            base = tok.apply_chat_template(head, tokenize=False, **kwargs)
            full = tok.apply_chat_template(
                head + reply, add_generation_prompt=True, tokenize=False, **kwargs
            )
        except Exception:  # a template that cannot render this conversation: use plain text
            return None
        eos = tok.eos_token
        if eos and base.rfind(eos) > base.rfind(self._MODEL_SLOT):  # the model's turn ends at EOS
            base = base[: base.rfind(eos) + len(eos)]
        if not full.startswith(base) or full.count(self._SLOT) != 1:
            return None
        before, after = full[len(base) :].split(self._SLOT)
        return before, after

    def text(self, reply: str) -> str:
        """The inserted text: the reply wrapped as a user turn plus the generation prompt."""
        return f"{self.before}{reply}{self.after}"

    def ids(self, reply: str, task: Task) -> list[int]:
        """The inserted tokens; ValueError if the tokenizer cannot encode the reply."""
        ids = self.tokenizer(self.text(reply), add_special_tokens=False)["input_ids"]
        unk = self.tokenizer.unk_token_id
        if unk is not None and unk in ids:
            raise ValueError(
                f"environment {task.env!r}, task {task.task_id}: the tokenizer cannot encode "
                f"the reply {reply!r} (unknown characters)"
            )
        return ids


# -- the rollout ---------------------------------------------------------------------------


@dataclass
class Rollout:
    """One completion of a dialogue rollout."""

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    """1 for each token the model generated, 0 for each token the environment inserted."""
    turns: list[Turn]
    final_task: Task
    """The task as the model faced it after the replies."""


class Dialogues:
    """Runs dialogues for a batch: the model's turns from a ``Generator``, replies from envs."""

    def __init__(
        self,
        envs: dict[str, Environment],
        tokenizer,
        config: DialogueConfig,
        chat_template_kwargs: dict[str, Any] | None = None,
    ):
        self.answering = answering_envs(envs, config)
        if not self.answering:
            raise ValueError(
                f"dialogue.enabled, but none of the environments ({', '.join(envs)}) "
                f"answers questions (clarify does)"
            )
        self.tokenizer = tokenizer
        self.config = config
        self.chat_template_kwargs = chat_template_kwargs or {}
        self.reply_format = ReplyFormat(tokenizer, self.chat_template_kwargs)

    def prompt_ids(self, prompt: list[dict[str, Any]]) -> list[int]:
        """A conversational prompt rendered by the chat template with the generation prompt."""
        text = self.tokenizer.apply_chat_template(
            _messages(prompt),
            add_generation_prompt=True,
            tokenize=False,
            **self.chat_template_kwargs,
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def run(
        self,
        prompt_ids: list[list[int]],
        tasks: list[Task],
        generate: Generator,
        *,
        budget: int,
        eos_ids: list[int],
    ) -> list[Rollout]:
        """One dialogue per prompt, all turns batched; each completion fits in ``budget`` tokens.

        A dialogue goes on while the model's turn ended (EOS) in an ``<ask>``, the task's
        environment answers, fewer than ``max_turns`` replies were given, and the reply leaves
        at least one token of budget for the model.
        """
        if len(prompt_ids) != len(tasks):
            raise ValueError(f"dialogue: {len(prompt_ids)} prompts but {len(tasks)} tasks")
        out = [Rollout(list(p), [], [], [], t) for p, t in zip(prompt_ids, tasks, strict=True)]
        active = list(range(len(out)))
        while active:
            room = {i: budget - len(out[i].completion_ids) for i in active}
            contexts = [out[i].prompt_ids + out[i].completion_ids for i in active]
            new = generate(contexts, max(room.values()))
            if len(new) != len(active):
                raise ValueError(f"dialogue: generator gave {len(new)} turns for {len(active)}")
            still = []
            for i, ids in zip(active, new, strict=True):
                if self._model_turn(out[i], tasks[i], list(ids)[: room[i]], budget, eos_ids):
                    still.append(i)
            active = still
        return out

    def _model_turn(
        self, rollout: Rollout, task: Task, ids: list[int], budget: int, eos_ids: list[int]
    ) -> bool:
        """Append the model's turn and, where the dialogue goes on, the reply; True if it does."""
        rollout.completion_ids += ids
        rollout.env_mask += [1] * len(ids)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        rollout.turns.append({"role": MODEL, "text": text})
        env = self.answering.get(task.env)
        replies = len(rollout.turns) // 2
        if env is None or replies >= self.config.max_turns or not ids or ids[-1] not in eos_ids:
            return False
        parsed = parse_completion(text)
        if parsed.kind != "ask":
            return False
        try:
            reply = env.respond(task, parsed.question or "")
        except Exception as err:
            raise RuntimeError(
                f"environment {task.env!r}, task {task.task_id}: respond failed: {err}"
            ) from err
        if not isinstance(reply, str):
            raise TypeError(
                f"environment {task.env!r}, task {task.task_id}: respond returned {reply!r:.80}, "
                f"not a string"
            )
        inserted = self.reply_format.ids(reply, task)
        if len(rollout.completion_ids) + len(inserted) >= budget:
            return False  # no room left for the model to answer
        rollout.completion_ids += inserted
        rollout.env_mask += [0] * len(inserted)
        rollout.turns.append({"role": ENV, "text": reply})
        rollout.final_task = resolve(env, rollout.final_task, [rollout.turns[-1]])
        return True


def make_rollout_func(
    envs: dict[str, Environment],
    tokenizer,
    config: DialogueConfig,
    *,
    chat_template_kwargs: dict[str, Any] | None = None,
    generator: Callable[[Any], Generator] | None = None,
    fast: bool = False,
) -> Callable[[list, Any], dict[str, list]]:
    """A ``rollout_func`` for ``GRPOTrainer``: dialogues for the prompts it is given.

    ``generator(trainer)`` makes the model's turns (default ``decode.trainer_generator``: the
    trainer's model, through ``decode.Sampler`` when ``fast``, else HF ``generate``); tests
    pass a scripted one. The result holds ``prompt_ids``,
    ``completion_ids``, ``logprobs`` (None), ``env_mask``, and per completion ``turns`` and
    ``final_task`` as JSON and ``model_tokens`` (tokens the model generated), which TRL
    forwards to the reward functions (it keeps ``env_mask`` to itself).
    """
    if not config.enabled:
        raise ValueError("dialogue.enabled is false: no rollout function is needed")
    dialogues = Dialogues(envs, tokenizer, config, chat_template_kwargs)

    def make_generator(trainer) -> Generator:
        if generator is not None:
            return generator(trainer)
        return decode.trainer_generator(trainer, fast)

    def rollout(prompts: list, trainer) -> dict[str, list]:
        if trainer.use_vllm:
            raise ValueError(
                "dialogue mode generates with the trainer's model, not vLLM; "
                "set grpo.use_vllm to false"
            )
        tasks = [task_of(p) for p in prompts]
        made = dialogues.run(
            [dialogues.prompt_ids(p) for p in prompts],
            tasks,
            make_generator(trainer),
            budget=trainer.max_completion_length,
            eos_ids=list(trainer.eos_token_ids),
        )
        return {
            "prompt_ids": [r.prompt_ids for r in made],
            "completion_ids": [r.completion_ids for r in made],
            "logprobs": None,
            "env_mask": [r.env_mask for r in made],
            "turns": [turns_to_json(r.turns) for r in made],
            "final_task": [task_to_json(r.final_task) for r in made],
            "model_tokens": [sum(r.env_mask) for r in made],
        }

    return rollout


def transcript_fields(dialogue: Dialogue) -> dict[str, Any]:
    """The columns a dialogue adds to its transcript row: every turn, and where it ended."""
    return {
        schema.TURNS: turns_to_json(dialogue.turns),
        schema.REPLIES: dialogue.replies,
        schema.FINAL_TASK_ID: dialogue.final_task.task_id,
        schema.FINAL_ANSWER: dialogue.final_task.answer,
    }


def dialogue_metrics(dialogues: list[Dialogue]) -> dict[str, float]:
    """``dialogue/...`` metrics of a batch: replies per completion, and how often a reply
    made an underspecified task answerable (omitted when the batch has none)."""
    if not dialogues:
        return {}
    out = {"dialogue/replies_mean": sum(d.replies for d in dialogues) / len(dialogues)}
    under = [d for d in dialogues if not d.task.specified]
    if under:
        out["dialogue/resolved_rate"] = sum(d.final_task.specified for d in under) / len(under)
    return out
