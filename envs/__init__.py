"""Verifiable environments: task generators with difficulty levels and exact scorers.

Standard library only, so a plug-in author needs nothing heavy to write and test one.
"""

from envs.base import (
    Environment,
    Task,
    Verdict,
    make_task,
    task_from_json,
    task_from_proposal,
    task_to_json,
)
from envs.format import Parsed, parse_completion, render_completion
from envs.proposals import (
    REJECTIONS,
    TASK_CLOSE,
    TASK_OPEN,
    Rejected,
    challenger_prompt,
    parse_proposal,
    render_proposal,
)
from envs.registry import ENTRY_POINT_GROUP, ENVS, UnknownEnvironment, load_env, registered_envs

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENVS",
    "REJECTIONS",
    "TASK_CLOSE",
    "TASK_OPEN",
    "Environment",
    "Parsed",
    "Rejected",
    "Task",
    "UnknownEnvironment",
    "Verdict",
    "challenger_prompt",
    "load_env",
    "make_task",
    "parse_completion",
    "parse_proposal",
    "registered_envs",
    "render_completion",
    "render_proposal",
    "task_from_json",
    "task_from_proposal",
    "task_to_json",
]
