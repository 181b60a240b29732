"""The ``Sandbox``: a pool of worker processes, in the caller's process.

The caller never forks itself (a trainer has torch, threads and gigabytes mapped): it starts
workers (``start_worker.py``, standard library only), checks each program statically before
any process is involved, and sends it to an idle worker. A worker that dies is restarted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from selfplay.errors import SandboxError
from selfplay.sandbox.worker.protocol import receive, send
from selfplay.sandbox.worker.rules import Limits, describe, static_violation

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "start_worker.py")
"""What a worker runs (``python -I -S``): it loads ``selfplay.sandbox.worker`` alone."""
DEFAULT_LIMITS = Limits()
"""What a ``Sandbox`` allows when it is given no ``limits``."""
_GRACE_SECONDS = 10.0  # a worker's own work beyond the wall limit, before the pool gives up
_READY_SECONDS = 30.0
_STOP_SECONDS = 2.0


@dataclass(frozen=True)
class Result:
    """How one program ended."""

    status: str  # "ok" | "timeout" | "error" | "killed"
    value: str | None  # repr() of the expression's value when status is "ok", else None
    stdout: str  # stdout and stderr, at most Limits.output_bytes
    error: str  # "" when ok, else one line saying why
    seconds: float  # wall time of the program
    violation: bool = False  # it tried something the sandbox forbids


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, base: str):
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", WORKER_SCRIPT, "--worker", base],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env={},
            )
        except OSError as exc:
            raise SandboxError(f"cannot start a sandbox worker: {exc}") from exc

    def wait_ready(self) -> None:
        try:
            ready = receive(self.process.stdout.fileno(), time.monotonic() + _READY_SECONDS)
            layers = json.loads(ready)
            self.layers = {"landlock": int(layers["landlock"]), "seccomp": bool(layers["seccomp"])}
        except (EOFError, TimeoutError, ValueError, KeyError) as exc:
            self.stop()
            raise SandboxError(f"a sandbox worker did not start: {exc}") from exc

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, request: bytes, timeout: float) -> dict:
        send(self.process.stdin.fileno(), request)
        return json.loads(receive(self.process.stdout.fileno(), time.monotonic() + timeout))

    def stop(self) -> None:
        try:
            self.process.stdin.close()  # an idle worker exits at end of input
            self.process.wait(_STOP_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()  # its child, if any, dies with it (PR_SET_PDEATHSIG)
            self.process.wait()
        self.process.stdout.close()


def _shutdown(workers: list[_Worker], base: str) -> None:
    for worker in workers:
        worker.stop()
    shutil.rmtree(base, ignore_errors=True)  # directories of workers killed mid-program


class Sandbox:
    """A pool of workers that run programs under ``limits``; see ``selfplay.sandbox``.
    Thread-safe; a context manager; workers are stopped on close, collection or exit."""

    def __init__(self, workers: int | None = None, limits: Limits = DEFAULT_LIMITS):
        count = workers if workers is not None else os.cpu_count() or 1
        if count < 1:
            raise ValueError(f"workers must be at least 1, got {count}")
        self.limits = limits
        self._base = os.path.realpath(tempfile.mkdtemp(prefix="selfplay-sandbox-"))
        self._workers: list[_Worker] = []
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._finalize = weakref.finalize(self, _shutdown, self._workers, self._base)
        try:
            self._workers.extend(_Worker(self._base) for _ in range(count))
            for worker in self._workers:
                worker.wait_ready()
                self._idle.put(worker)
        except SandboxError:
            self.close()
            raise

    @property
    def kernel_layers(self) -> tuple[str, ...]:
        """The kernel's layers programs run under here: ``"landlock"`` (files beneath the
        program's directory only; Linux 5.13+ with Landlock enabled) and ``"seccomp"`` (the
        syscall filter; x86-64 Linux). Without them the audit hook and the process limits are
        the outer layers."""
        with self._lock:
            return tuple(
                name
                for name in ("landlock", "seccomp")
                if all(w.layers[name] for w in self._workers)
            )

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        with self._lock:
            return [worker.process.pid for worker in self._workers]

    def run(self, code: str, expression: str | None = None, limits: Limits | None = None) -> Result:
        """Run ``code`` in a fresh namespace, then evaluate ``expression`` (if given) in it."""
        limits = limits if limits is not None else self.limits
        try:
            problem = static_violation(code, "exec", limits.modules)
            if expression is not None:
                problem = problem or static_violation(expression, "eval", limits.modules)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return Result("error", None, "", describe(exc), 0.0)
        if problem:
            return Result("error", None, "", problem, 0.0, violation=True)
        request = {"code": code, "expression": expression, "limits": dataclasses.asdict(limits)}
        if self._closed:
            raise SandboxError("the sandbox is closed")
        worker = self._idle.get()
        try:
            if not worker.alive():
                worker = self._replace(worker)
            payload = json.dumps(request).encode()
            try:
                return Result(**worker.call(payload, limits.wall_seconds + _GRACE_SECONDS))
            except (OSError, EOFError, TimeoutError, ValueError) as exc:
                if self._closed:
                    raise SandboxError("the sandbox was closed during the run") from exc
                worker = self._replace(worker)
                return Result("killed", None, "", f"the sandbox worker died: {exc}", 0.0)
        finally:
            self._idle.put(worker)

    def run_many(
        self, jobs: list[tuple[str, str | None]], limits: Limits | None = None
    ) -> list[Result]:
        """``run`` for each ``(code, expression)``, spread over the workers, in input order."""
        with ThreadPoolExecutor(len(self._workers)) as threads:
            return list(threads.map(lambda job: self.run(job[0], job[1], limits), jobs))

    def _replace(self, worker: _Worker) -> _Worker:
        """A started worker in place of ``worker``, which is stopped."""
        if self._closed:
            raise SandboxError("the sandbox is closed")
        worker.stop()
        fresh = _Worker(self._base)
        fresh.wait_ready()
        with self._lock:
            self._workers[self._workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        """Stop the workers; idempotent."""
        self._closed = True
        self._finalize()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


_shared: Sandbox | None = None
_shared_lock = threading.Lock()


def shared() -> Sandbox:
    """The process's pool for environments that run programs, started on first use (its
    workers stop at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Sandbox()
        return _shared


def run_shared(code: str, expression: str | None = None) -> Result:
    """``shared().run``, as a module-level function: it pickles by name, where a pool's bound
    method cannot (``datasets`` pickles a generator's closure, environments included)."""
    return shared().run(code, expression)


def equip(env):
    """``env``, given the shared pool as its ``executor`` when it runs programs (has one unset).

    Environments stay free of this module: one that executes code (``envs.programs``) has an
    ``executor`` attribute, None until the caller sets it.
    """
    if getattr(env, "executor", 0) is None:
        env.executor = run_shared
    return env
