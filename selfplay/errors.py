"""Every error class ``selfplay`` raises on purpose, in one place.

Two roots (defined in ``envs.errors`` so that ``envs`` and ``rewards`` can derive from them):

- ``SelfplayError``: anything raised on purpose, as opposed to a bug's own exception;
- ``UserError``: bad input from the user. The CLI catches this one class, prints the message as
  one line and exits with status 2; nothing has been written when it is raised before a run.

Each class also derives from the built-in exception it used to be (``ValueError``,
``RuntimeError``, ...), so code that catches those keeps working.
"""

from __future__ import annotations

import errno

from envs.errors import SelfplayError, UnknownEnvironment, UserError

__all__ = [
    "ActorDied",
    "ActorTimeout",
    "AnalysisError",
    "ConfigError",
    "CorruptTranscript",
    "DiskFull",
    "JudgeError",
    "HubError",
    "LaunchError",
    "ModelNotFound",
    "SandboxError",
    "SelfplayError",
    "StudyError",
    "UnknownEnvironment",
    "UsageError",
    "UserError",
    "WorkerStuck",
]

# -- bad input: one line, exit status 2 ----------------------------------------------------


class UsageError(UserError):
    """A command-line option or argument that cannot be used (a filter, a step range)."""


class ConfigError(UserError, ValueError):
    """A config file is missing, unreadable or does not match its dataclass."""


class ModelNotFound(UserError, RuntimeError):
    """The model is neither a loadable local folder nor reachable on a hub."""


class HubError(UserError, RuntimeError):
    """An export is written, but pushing it to the Hub failed (no network, no token, ...)."""


class LaunchError(UserError, RuntimeError):
    """The cluster cannot run the launch: no Ray there, too few resources, a failed run."""


class CorruptTranscript(UserError, ValueError):
    """A transcript file that cannot be read (empty, cut short, garbled): the message names it."""


class AnalysisError(UserError, ValueError):
    """The run folder cannot be analysed (missing parts, mismatched evals)."""


class StudyError(UserError, RuntimeError):
    """A study cannot go on: an arm run failed, or a finished one cannot be read."""


# -- not the user's input ------------------------------------------------------------------


class DiskFull(SelfplayError, OSError):
    """A run stopped because its disk is full: the CLI prints it as one line (exit status 1)."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


class SandboxError(SelfplayError, RuntimeError):
    """The sandbox itself failed (a worker could not start, the pool is closed); never a
    program's own failure."""


class JudgeError(SelfplayError, RuntimeError):
    """A scorer failed inside a judge: a bug to fix, never a zero reward."""


class ActorTimeout(SelfplayError, RuntimeError):
    """An actor call outlasted ``actor_timeout``; the message names the actor and its work."""


class ActorDied(SelfplayError, RuntimeError):
    """An actor died and Ray did not bring it back (its restarts used up, or it failed to
    start); the message names the actor and its work."""


class WorkerStuck(SelfplayError, RuntimeError):
    """A training worker gave up waiting for the others in a collective operation."""
