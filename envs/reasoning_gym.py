"""Placeholder: being written."""

from envs.base import Environment


class ReasoningGym(Environment):
    name = "reasoning_gym"
