"""`selfplay launch`: the same run config, trained by several workers on a Ray cluster.

Without ``--ray-address`` a launch is ``selfplay train``: one process. With one:

- The driver (this process) checks the config, pretrains or finds the model and creates the
  run folder, exactly as ``train`` does, then connects to Ray and checks that the cluster
  has the CPUs and GPUs the ``resources:`` section asks for (Ray would otherwise wait for
  them forever, silently).
- Ray Train's ``TorchTrainer`` starts ``resources.workers`` training workers and joins them
  in one torch process group (gloo on CPU, NCCL on GPUs). Each builds TRL's
  ``GRPOTrainer`` as ``train`` does; Accelerate finds the process group and runs
  data-parallel: each worker generates and scores its slice of every generation batch,
  advantages are computed on the gathered rewards, gradients are averaged.
  ``grpo.per_device_train_batch_size`` is per worker, as in TRL.
- Every worker draws the same task stream (same seed) and keeps its slice. Rank 0 gathers
  the scored slices, writes the transcripts, metrics, probes, checkpoints' state and the
  summary, and sends every worker the scores so that all curricula move together.
- Judges run in Ray actors (``selfplay.actors``) when ``resources.judge_actors`` > 0.
- A worker group that fails is restarted ``resources.max_failures`` times; the restarted
  workers resume from the run's last complete checkpoint (the transcripts of later steps
  are set aside, as ``selfplay train --resume`` does), so no row is lost or written twice.

The run folder must be on storage every node sees (one machine, or a shared file system):
the workers write into it and read checkpoints from it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from selfplay.errors import ConfigError, LaunchError, WorkerStuck

WORKER_ENV = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
"""Environment of Ray's workers: Ray Train's print patch would copy into the log every
print made under a redirected stdout (``datasets`` disassembles functions that way when it
fingerprints the task stream)."""

ADDRESSES = "an address host:port, 'auto' (the cluster this machine belongs to) or 'local'"


def launch(
    config_path: str | Path,
    ray_address: str | None = None,
    *,
    resume: bool | str | Path = False,
    console=None,
    rollout_func=None,
) -> Path:
    """Train the config at ``config_path`` on Ray at ``ray_address``; return the run folder.

    ``ray_address``: None trains in this process (``selfplay.train.train``); "local" starts
    a Ray instance on this machine; "auto" or ``host:port`` joins a running cluster. If Ray
    is already initialised in this process (a test, a notebook), that instance is used.
    ``resume`` as for ``train``. ``rollout_func``: TRL's rollout function in place of
    generation, sent to every worker (tests script completions with it).
    """
    from rich.console import Console

    from selfplay.runs import prepare
    from selfplay.train import train

    console = console or Console()
    if not ray_address:
        return train(config_path, console, resume=resume, rollout_func=rollout_func)
    connected = []

    def check(ready) -> None:
        _check_launch(ready)
        resources = ready.config.resources
        cpus = resources.workers * resources.cpus_per_worker
        connected.append(connect(ray_address, cpus + resources.judge_actors * resources.judge_cpus))
        _check_cluster(connected[0], ready.config.resources, ready.source)

    ready = prepare(config_path, console, resume, load=False, check=check)
    ray, config, source = connected[0], ready.config, ready.source
    resources = config.resources
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = resources.gpus_per_worker > 0
    per_worker = {"CPU": resources.cpus_per_worker}
    if use_gpu:
        per_worker["GPU"] = resources.gpus_per_worker
    judges = _judge_factory(config, ready.run_dir.name)
    console.print(
        f"Launching {resources.workers} training worker(s) on Ray "
        f"({ray.get_runtime_context().gcs_address}): {ready.run_dir}"
    )
    trainer = TorchTrainer(
        _worker,
        train_loop_config=_worker_config(ready, resume, rollout_func, judges),
        torch_config=TorchConfig(
            backend="nccl" if use_gpu else "gloo", timeout_s=int(resources.worker_timeout)
        ),
        scaling_config=ScalingConfig(
            num_workers=resources.workers, use_gpu=use_gpu, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name="train",
            storage_path=str((ready.run_dir / "ray").resolve()),
            failure_config=FailureConfig(max_failures=resources.max_failures),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as err:  # Ray Train raises its own wrapper of the worker's error
        raise LaunchError(f"{source}: the launched run {ready.run_dir} failed: {err}") from err
    finally:
        if judges is not None:
            judges.close()
    if result.error is not None:
        raise LaunchError(f"{source}: the launched run {ready.run_dir} failed: {result.error}")
    if not (ready.run_dir / "summary.json").is_file():
        raise LaunchError(f"{source}: the launched run {ready.run_dir} ended without a summary")
    return ready.run_dir


def _worker_config(ready, resume, rollout_func, judges) -> dict[str, Any]:
    """What every training worker is given (``_worker``'s ``cfg``)."""
    return {
        "config": ready.config,
        "source": ready.source,
        "run_dir": str(ready.run_dir.resolve()),
        # Workers run in folders of Ray's: a local model folder goes by its absolute path.
        "model_path": _absolute(ready.model_path),
        "resume": bool(resume),
        "rollout_func": rollout_func,
        "make_judge": judges,
    }


def _check_launch(ready) -> None:
    """ConfigErrors for what a launched run cannot do."""
    config, source = ready.config, ready.source
    if config.selfplay.enabled or config.dialogue.enabled:
        key = "selfplay" if config.selfplay.enabled else "dialogue"
        raise ConfigError(
            f"{source}: key '{key}': launched runs do not support {key} yet; "
            "train it in one process (selfplay train, or launch without --ray-address)"
        )
    if config.judge == "model":
        raise ConfigError(
            f"{source}: key 'judge': launched runs do not support the model judge yet; "
            "train it in one process (selfplay train)"
        )


def connect(address: str, cpus: float):
    """Ray, connected to ``address`` (or the instance this process already has); a "local"
    instance offers at least ``cpus`` CPU slots."""
    try:
        import ray
    except ImportError:
        raise LaunchError(
            "selfplay launch --ray-address needs Ray: pip install 'selfplay[ray]'"
        ) from None
    if ray.is_initialized():
        return ray
    try:
        if address == "local":
            # Ray's CPUs are slots, not cores: a local instance offers what the launch asks
            # for (at least this machine's cores), so it never waits for CPUs it lacks.
            ray.init(
                num_cpus=max(os.cpu_count() or 1, math.ceil(cpus)),
                runtime_env={"env_vars": WORKER_ENV},
            )
        else:
            ray.init(address=address, runtime_env={"env_vars": WORKER_ENV})
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LaunchError(
            f"--ray-address {address}: cannot connect to Ray ({first}); give {ADDRESSES}, "
            "or start a cluster with `ray start --head`"
        ) from None
    return ray


def _check_cluster(ray, resources, source: str) -> None:
    """A LaunchError naming the ``resources`` keys when the cluster lacks what they ask."""
    total = ray.cluster_resources()
    cpus = resources.workers * resources.cpus_per_worker + (
        resources.judge_actors * resources.judge_cpus
    )
    gpus = resources.workers * resources.gpus_per_worker
    if cpus > total.get("CPU", 0) + 1e-9:
        raise LaunchError(
            f"{source}: resources ask for {cpus:g} CPUs (workers x cpus_per_worker + "
            f"judge_actors x judge_cpus) but the Ray cluster has {total.get('CPU', 0):g}: "
            "lower resources.cpus_per_worker or resources.judge_cpus, or add nodes"
        )
    if gpus > total.get("GPU", 0) + 1e-9:
        raise LaunchError(
            f"{source}: resources ask for {gpus:g} GPUs (workers x gpus_per_worker) but the "
            f"Ray cluster has {total.get('GPU', 0):g}"
        )


def _judge_factory(config, run_name: str):
    """``make_judge`` for the workers: judges in Ray actors, or None (judge in-process)."""
    if not config.resources.judge_actors:
        return None
    from selfplay.actors import judge_factory

    return judge_factory(config, run_name)


def _equipment(judges):
    """How a worker equips its environments that run programs: with the judge actors'
    sandboxes when there are judge actors (the worker then forks no sandbox of its own)."""
    if judges is None:
        return None
    from selfplay.actors import RayExecutor

    return RayExecutor(judges.pool).equip


def _worker(cfg: dict[str, Any]) -> None:
    """One training worker (Ray Train calls this in each, the process group already up)."""
    import torch.distributed as dist
    from rich.console import Console

    from selfplay.config.grpo import grpo_config
    from selfplay.config.load import load_envs
    from selfplay.models import load_model
    from selfplay.recorder import world
    from selfplay.runs import memory_preflight
    from selfplay.train import run

    config, source, run_dir = cfg["config"], cfg["source"], Path(cfg["run_dir"])
    rank, size = world()
    # A restarted worker group finds the run begun: it resumes from the last complete
    # checkpoint (or from step 0), setting aside what the failed attempt wrote after it.
    # Rank 0 decides before anything is written, and every worker follows its decision.
    decision = [cfg["resume"] or _begun(run_dir)]
    if size > 1:
        dist.broadcast_object_list(decision, src=0)
    console = Console(quiet=rank != 0)
    envs = load_envs(config, source, equip=_equipment(cfg["make_judge"]))
    args = grpo_config(config, run_dir / "checkpoints", source)
    activity = Activity(run_dir, rank)
    activity.report("starting: preflight, loading the model")
    # The driver may have no GPU: each worker checks the memory of its own.
    memory_preflight(config, args, cfg["model_path"], source, console)
    model, tokenizer = load_model(cfg["model_path"])
    try:
        run(
            config,
            envs,
            args,
            (cfg["model_path"], model, tokenizer),
            run_dir,
            console,
            [activity.callback()],
            resume=decision[0],
            rollout_func=cfg["rollout_func"],
            make_judge=cfg["make_judge"],
        )
    except RuntimeError as err:
        if size < 2 or not any(s in str(err) for s in _STUCK):
            raise
        first = str(err).strip().splitlines()[0][:300]
        raise WorkerStuck(
            f"worker {rank} stopped waiting for the other workers ({first}); "
            f"resources.worker_timeout is {config.resources.worker_timeout:g}s. Last reports: "
            f"{activity.summary()}"
        ) from None


class Activity:
    """What each training worker is doing, as small JSON files in ``RUN/ray/activity/``, so
    that a worker that gives up waiting for the others can say which one hung, and on what.

    A TrainerCallback (built lazily: transformers is imported by the worker only).
    """

    def __init__(self, run_dir: Path, rank: int):
        self.folder = Path(run_dir) / "ray" / "activity"
        self.rank = rank

    def report(self, doing: str) -> None:
        """Record that this worker is now ``doing`` this."""
        import socket

        from selfplay.checkpoints import write_json_atomic

        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            self.folder / f"worker-{self.rank}.json",
            {
                "pid": os.getpid(),
                "node": socket.gethostname(),
                "doing": doing,
                "since": time.time(),
            },
        )

    def callback(self):
        """The TrainerCallback that reports each step's phases."""
        from transformers import TrainerCallback

        activity = self

        class Reporting(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                activity.report(f"step {state.global_step}: generating, scoring and updating")

            def on_step_end(self, args, state, control, **kwargs):
                then = "probing, logging and checkpointing" if activity.rank == 0 else "waiting"
                activity.report(f"step {state.global_step} done: {then}")

            def on_train_end(self, args, state, control, **kwargs):
                activity.report("finishing: probes, final model, summary")

        return Reporting()

    def summary(self) -> str:
        """Every worker's last report, with its age."""
        import json

        now, lines = time.time(), []
        for path in sorted(self.folder.glob("worker-*.json")):
            try:
                r = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            lines.append(
                f"{path.stem.replace('-', ' ')} (pid {r['pid']} on {r['node']}): {r['doing']}, "
                f"for {now - r['since']:.0f}s"
            )
        return "; ".join(lines) or "no worker reported"


# What torch's gloo and NCCL say when a collective waited past its timeout or lost a peer.
_STUCK = ("Timed out", "timed out", "Connection reset by peer", "Connection closed by peer")


def _absolute(model: str) -> str:
    """A model folder's absolute path; a hub name as it is."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def _begun(run_dir: Path) -> bool:
    """Whether a run folder holds training output (a failed attempt's, when launching)."""
    return any(
        (run_dir / part).exists() for part in ("transcripts", "checkpoints", "metrics.jsonl")
    )
