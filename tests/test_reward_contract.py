"""The contract every registered reward component keeps (a plug-in gets these checks for free).

Components come from ``rewards.registered_rewards()``: the built-ins and any installed
package's ``selfplay.rewards`` entry points (``tests/test_plugins.py`` runs this file against
a real installed one).
"""

import json
import math

import pytest

from envs import load_env, task_to_json
from rewards import RewardContext, build_rewards, registered_rewards
from selfplay.judges import ProgramJudge

ENVS = {name: load_env(name) for name in ("arithmetic", "clarify")}
NAMES = sorted(registered_rewards())


def batch() -> tuple[list, list, dict]:
    """Prompts, completions and columns of a mixed batch: right, wrong, malformed, asking."""
    tasks = [ENVS["arithmetic"].task(0, i, 1) for i in range(3)]
    tasks += [ENVS["clarify"].task(0, i, 1) for i in range(3)]
    completions = [
        "<think>adding</think>" + ENVS[t.env].target(t) if t.specified else "<answer>7</answer>"
        for t in tasks
    ]
    completions[1] = "<answer>-12345</answer>"
    completions[2] = "no tags at all"
    completions[-1] = "<think>what is missing?</think><ask>Which number?</ask>"
    columns = {
        "task": [task_to_json(t) for t in tasks],
        "task_id": [t.task_id for t in tasks],
        "env": [t.env for t in tasks],
    }
    return [t.prompt for t in tasks], completions, columns


@pytest.fixture(params=NAMES)
def reward(request):
    name = request.param
    return name, registered_rewards()[name](RewardContext(judge=ProgramJudge(ENVS)))


def test_builtins_are_registered():
    assert {"correct", "format", "clarify", "length", "random", "calibration"} <= set(NAMES)


def test_named_as_registered(reward):
    name, function = reward
    assert callable(function) and function.__name__ == name


def test_one_finite_value_or_none_per_completion(reward):
    _, function = reward
    prompts, completions, columns = batch()
    values = function(prompts=prompts, completions=completions, **columns)
    assert len(values) == len(completions)
    for value in values:
        assert value is None or (isinstance(value, int | float) and math.isfinite(value)), values


def test_the_same_batch_gets_the_same_values(reward):
    _, function = reward
    prompts, completions, columns = batch()
    first = function(prompts=prompts, completions=completions, **columns)
    again = function(
        prompts=list(prompts), completions=list(completions), **json.loads(json.dumps(columns))
    )
    assert again == first


def test_an_empty_batch_gets_no_values(reward):
    _, function = reward
    assert list(function(prompts=[], completions=[], task=[], task_id=[], env=[])) == []


def test_conversational_completions_read_their_last_message(reward):
    """TRL passes a conversation (a list of messages) for a conversational dataset."""
    _, function = reward
    prompts, completions, columns = batch()
    as_messages = [[{"role": "assistant", "content": c}] for c in completions]
    plain = function(prompts=prompts, completions=completions, **columns)
    assert function(prompts=prompts, completions=as_messages, **columns) == plain


def test_sharing_a_batch_changes_nothing(reward):
    """Through ``build_rewards`` (the components of a run share each batch's parse and
    verdicts) a component gives what it gives alone."""
    name, function = reward
    prompts, completions, columns = batch()
    (shared,), _ = build_rewards({name: 1.0}, ProgramJudge(ENVS), length_limit=400)
    alone = function(prompts=prompts, completions=completions, **columns)
    assert shared(prompts=prompts, completions=completions, **columns) == alone
