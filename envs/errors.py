"""The roots of every error this project raises on purpose.

They live in ``envs``, the lowest room (standard library only), so that every package above it,
``rewards`` and ``selfplay`` included, derives its errors from the same two classes. The full
list is in ``selfplay.errors``.
"""

from __future__ import annotations


class SelfplayError(Exception):
    """Any error this project raises on purpose (as opposed to a bug's own exception)."""


class UserError(SelfplayError):
    """Bad input from the user (a config, a path, an option, a name): the CLI prints the
    message as one line and exits with status 2. The message names what is wrong."""


class UnknownEnvironment(UserError, KeyError):
    """Raised for an environment name that no built-in or plug-in provides."""

    def __str__(self) -> str:
        return str(self.args[0])
