"""The ``resources:`` section of a run config: what ``selfplay launch`` asks Ray for.

A run without ``--ray-address`` ignores it and trains in one process, so the same config
runs on a laptop and on a cluster. Standard library only (``selfplay --help`` stays light).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ResourcesConfig:
    """Ray resources of a launched run (``selfplay launch CONFIG --ray-address ...``)."""

    workers: int = 2
    """Training workers: data-parallel copies of the learner (Ray Train's ``TorchTrainer``),
    each taking an equal slice of every generation batch."""
    cpus_per_worker: float = 1.0
    """CPUs reserved for each training worker."""
    gpus_per_worker: float = 0.0
    """GPUs for each training worker (0: train on CPU with the gloo backend)."""
    judge_actors: int = 1
    """Ray actors that judge completions (and run sandboxed programs); 0 judges inside each
    training worker."""
    judge_cpus: float = 0.25
    """CPUs reserved for each judge actor. Actors hold their share while they live: leave
    room for the training workers, or they wait for CPUs that never come."""
    eval_actors: int = 1
    """Ray actors that run the held-out evaluation (``selfplay eval --ray-address``)."""
    eval_cpus: float = 1.0
    """CPUs reserved for each evaluation actor."""
    actor_timeout: float = 300.0
    """Seconds an actor call may take before the run stops, naming the actor and its work."""
    worker_timeout: float = 1800.0
    """Seconds a training worker may wait in a collective (for another worker) before the run
    fails, naming the workers; longer than a probe round, which worker 0 runs alone."""
    max_restarts: int = 3
    """Times a dead actor is restarted (its unfinished calls retried) before the run fails."""
    max_failures: int = 0
    """Times a failed training worker group is restarted from the last checkpoint."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"resources.workers must be at least 1, got {self.workers}")
        for name in ("judge_actors", "eval_actors", "max_restarts", "max_failures"):
            if getattr(self, name) < 0:
                raise ValueError(f"resources.{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("cpus_per_worker", "judge_cpus", "eval_cpus"):
            if getattr(self, name) <= 0:
                raise ValueError(f"resources.{name} must be above 0, got {getattr(self, name)}")
        if self.gpus_per_worker < 0:
            raise ValueError(
                f"resources.gpus_per_worker must be 0 or more, got {self.gpus_per_worker}"
            )
        if self.worker_timeout <= 0:
            raise ValueError(f"resources.worker_timeout must be above 0, got {self.worker_timeout}")
        if self.actor_timeout <= 0:
            raise ValueError(f"resources.actor_timeout must be above 0, got {self.actor_timeout}")
