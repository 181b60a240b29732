"""Placeholder: being written."""

from envs.base import Environment


class Clarify(Environment):
    name = "clarify"
