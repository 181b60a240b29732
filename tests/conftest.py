"""Shared fixtures: a tiny organism pretrained once per test session (a few seconds)."""

import pytest

from selfplay.organism.pretrain import pretrain

TINY = """
name: tiny
corpus:
  self_correction_rate: 0.1
  envs:
    arithmetic: {levels: [1], heldout_levels: [2]}
    modular: {levels: [1]}
model: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, max_positions: 160}
train: {steps: 60, batch_size: 8, seq_len: 64, warmup_steps: 5, learning_rate: 0.01, seed: 3}
eval: {tasks_per_level: 4, max_new_tokens: 24}
"""


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(config path, organism folder) of a tiny organism trained for 60 steps."""
    root = tmp_path_factory.mktemp("models")
    path = root / "tiny.yaml"
    path.write_text(TINY)
    return path, pretrain(path, root=root)


TINY_CHALLENGER = """
name: tinych
corpus:
  challenger_rate: 0.5
  envs:
    arithmetic: {levels: [1], heldout_levels: [2]}
model: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, max_positions: 160}
train: {steps: 300, batch_size: 8, seq_len: 64, warmup_steps: 5, learning_rate: 0.01, seed: 3}
eval: {tasks_per_level: 4, max_new_tokens: 24}
"""


@pytest.fixture(scope="session")
def challenger_organism(tmp_path_factory):
    """A tiny organism pretrained on solving and, half the time, proposing arithmetic tasks."""
    from selfplay.organism.pretrain import pretrain

    root = tmp_path_factory.mktemp("models")
    path = root / "tinych.yaml"
    path.write_text(TINY_CHALLENGER)
    return pretrain(path, root=root)


@pytest.fixture(scope="session")
def tiny_grpo_run(tiny, tmp_path_factory):
    """A 3-step GRPO run on the tiny organism with an eval of its base (``tests/tiny_runs.py``);
    tests only read it."""
    from tiny_runs import tiny_run

    return tiny_run(tiny, tmp_path_factory.mktemp("tinyrun"), "tiny_run")
