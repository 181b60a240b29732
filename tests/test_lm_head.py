"""TRL's fused LM head on the CPU projects only scored positions, with the same results."""

from __future__ import annotations

import pytest
import torch
import trl.trainer.utils as trl_utils

from selfplay.lm_head import score_completions_only


@pytest.fixture
def model():
    """A random two-layer Llama with TRL's fused head added as GRPOTrainer adds it."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=500,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
    )
    model = LlamaForCausalLM(config)
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    return model


def _batch():
    """Six left-padded rows: a prompt of 20 and a completion of 12 positions, each row's
    completion shorter than that (padding after it), labels -100 outside the completions."""
    torch.manual_seed(1)
    ids = torch.randint(3, 500, (6, 32))
    mask = torch.ones_like(ids)
    mask[:, :3] = 0  # left padding in the prompt
    for row, length in enumerate([12, 1, 7, 12, 4, 9]):
        mask[row, 20 + length :] = 0
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :20] = -100
    return ids, mask, labels


def _score(model, spy_rows: list[int]):
    """Per-token log-probabilities and entropies, and the gradient of their sum."""
    ids, mask, labels = _batch()
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    (out.log_probs.sum() + out.entropy.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.log_probs.detach(), out.entropy.detach(), grads


def test_compact_head_scores_the_same_with_fewer_rows(model, monkeypatch):
    original = getattr(trl_utils, "_use_triton", None)
    assert original is not None, "the pinned TRL no longer decides compaction in _use_triton"
    if getattr(original, "compact_on_cpu", False):  # patched earlier in this process
        original = original.trl_decide
    rows: list[int] = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def spy(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", spy)
    monkeypatch.setattr(trl_utils, "_use_triton", original)
    full = _score(model, rows)
    assert score_completions_only() is True
    assert score_completions_only() is True  # idempotent: wrapped once
    assert trl_utils._use_triton.trl_decide is original
    compact = _score(model, rows)

    _, _, labels = _batch()
    positions = labels[:, 1:].numel()  # each position predicts the next token's label
    scored = int((labels[:, 1:] != -100).sum())
    assert rows == [positions, scored]  # every position, then only the completion tokens
    assert scored < positions / 3
    torch.testing.assert_close(compact[0], full[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compact[1], full[1], rtol=1e-5, atol=1e-6)
    assert full[2].keys() == compact[2].keys() and "lm_head.weight" in full[2]
    for name, grad in full[2].items():
        torch.testing.assert_close(compact[2][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_other_devices_keep_trl_decision():
    score_completions_only()
    decide = trl_utils._use_triton
    original = decide.trl_decide
    assert decide(torch.device("cpu")) is True
    assert decide(torch.device("meta")) == original(torch.device("meta"))
