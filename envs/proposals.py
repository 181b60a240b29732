"""The Challenger's proposal format: its prompt, its tag, and why a proposal is rejected.

A Challenger is prompted with ``challenger_prompt(env)`` and answers ``<task>…</task>``.
The environment reads the content (``Environment.from_proposal``) and computes the
ground truth itself: nothing the model claims about the answer is trusted. A proposal
that is not a valid task raises ``Rejected``, which says why. ``envs.base.task_from_proposal``
turns a proposal into a verified Task; this module knows nothing of environments.
"""

from __future__ import annotations

import re

from envs.errors import SelfplayError

TASK_OPEN, TASK_CLOSE = "<task>", "</task>"
MAX_PROPOSAL_CHARS = 2048
"""A proposal longer than this is unparsable (guards environments against huge outputs)."""

REJECTIONS = ("unparsable", "invalid", "unsafe", "duplicate")
"""Why a proposal is rejected: no readable task; a task that is not valid (out of range,
no well-defined answer); content that is not the environment's language at all (a name,
a call); a task already proposed (decided by the caller, which knows the others)."""

# A task tag whose content holds no other task tag, as ``format`` reads final tags.
_TASK = re.compile(r"<task>((?:(?!</?task>).)*?)</task>", re.DOTALL)


class Rejected(SelfplayError, ValueError):
    """A proposal that gives no valid task: ``reason`` is one of ``REJECTIONS``, ``detail``
    a short machine-readable why ("no_task_tag", "negative_intermediate", ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REJECTIONS:
            raise ValueError(f"rejection reason {reason!r} not in {REJECTIONS}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[Rejected], tuple[str, str]]:
        # The default rebuilds from the one message argument, which __init__ does not take;
        # this keeps a rejection picklable across worker processes.
        return type(self), (self.reason, self.detail)


def challenger_prompt(env: str) -> str:
    """The prompt that asks the Challenger for a task of environment ``env``."""
    return f"Propose a task for {env}."


def render_proposal(content: str) -> str:
    """The Challenger's answer proposing ``content`` (as written into the organism corpus)."""
    return f"{TASK_OPEN}{content}{TASK_CLOSE}"


def parse_proposal(completion: str) -> str:
    """The stripped content of the last well-formed ``<task>…</task>``; ``Rejected`` if none."""
    last = None
    for match in _TASK.finditer(completion):
        last = match
    if last is None:
        raise Rejected("unparsable", "no_task_tag")
    content = last.group(1).strip()
    if not content:
        raise Rejected("unparsable", "empty")
    if len(content) > MAX_PROPOSAL_CHARS:
        raise Rejected("unparsable", "too_long")
    return content
