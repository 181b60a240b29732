"""A worker's life: preload the allowed modules, then fork a child per program, confine it
(layer 5, then the kernel's layers), run the program there and collect its report.

The child gets its own session (the worker kills the whole process group), a new network
namespace where the kernel allows it, rlimits on CPU time, address space, file size,
processes, core files and open files, an empty environment, a private temporary working
directory that is always removed, fds 0-2 pointing at /dev/null and an output file (C-level
writes cannot reach the worker's pipes), and a wall-clock deadline after which the worker
kills it.
"""

from __future__ import annotations

import gc
import json
import math
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import types
from typing import NoReturn

from .kernel import confine_files, confine_syscalls, kernel_layers
from .program import UNAUDITED, audited, execute, worker_views
from .protocol import receive, send, write_all
from .rules import ALLOWED_MODULES, ALWAYS_ALLOWED, Limits, describe

# Codecs loaded in the worker: programs cannot import one later (utf-8 is always there).
_CODECS = ("ascii", "latin-1", "utf-16", "utf-32", "cp1252", "unicode-escape", "idna")
_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000
_FILE_BYTES = 1 << 20  # RLIMIT_FSIZE, unless the output limit is larger
_OPEN_FILES = 16
_RECURSION = 2000
_REPORT_SLACK = 1 << 16  # the report's bytes beyond the value


def _child(
    request: dict,
    limits: Limits,
    work: str,
    out: int,
    report: int,
    libc,
    layers: dict,
    views: dict[str, types.ModuleType],
) -> NoReturn:
    """In the forked child: confine this process, run the program, write the report."""
    try:
        os.setsid()
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
            # No network at all; needs CAP_SYS_ADMIN, and without it the audit hook still
            # refuses sockets.
            libc.unshare(_CLONE_NEWNET)
        null = os.open(os.devnull, os.O_RDWR)
        for fd, target in ((null, 0), (out, 1), (out, 2), (report, 3)):
            os.dup2(fd, target)
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        os.environ.clear()
        os.chdir(work)
        for module in (os, sys.modules[os.name]):  # for a program that reaches the real ones
            for name in UNAUDITED:
                setattr(module, name, audited(f"os.{name}"))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail, not kill
        for number in (signal.SIGPROF, signal.SIGXCPU):
            signal.signal(number, signal.SIG_DFL)
        for kind, value in (
            (resource.RLIMIT_CPU, math.ceil(limits.cpu_seconds) + 1),  # backstop to the timer
            (resource.RLIMIT_AS, limits.memory_mb << 20),
            (resource.RLIMIT_FSIZE, max(_FILE_BYTES, limits.output_bytes)),
            (resource.RLIMIT_NPROC, 0),  # ignored for root: the audit hook refuses fork
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_NOFILE, _OPEN_FILES),
        ):
            resource.setrlimit(kind, (value, value))
        signal.setitimer(signal.ITIMER_PROF, limits.cpu_seconds)
        sys.setrecursionlimit(_RECURSION)
        try:
            if layers["landlock"]:
                confine_files(libc, work, layers["landlock"])
            if layers["seccomp"]:
                confine_syscalls(libc)
        except OSError as exc:  # worked when the worker started: never run unconfined
            error = f"the sandbox could not confine the program: {describe(exc)}"
            failed = {"status": "error", "value": None, "error": error, "violation": False}
            write_all(3, json.dumps(failed).encode())
            return
        result = execute(request["code"], request["expression"], limits, work, views)
        write_all(3, json.dumps(result).encode())
    finally:
        os._exit(0)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group exists only once the child has called setsid
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _collect(fd: int, pid: int, deadline: float, cap: int) -> tuple[bytes, bool]:
    """What the child writes until it closes the pipe, and whether it hit the deadline."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1e3):
            _kill_group(pid)
            return b"", True
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        cap -= len(chunk)
        if cap < 0:  # not a report this worker's child writes
            return b"", False


def _parse_report(payload: bytes) -> dict | None:
    """The child's report; None if it wrote none (or not one of ours)."""
    try:
        report = json.loads(payload)
        return {k: report[k] for k in ("status", "value", "error", "violation")}
    except (ValueError, TypeError, KeyError):
        return None


def _verdict(late: bool, status: int, cpu: float, limits: Limits) -> dict:
    """The report for a child that ended without writing one."""
    if late:
        outcome = ("timeout", f"wall time limit {limits.wall_seconds}s exceeded")
    elif os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number in (signal.SIGPROF, signal.SIGXCPU) or (
            number == signal.SIGKILL and cpu >= limits.cpu_seconds
        ):
            outcome = ("timeout", f"cpu time limit {limits.cpu_seconds}s exceeded")
        else:
            outcome = ("killed", f"killed by signal {signal.Signals(number).name}")
    else:
        outcome = ("error", f"the program exited with status {os.WEXITSTATUS(status)}")
    return {"status": outcome[0], "value": None, "error": outcome[1], "violation": False}


def _run_one(request: dict, base: str, libc, layers: dict) -> dict:
    """Fork a child for one program, wait for it, clean up; the reply for the pool."""
    limits = Limits(**request["limits"])
    views = worker_views(limits.modules)
    root = tempfile.mkdtemp(dir=base)
    try:
        work = os.path.join(root, "work")  # the program's directory; its output file is not in it
        os.mkdir(work)
        out = os.open(os.path.join(root, "out"), os.O_RDWR | os.O_CREAT, 0o600)
        read, write = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _child(request, limits, work, out, write, libc, layers, views)
        os.close(write)
        cap = limits.output_bytes * 6 + _REPORT_SLACK  # a JSON escape is at most 6 bytes a byte
        payload, late = _collect(read, pid, start + limits.wall_seconds, cap)
        os.close(read)
        _kill_group(pid)  # whatever is left of its process group
        _, status, usage = os.wait4(pid, 0)
        seconds = time.monotonic() - start
        stdout = os.pread(out, limits.output_bytes + 1, 0)
        os.close(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = _parse_report(payload) or _verdict(
        late, status, usage.ru_utime + usage.ru_stime, limits
    )
    if len(stdout) > limits.output_bytes and report["status"] == "ok":  # written past print()
        error = f"output limit {limits.output_bytes} bytes exceeded"
        report.update(status="killed", value=None, error=error)
    text = stdout[: limits.output_bytes].decode("utf-8", "replace")
    return {**report, "stdout": text, "seconds": seconds}


def serve(base: str) -> None:
    """A worker's life: preload, say ready, then one program per request until stdin closes."""
    for name in (*ALLOWED_MODULES, *ALWAYS_ALLOWED):
        __import__(name)
    for codec in _CODECS:
        "".encode(codec)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        libc = None
    layers = kernel_layers(libc, base)
    gc.freeze()  # the collector leaves these objects, and their pages shared, alone in children
    requests, replies = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    send(replies, json.dumps(layers).encode())
    while True:
        try:
            request = json.loads(receive(requests))
        except EOFError:
            return
        send(replies, json.dumps(_run_one(request, base, libc, layers)).encode())
