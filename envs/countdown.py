"""Placeholder: being written."""

from envs.base import Environment


class Countdown(Environment):
    name = "countdown"
