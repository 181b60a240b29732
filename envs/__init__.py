"""Verifiable environments: task generators with difficulty levels and exact scorers.

Standard library only, so a plug-in author needs nothing heavy to write and test one.
"""

from envs.base import Environment, Task, Verdict, make_task, task_from_json, task_to_json
from envs.format import Parsed, parse_completion, render_completion
from envs.registry import ENTRY_POINT_GROUP, ENVS, UnknownEnvironment, load_env, registered_envs

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENVS",
    "Environment",
    "Parsed",
    "Task",
    "UnknownEnvironment",
    "Verdict",
    "load_env",
    "make_task",
    "parse_completion",
    "registered_envs",
    "render_completion",
    "task_from_json",
    "task_to_json",
]
