"""TRL's fused LM head scores only the completion tokens on the CPU too.

TRL 1.16's ``GRPOTrainer`` computes each token's log-probability with a fused LM head
(``add_fused_lm_head``) that projects through the vocabulary in tiles instead of building the
whole ``batch x length x vocab`` logits. Where Triton runs (CUDA, XPU) it projects only the
positions whose label counts, the completion tokens; everywhere else it projects every
position, prompt and padding included, and masks the answers afterwards. TRL does that so
compiled graphs on accelerators without Triton keep one shape; on the CPU, in eager mode, it
only multiplies the work. For Gemma 3 270M (a 262,144-token vocabulary, prompts of about 230
tokens and completions of about 60) the head then did six times the work it needed and was
about 80% of a GRPO step's loss forward and of its backward (``benchmarks/grpo_step.py``,
``torch.profiler``).

``score_completions_only`` makes the head take TRL's own compact path on the CPU: the same
per-token arithmetic on fewer rows, so the log-probabilities and gradients are those of the
full path (``tests/test_lm_head.py`` checks both, and that the head sees only the scored rows).
"""

from __future__ import annotations

COMPACT_DEVICES = ("cpu",)
"""Device types on which the fused head projects only the scored positions, beside the Triton
devices where TRL already does."""


def score_completions_only() -> bool:
    """Make TRL's fused LM head skip unscored positions on the CPU (once per process; idempotent).

    TRL decides with ``trl.trainer.utils._use_triton(device)``, read at every forward and used
    there for that decision only; this wraps it. Returns whether the pinned TRL has that hook:
    False means a TRL whose head decides otherwise, and the head is left as it is."""
    import trl.trainer.utils as utils

    decide = getattr(utils, "_use_triton", None)
    if decide is None:
        return False
    if getattr(decide, "compact_on_cpu", False):
        return True

    def compact(device) -> bool:
        return device.type in COMPACT_DEVICES or decide(device)

    compact.compact_on_cpu = True
    compact.trl_decide = decide
    utils._use_triton = compact
    return True
